"""End to end: upload-to-result latency (p50/p95/p99) and completed results/s at 1, 8 and 32
concurrent API clients, for the embedded configuration (`make run`) and the Redis one, each
started fresh by this script (bench/app.py), with jobs lost (must be 0). Clients either poll
for their result every 20 ms, ask once with `?wait=5`, or upload with `?wait=5` (the upload's
answer holds the result: one request per result).

Baseline, measured in the same run: the thesis app's flow, kept here as a bench-only function:
a synchronous request that reads the model file from storage, loads it, decodes the image and
predicts, on every call; the same clients call it from threads.

    .venv/bin/python bench/e2e.py [--users 1 8 32] [--seconds 20] [--repeats 1]

With --repeats N each level runs N times in a row and its row is the run of median
throughput (its latencies beside it), the N throughputs listed, jobs lost summed over all.
"""

import argparse
import io
import itertools
import os
import platform
import tempfile
import threading
import time

import numpy as np
from app import CONFIGURATIONS, ROOT, running_app
from load import fail_if_lost, percentile, photo, run_clients, run_level
from tables import markdown_table, publish

SHIPPED_MODEL = ROOT / "mltrain" / "shipped" / "cifar10" / "model.keras"
# How clients learn their result: polling every 20 ms, one request that waits for the end, or
# an upload that itself waits (one request per result).
CLIENTS = (("polling", 0, False), ("?wait=5", 5, False), ("upload ?wait=5", 5, True))


def thesis_request(image: bytes) -> str:
    """The thesis app's request: model from storage on every call, then a synchronous predict."""
    import keras

    from classifier.preprocessing import decode_image, prepare_image

    with tempfile.NamedTemporaryFile(suffix=".keras") as copy:
        copy.write(SHIPPED_MODEL.read_bytes())  # the download from object storage
        copy.flush()
        model = keras.saving.load_model(copy.name, compile=False)
    pixels = prepare_image(decode_image(io.BytesIO(image)), (32, 32))
    return int(np.argmax(model.predict(pixels[None], verbose=0)[0]))


def thesis_level(users: int, seconds: float) -> dict:
    latencies, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed):
        image = photo(seed)
        while time.monotonic() < deadline:
            started = time.monotonic()
            thesis_request(image)
            with lock:
                latencies.append(time.monotonic() - started)

    elapsed = run_clients(client, [(i,) for i in range(users)])
    return {
        "users": users,
        "results/s": round(len(latencies) / elapsed, 2),
        "p50 ms": round(percentile(latencies, 50), 1),
        "p95 ms": round(percentile(latencies, 95), 1),
        "p99 ms": round(percentile(latencies, 99), 1),
        "lost": 0,
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median throughput (the upper one of an even count), with every run's
    throughput and the jobs lost in all of them."""
    ordered = sorted(runs, key=lambda run: run["results/s"])
    return {
        **ordered[len(ordered) // 2],
        "runs' results/s": " / ".join(f"{run['results/s']:g}" for run in runs),
        "lost": sum(run["lost"] for run in runs),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20, help="duration of each level")
    parser.add_argument(
        "--configurations", nargs="+", choices=CONFIGURATIONS, default=list(CONFIGURATIONS)
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each level; the median one is shown"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()

    baseline = {
        users: median_run([thesis_level(users, args.seconds) for _ in range(args.repeats)])
        for users in args.users
    }
    rows = [
        {
            "configuration": "thesis flow (baseline)",
            **baseline[users],
            "vs baseline": "1.00x / 1.00x",
            "CPU ms per result": "-",
        }
        for users in args.users
    ]
    for configuration in args.configurations:
        with running_app(configuration) as (url, session):
            api = f"{url}/api/v1/"
            run_level(api, 2, 3)  # warm-up: model conversion, first connections
            for (label, wait, upload_waits), users in itertools.product(CLIENTS, args.users):
                level = median_run(
                    [
                        run_level(api, users, args.seconds, wait, upload_waits, session)
                        for _ in range(args.repeats)
                    ]
                )
                base = baseline[users]
                rows.append(
                    {
                        "configuration": f"{configuration}, {label}",
                        "users": users,
                        "results/s": level["results/s"],
                        "p50 ms": level["p50 ms"],
                        "p95 ms": level["p95 ms"],
                        "p99 ms": level["p99 ms"],
                        "lost": level["lost"],
                        "vs baseline": f"{level['results/s'] / base['results/s']:.2f}x / {base['p50 ms'] / level['p50 ms']:.2f}x",
                        "CPU ms per result": level["CPU ms per result"],
                        "runs' results/s": level["runs' results/s"],
                    }
                )
    report = "\n\n".join(
        [
            "# End to end: upload to result",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs; {args.seconds:g} s per level. "
            "`vs baseline`: throughput ratio / p50 latency ratio (higher is better) against the thesis flow "
            "at the same number of clients. `CPU ms per result`: CPU time of each process group (web: the gunicorn "
            "workers; db: the embedded database; worker: the inference worker; client: these load clients) over the "
            "results the level finished, sign-ups left out, and how many cores all of it kept busy (2 is this machine's all). "
            f"Each level ran {args.repeats} time(s); its row is the run of median throughput, jobs lost summed over all runs.",
            markdown_table(rows),
        ]
    )
    publish("e2e", report)
    fail_if_lost(rows)


if __name__ == "__main__":
    main()
