"""Load: N concurrent API users upload images and wait for their results for a set time,
against a running ImageClass (`make run`, or the same with REDIS_URL for the Redis
configuration). Reports throughput, upload-to-result latency (p50/p95/p99), errors, jobs lost
(accepted but never finished: must be 0), the CPU time per result of the web, database,
worker and client processes on this machine, and the resident memory of the web and worker
processes before and after. Prints a table and writes bench/results/load.md.

The API's throttles protect the service from exactly this, so raise them for the run:

    API_THROTTLE_UPLOAD=100000/minute API_THROTTLE_UPLOAD_ADDRESS=100000/minute \\
    API_THROTTLE_READ=100000/minute API_THROTTLE_READ_ADDRESS=100000/minute \\
    API_THROTTLE_AUTH=1000/minute API_THROTTLE_AUTH_ADDRESS=1000/minute make run
    .venv/bin/python bench/load.py --users 1 8 32 --seconds 60
"""

import argparse
import io
import os
import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from tables import markdown_table, publish

POLL_SECONDS = 0.02
RESULT_TIMEOUT = 120  # an accepted job without a result after this long counts as lost


@dataclass
class Tally:
    latencies: list = field(default_factory=list)  # upload to result, seconds
    reads: list = field(default_factory=list)  # history page, seconds
    accepted: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    errors: dict = field(default_factory=dict)  # "HTTP 429" -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, kind):
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=75
    )
    return buffer.getvalue()


def sign_up(api: str, name: str) -> requests.Session:
    session = requests.Session()
    password = f"load test {uuid.uuid4().hex}"
    account = {"username": name, "email": f"{name}@example.com", "password": password}
    session.post(f"{api}auth/register/", json=account, timeout=30).raise_for_status()
    token = session.post(
        f"{api}auth/token/", json={"username": name, "password": password}, timeout=30
    )
    token.raise_for_status()
    session.headers["Authorization"] = f"Token {token.json()['token']}"
    return session


def user(
    api: str,
    session: requests.Session,
    deadline: float,
    tally: Tally,
    seed: int,
    wait: float = 0,
    upload_waits: bool = False,
):
    """Upload, then poll every POLL_SECONDS until the result (or, with `wait`, ask the API to
    answer when the job ends; with `upload_waits` too, the upload itself waits), and read the
    history every fifth time."""
    images = [photo(seed * 100 + i) for i in range(20)]
    upload_params = {"wait": wait} if wait and upload_waits else None
    n = 0
    while time.monotonic() < deadline:
        n += 1
        started = time.monotonic()
        try:
            response = session.post(
                f"{api}classifications/",
                params=upload_params,
                files={"image": ("photo.jpg", images[n % 20])},
                timeout=30,
            )
        except requests.RequestException as exc:
            tally.error(type(exc).__name__)
            continue
        if response.status_code not in (201, 202):
            tally.error(f"HTTP {response.status_code}")
            continue
        with tally.lock:
            tally.accepted += 1
        detail = f"{api}classifications/{response.json()['id']}/"
        status = response.json()["status"]  # 201: the upload waited for its result
        while status not in ("done", "failed") and time.monotonic() - started <= RESULT_TIMEOUT:
            if not wait:
                time.sleep(POLL_SECONDS)
            try:
                status = session.get(
                    detail, params={"wait": wait} if wait else None, timeout=30
                ).json()["status"]
            except (requests.RequestException, ValueError, KeyError) as exc:
                tally.error(f"poll {type(exc).__name__}")
        with tally.lock:
            if status in ("done", "failed"):
                tally.latencies.append(time.monotonic() - started)
                tally.done += status == "done"
                tally.failed += status == "failed"
            else:
                tally.lost += 1
        if n % 5 == 0:
            read_started = time.monotonic()
            if session.get(f"{api}classifications/", timeout=30).ok:
                tally.reads.append(time.monotonic() - read_started)


def processes(pattern_sets, session=None):
    """{role: [pid, ...]} of this machine's processes whose command line has all the words
    (only those of one session, when given)."""
    found = {role: [] for role in pattern_sets}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if session is not None and os.getsid(int(entry.name)) != session:
                continue
        except OSError:
            continue
        for role, words in pattern_sets.items():
            if all(word in command for word in words):
                found[role].append(int(entry.name))
    return found


def resident_mb(pids) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# `make run` names its workers inference@ and training@ (compose runs them in containers); the
# embedded servers run only without MONGODB_URI and REDIS_URL.
ROLES = {
    "web": ["gunicorn", "imageclass"],
    "inference worker": ["celery", "worker", "inference@"],
    "training worker": ["celery", "worker", "training@"],
    "embedded database": ["secantus"],
    "embedded Redis": ["redis-server"],
}


