"""What every bench script ends with: a Markdown table, printed and kept in bench/results/."""

import os
from pathlib import Path

# BENCH_RESULTS names another folder (the tests' smoke runs keep bench/results/ as measured).
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).with_name("results"))


def markdown_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, report: str):
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(report + "\n")
