"""bench/e2e.py --repeats: a level run several times shows its median run, not a mix of runs."""

import sys
from pathlib import Path

# The bench scripts import each other as scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from e2e import median_run  # noqa: E402


def test_a_repeated_level_shows_its_median_run_with_every_throughput_and_all_lost_jobs():
    runs = [
        {"results/s": 120.0, "p50 ms": 210.0, "lost": 0},
        {"results/s": 90.5, "p50 ms": 330.0, "lost": 1},
        {"results/s": 130.0, "p50 ms": 190.0, "lost": 0},
    ]
    shown = median_run(runs)
    assert (shown["results/s"], shown["p50 ms"]) == (
        120.0,
        210.0,
    )  # the median run's own latency beside it
    assert shown["runs' results/s"] == "120 / 90.5 / 130"  # in the order they ran
    assert shown["lost"] == 1  # a job lost in any run counts
    assert median_run(runs[1:2]) == {**runs[1], "runs' results/s": "90.5"}
