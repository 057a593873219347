"""bench/history.py runs from a clean checkout (the performance issue's check reruns it): a tiny
size, one repeat, its table written to a scratch folder instead of bench/results/."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_history_bench_runs_and_reports_each_request_with_its_plan(tmp_path):
    env = {**os.environ, "BENCH_RESULTS": str(tmp_path)}
    for name in (
        "MONGODB_URI",
        "REDIS_URL",
    ):  # a throwaway embedded database and Redis, as on a fresh clone
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "bench/history.py", "--sizes", "60", "--repeats", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    rows = [
        line
        for line in (tmp_path / "history.md").read_text().splitlines()
        if line.startswith("| 60 |")
    ]
    plans = {row.split(" | ")[1]: row.split(" | ")[3] for row in rows}
    assert set(plans) == {
        "first history page",
        "label filter",
        "filename search",
        "date range (a day)",
        "API page at 90% depth",
        "CSV export, first byte",
        "admin: all results",
        "admin: search",
    }
    assert "IXSCAN classification_label_keyset" in plans["label filter"]
    assert "IXSCAN classification_history_keyset" in plans["API page at 90% depth"]
