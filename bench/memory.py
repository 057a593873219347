"""Memory: resident memory (RSS) of the web process and the worker processes of a fresh app
(bench/app.py), idle, at its peak while several clients upload a large PNG at once (target:
each role under twice its idle RSS), and after an end-to-end load; and whether TensorFlow is
mapped into each (the web process must stay free of it).

    .venv/bin/python bench/memory.py [--configuration embedded|redis] [--users 8] [--seconds 20] [--large-uploads 8]
"""

import argparse
import io
import os
import platform
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app import CONFIGURATIONS, running_app
from load import ROLES, processes, resident_mb, run_level, sign_up
from PIL import Image
from tables import markdown_table, publish


def loads_tensorflow(pids) -> bool:
    for pid in pids:
        try:
            if "libtensorflow" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            pass
    return False


LARGE_SIDE = 6300


def snapshot(session) -> dict:
    return {role: pids for role, pids in processes(ROLES, session).items() if pids}


def status_mb(pids, field: str) -> float:
    total = 0
    for pid in pids:
        try:
            total += next(
                int(line.split()[1])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith(field)
            )
        except (OSError, StopIteration):
            pass
    return total / 1024


def large_png() -> bytes:
    """6300x6300 pixels in about 120 KB: 119 MB once decoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (LARGE_SIDE, LARGE_SIDE), (200, 120, 40)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def large_image_peaks(url: str, session, uploads: int) -> dict:
    """{role: peak MB} of each role's processes (their VmHWM, reset first) while `uploads`
    clients send a large PNG at once and wait for its result."""
    roles = snapshot(session)
    for pid in (pid for pids in roles.values() for pid in pids):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from here
    api, data = f"{url}/api/v1/", large_png()
    client = sign_up(api, f"large-{uuid.uuid4().hex[:8]}")

    def upload(n):
        files = {"image": (f"large-{n}.png", data, "image/png")}
        result = client.post(f"{api}classifications/?wait=10", files=files, timeout=60).json()
        deadline = time.monotonic() + 120
        while result.get("status") in ("queued", "running") and time.monotonic() < deadline:
            result = client.get(f"{api}classifications/{result['id']}/?wait=10", timeout=60).json()
        return str(result.get("status") or result)

    with ThreadPoolExecutor(uploads) as pool:
        statuses = list(pool.map(upload, range(uploads)))
    return {
        "peaks": {role: status_mb(pids, "VmHWM:") for role, pids in roles.items()},
        "statuses": statuses,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configuration", choices=CONFIGURATIONS, default="embedded")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--large-uploads", type=int, default=8)
    args = parser.parse_args()
    with running_app(args.configuration) as (url, session):
        # Settle first: the worker preloads the model and, in a fresh VAR_DIR, converts it
        # (tens of seconds on a slow CPU); two clients' first results mean it is ready.
        run_level(f"{url}/api/v1/", 2, 3)
        idle = {role: resident_mb(pids) for role, pids in snapshot(session).items()}
        large = large_image_peaks(url, session, args.large_uploads)
        level = run_level(f"{url}/api/v1/", args.users, args.seconds)
        after = snapshot(session)
        rows = [
            {
                "process": role,
                "count": len(pids),
                "RSS idle MB": round(idle.get(role, 0), 1),
                f"peak MB, {args.large_uploads} large PNGs": round(large["peaks"].get(role, 0), 1),
                "peak / idle": round(large["peaks"].get(role, 0) / max(idle.get(role, 0), 1), 2),
                "RSS after load MB": round(resident_mb(pids), 1),
                "TensorFlow loaded": "yes" if loads_tensorflow(pids) else "no",
            }
            for role, pids in after.items()
        ]
    report = "\n\n".join(
        [
            f"# Memory: {args.configuration} configuration",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs; load: {args.users} API clients "
            f"for {args.seconds:g} s ({level['done']} results, {level['lost']} lost). Each row sums all of "
            "that role's processes (a worker's main and pool processes; the inference worker's embedded beat). "
            f"Large PNGs: {args.large_uploads} clients at once each upload a {LARGE_SIDE}x{LARGE_SIDE} PNG "
            f"({len(large_png()) // 1024} KB, {LARGE_SIDE**2 * 3 / 2**20:.0f} MB decoded) and wait for its result "
            f"(statuses: {', '.join(sorted(set(large['statuses'])))}); the peak is each process's VmHWM, reset just before.",
            markdown_table(rows),
        ]
    )
    publish("memory", report)


if __name__ == "__main__":
    main()
