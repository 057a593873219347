"""History at scale: bulk-seed results for one user, then time the hot history requests through
the whole Django stack (in process) with the query plan of each beside its time.

Sizes: 1k, 10k and 50k results on a scratch embedded database (secantusdb), or 10k, 100k and
1M when MONGODB_URI points at a real MongoDB (a scratch database `imageclass_bench` there,
dropped at the end).

    .venv/bin/python bench/history.py [--sizes 1000 10000 50000] [--repeats 5]
"""

import argparse
import contextlib
import os
import platform
import tempfile
import time
from datetime import timedelta

import numpy as np
from app import free_port
from tables import markdown_table, publish

LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BENCH_DATABASE = "imageclass_bench"


@contextlib.contextmanager
def database():
    """(MongoDB URI, engine name): the real server at MONGODB_URI, else a scratch embedded one."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"], "MongoDB"
        return
    from imageclass.embedded import EmbeddedMongo

    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        server = EmbeddedMongo(folder, free_port()).start()
        try:
            yield server.uri, "secantusdb (embedded)"
        finally:
            server.stop()


@contextlib.contextmanager
def redis_url():
    """The Redis at REDIS_URL, else a throwaway embedded one (the cache, throttles and API
    tokens of the requests live there)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from imageclass.embedded import EmbeddedRedis

    server = EmbeddedRedis(":memory:", free_port()).start()
    try:
        yield server.uri
    finally:
        server.stop()


def seed(collection, template: dict, start: int, stop: int, newest):
    """Results start..stop-1 of the history, one a minute going back from `newest`."""
    from bson import ObjectId

    chunk = []
    for n in range(start, stop):
        document = dict(template)
        document.update(
            _id=ObjectId(),
            created_at=newest - timedelta(minutes=n),
            top_label=LABELS[n % len(LABELS)],
            original_filename=f"photo-{n}.jpg",
            top_probability=0.5 + (n % 50) / 100,
        )
        chunk.append(document)
        if len(chunk) == 5000:
            collection.insert_many(chunk, ordered=False)
            chunk = []
    if chunk:
        collection.insert_many(chunk, ordered=False)


def plan_summary(read) -> str:
    """The winning plan of a read, a pymongo cursor or a (collection, aggregation pipeline)
    pair, as a chain of stages, e.g. `SORT < FETCH < IXSCAN classification_history_keyset`;
    a pipeline's stages after the query it starts with lead, e.g. `$facet < FETCH < IXSCAN ...`."""
    try:
        if isinstance(read, tuple):
            collection, pipeline = read
            command = {"aggregate": collection.name, "pipeline": pipeline, "cursor": {}}
            explained = collection.database.command("explain", command)
        else:
            explained = read.explain()
    except Exception as exc:  # an engine without explain still gets its timings
        return f"(no explain: {type(exc).__name__})"
    stages = explained.get("stages", [])
    planner = explained.get("queryPlanner") or (
        stages[0].get("$cursor", {}).get("queryPlanner", {}) if stages else {}
    )
    chain = [name for stage in reversed(stages[1:]) for name in stage]
    stage = planner.get("winningPlan", {})
    stage = stage.get("queryPlan", stage)
    while stage:
        chain.append(" ".join(filter(None, [stage.get("stage"), stage.get("indexName")])))
        stage = stage.get("inputStage")
    return " < ".join(chain) or "(plan not reported)"


