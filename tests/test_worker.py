"""Jobs flow through a real Celery worker process: the embedded filesystem broker and Redis."""

import os
import subprocess
import sys
import time

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from classifier.models import Classification
from tests import badimages

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def start_worker(log_path, **env):
    environment = {
        **os.environ,
        "MONGODB_NAME": connection.settings_dict["NAME"],  # the test database
        "CELERY_WORKER_CONCURRENCY": "1",
        **env,
    }
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "imageclass", "worker", "--loglevel", "INFO",
         "--queues", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle"],
        env=environment, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def stop(process):
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until_finished(ids, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(Classification.objects.filter(pk__in=ids))
        if all(job.is_finished for job in jobs):
            return jobs
        time.sleep(0.3)
    pytest.fail(f"jobs still unfinished: {[(j.pk, j.status) for j in jobs]}")


def test_uploads_are_classified_by_a_worker_on_the_embedded_broker(alice, active_model, tmp_path):
    worker = start_worker(tmp_path / "worker.log")
    try:
        jobs = [Classification.submit(badimages.jpeg((40 + i, 30)), owner=alice, filename=f"{i}.jpg") for i in range(3)]
        jobs.append(Classification.submit(badimages.jpeg(), owner=alice, filename="again.jpg"))
        finished = wait_until_finished([job.pk for job in jobs])
    finally:
        stop(worker)
    assert {job.status for job in finished} == {Classification.Status.DONE}
    assert all(job.attempts == 1 and job.top_label in job.class_names for job in finished)


def redis_available() -> bool:
    import redis

    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def test_jobs_flow_through_redis(alice, active_model, tmp_path):
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    worker = start_worker(tmp_path / "worker.log", CELERY_BROKER_URL=REDIS_URL)
    # This process was configured with the filesystem broker; send through Redis explicitly.
    sender = Celery(broker=REDIS_URL)
    try:
        jobs = [Classification.store(badimages.jpeg(), owner=alice, filename=f"{i}.jpg") for i in range(3)]
        for job in jobs:
            sender.send_task("classifier.tasks.classify", args=[str(job.pk)], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
        finished = wait_until_finished([job.pk for job in jobs])
    finally:
        stop(worker)
        sender.close()
    assert {job.status for job in finished} == {Classification.Status.DONE}