def memory(session=None):
    return {role: resident_mb(pids) for role, pids in processes(ROLES, session).items() if pids}


def cpu_seconds(pids) -> float:
    """User and system CPU seconds that the processes `pids` (all their threads) have used."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_by_role(session=None) -> dict:
    """CPU seconds so far of each role's processes, and of this process (the load client)."""
    used = {role: cpu_seconds(pids) for role, pids in processes(ROLES, session).items() if pids}
    return {**used, "load client": cpu_seconds([os.getpid()])}


# The roles whose CPU per result a level reports (the training worker idles through a load).
CPU_COLUMNS = {
    "web": "web",
    "embedded database": "db",
    "inference worker": "worker",
    "load client": "client",
}


def fail_if_lost(rows):
    if any(row["lost"] for row in rows):
        raise SystemExit("jobs were lost")


def percentile(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def run_clients(client, argument_lists) -> float:
    """Run `client(*arguments)` in one thread per argument list; the seconds until all end."""
    threads = [threading.Thread(target=client, args=arguments) for arguments in argument_lists]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def cpu_per_result(before: dict, after: dict, results: int, elapsed: float) -> str:
    """ "web 7.7 / db 5.4 / ..." in ms of CPU per result, and the cores that all of it kept busy."""
    used = {role: after[role] - before.get(role, 0) for role in after}
    parts = [
        f"{short} {1000 * used[role] / results:.1f}"
        for role, short in CPU_COLUMNS.items()
        if role in used and results
    ]
    return " / ".join(parts + [f"{sum(used.values()) / elapsed:.2f} cores"])


def run_level(api, users, seconds, wait: float = 0, upload_waits: bool = False, session=None):
    """One load level. Its CPU column counts the processes of the app started in `session`
    (every matching process on the machine when None) from after the sign-ups, whose password
    hashing would otherwise add about 13 ms of web CPU per result to a 20-second level (21.0 against 7.7 measured)."""
    tally = Tally()
    run = uuid.uuid4().hex[:8]
    sessions = [sign_up(api, f"load-{run}-{i}") for i in range(users)]
    deadline = time.monotonic() + seconds
    cpu_before = cpu_by_role(session)
    elapsed = run_clients(
        user, [(api, s, deadline, tally, i, wait, upload_waits) for i, s in enumerate(sessions)]
    )
    cpu_after = cpu_by_role(session)
    return {
        "users": users,
        "seconds": round(elapsed, 1),
        "accepted": tally.accepted,
        "done": tally.done,
        "failed": tally.failed,
        "lost": tally.lost,
        "results/s": round((tally.done + tally.failed) / elapsed, 1),
        "p50 ms": round(percentile(tally.latencies, 50), 1),
        "p95 ms": round(percentile(tally.latencies, 95), 1),
        "p99 ms": round(percentile(tally.latencies, 99), 1),
        "history p50 ms": round(percentile(tally.reads, 50), 1),
        "errors": ", ".join(f"{k}: {v}" for k, v in sorted(tally.errors.items())) or "0",
        "CPU ms per result": cpu_per_result(
            cpu_before, cpu_after, tally.done + tally.failed, elapsed
        ),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running ImageClass")
    parser.add_argument(
        "--users", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels, run in turn"
    )
    parser.add_argument("--seconds", type=float, default=30, help="duration of each level")
    parser.add_argument(
        "--label", default="", help="what is being measured (e.g. 'make run, Redis')"
    )
    parser.add_argument(
        "--wait", type=float, default=0, help="ask for results with ?wait= instead of polling"
    )
    parser.add_argument(
        "--upload-waits",
        action="store_true",
        help="with --wait, the upload itself waits (POST ?wait=)",
    )
    args = parser.parse_args()
    api = args.url.rstrip("/") + "/api/v1/"
    readiness = requests.get(args.url.rstrip("/") + "/readyz", timeout=30).json()
    before = memory()
    rows = [
        run_level(api, users, args.seconds, args.wait, args.upload_waits) for users in args.users
    ]
    after = memory()
    memory_rows = [
        {
            "process": role,
            "RSS before MB": round(before.get(role, 0), 1),
            "RSS after MB": round(mb, 1),
        }
        for role, mb in after.items()
    ]
    report = "\n\n".join(
        [
            f"# Load: {args.label or args.url}",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs; "
            f"model {readiness['checks']['model'].get('version')}; {args.seconds:g} s per level",
            markdown_table(rows),
            markdown_table(memory_rows)
            if memory_rows
            else "(no web/worker process found on this machine)",
        ]
    )
    publish("load", report)
    fail_if_lost(rows)


if __name__ == "__main__":
    main()