def timed(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def first_byte(client, url):
    response = client.get(url)
    next(iter(response.streaming_content))
    response.close()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with database() as (uri, engine), redis_url() as redis:
        os.environ.update(
            MONGODB_URI=uri,
            MONGODB_NAME=BENCH_DATABASE,
            REDIS_URL=redis,
            DJANGO_SETTINGS_MODULE="imageclass.settings",
        )
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from accounts.models import ApiToken
        from classifier import history
        from classifier.models import Classification

        settings.ALLOWED_HOSTS = ["*"]
        sizes = args.sizes or (
            [10_000, 100_000, 1_000_000] if engine == "MongoDB" else [1_000, 10_000, 50_000]
        )
        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user(
            "bench", "bench@example.com", "bench password 1"
        )
        newest = timezone.now()
        template_job = Classification.objects.create(
            owner=owner,
            status="done",
            image_key="bench/none.jpg",
            sha256="0" * 64,
            size=1000,
            format="JPEG",
            width=32,
            height=32,
            model_name="cifar10 v1",
            predictions=[{"label": "cat", "probability": 0.9}],
        )
        collection = connection.database[Classification._meta.db_table]
        template = collection.find_one({"_id": template_job.pk})
        collection.delete_one({"_id": template_job.pk})
        web, api, staff = (
            Client(),
            Client(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(owner)}"),
            Client(),
        )
        web.force_login(owner)
        staff.force_login(
            get_user_model().objects.create_superuser(
                "admin", "admin@example.com", "bench password 1"
            )
        )
        admin_list = "/admin/classifier/classification/"
        admin_order = [
            ("created_at", -1),
            ("_id", -1),
        ]  # the admin's ordering; its page is an ORM aggregate
        everything = history.History(owner, history.HistoryFilter({}))

        def reads(**filters):  # a filtered first page's read, for its plan
            results = history.History(owner, history.HistoryFilter(filters))
            if results.windowed:
                return results.collection, results.window(
                    results.conditions, results.NEWEST_FIRST, history.PAGE_SIZE + 1
                )
            return results.find(limit=history.PAGE_SIZE + 1)

        rows, seeded = [], 0
        try:
            for size in sizes:
                started = time.perf_counter()
                seed(collection, template, seeded, size, newest)
                seeded, seconds = size, time.perf_counter() - started
                deep = Classification.from_document(
                    next(everything.find().skip(int(size * 0.9)).limit(1))
                )
                since, until = (
                    (newest - timedelta(minutes=size // 2)).date(),
                    (newest - timedelta(minutes=size // 2 - 1440)).date(),
                )
                cursor = history.encode_cursor(deep)
                older_than_deep = everything.created(
                    "$lt", history.stored("created_at", deep.created_at)
                )
                requests = [
                    ("first history page", lambda: web.get("/history/"), reads()),
                    ("label filter", lambda: web.get("/history/?label=cat"), reads(label="cat")),
                    (
                        "filename search",
                        lambda: web.get("/history/?q=photo-77"),
                        reads(q="photo-77"),
                    ),
                    (
                        "date range (a day)",
                        lambda: web.get(f"/history/?created_after={since}&created_before={until}"),
                        reads(created_after=since, created_before=until),
                    ),
                    (
                        "API page at 90% depth",
                        lambda: api.get(f"/api/v1/classifications/?cursor=o:{cursor}"),
                        everything.find(older_than_deep, limit=history.PAGE_SIZE + 1),
                    ),
                    (
                        "CSV export, first byte",
                        lambda: first_byte(web, "/history/export.csv"),
                        everything.find(),
                    ),
                    (
                        "admin: all results",
                        lambda: staff.get(admin_list),
                        collection.find().sort(admin_order).limit(100),
                    ),
                    (
                        "admin: search",
                        lambda: staff.get(f"{admin_list}?q=photo-77"),
                        collection.find(
                            {"original_filename": {"$regex": "photo\\-77", "$options": "i"}}
                        )
                        .sort(admin_order)
                        .limit(100),
                    ),
                ]
                for name, request, read in requests:
                    rows.append(
                        {
                            "results": f"{size:,}",
                            "request": name,
                            "median ms": round(timed(request, args.repeats), 1),
                            "query plan": plan_summary(read),
                        }
                    )
                print(f"{size:,} results seeded in {seconds:.1f} s", flush=True)
        finally:
            if engine == "MongoDB":
                connection.client.drop_database(BENCH_DATABASE)
    report = "\n\n".join(
        [
            f"# History at scale: {engine}",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs; one user's results, "
            f"medians of {args.repeats} requests through the Django stack in process (page size {history.PAGE_SIZE}).",
            markdown_table(rows),
        ]
    )
    publish("history" if engine != "MongoDB" else "history-mongodb", report)


if __name__ == "__main__":
    main()
