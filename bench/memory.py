"""Memory: resident memory (RSS) of the web process and the worker processes of a fresh app
(bench/app.py), idle and after an end-to-end load, and whether TensorFlow is mapped into each
(the web process must stay free of it).

    .venv/bin/python bench/memory.py [--configuration embedded|redis] [--users 8] [--seconds 20]
"""

import argparse
import os
import platform
import time
from pathlib import Path

from app import CONFIGURATIONS, running_app
from load import ROLES, processes, resident_mb, run_level
from tables import markdown_table, publish


def loads_tensorflow(pids) -> bool:
    for pid in pids:
        try:
            if "libtensorflow" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            pass
    return False


def snapshot(session) -> dict:
    return {role: pids for role, pids in processes(ROLES, session).items() if pids}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configuration", choices=CONFIGURATIONS, default="embedded")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with running_app(args.configuration) as (url, session):
        # Settle first: the worker preloads the model and, in a fresh VAR_DIR, converts it
        # (tens of seconds on a slow CPU); two clients' first results mean it is ready.
        run_level(f"{url}/api/v1/", 2, 3)
        idle = {role: resident_mb(pids) for role, pids in snapshot(session).items()}
        level = run_level(f"{url}/api/v1/", args.users, args.seconds)
        after = snapshot(session)
        rows = [
            {
                "process": role, "count": len(pids), "RSS idle MB": round(idle.get(role, 0), 1),
                "RSS after load MB": round(resident_mb(pids), 1), "TensorFlow loaded": "yes" if loads_tensorflow(pids) else "no",
            }  # fmt: skip
            for role, pids in after.items()
        ]
    report = "\n\n".join([
        f"# Memory: {args.configuration} configuration",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs; load: {args.users} API clients "
        f"for {args.seconds:g} s ({level['done']} results, {level['lost']} lost). Each row sums all of "
        "that role's processes (a worker's main and pool processes; the inference worker's embedded beat).",
        markdown_table(rows),
    ])  # fmt: skip
    publish("memory", report)


if __name__ == "__main__":
    main()
