"""Jobs flow through a real Celery worker process: the embedded filesystem broker and Redis."""

import os
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from classifier.models import Classification
from tests import badimages
from tests.workers import start_worker, stop, wait_until_finished

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


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
    assert f"worker process ready with {active_model}" in (tmp_path / "worker.log").read_text()  # preloaded
    # The broker's exchange tables live under VAR_DIR, never in the checkout.
    control = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["control_folder"])
    assert (control / f"{settings.CELERY_TASK_DEFAULT_QUEUE}.exchange").exists()
    assert not (settings.BASE_DIR / "control").exists()


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


def test_a_worker_restart_in_the_middle_of_a_redis_queue_loses_and_repeats_nothing(alice, active_model, tmp_path):
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    sender = Celery(broker=REDIS_URL)
    jobs = [Classification.store(badimages.jpeg((30 + i, 30)), owner=alice, filename=f"{i}.jpg") for i in range(40)]
    for job in jobs:
        sender.send_task("classifier.tasks.classify", args=[str(job.pk)], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    ids = [job.pk for job in jobs]
    worker = start_worker(tmp_path / "worker-1.log", CELERY_BROKER_URL=REDIS_URL)
    try:
        while not Classification.objects.filter(pk__in=ids, status=Classification.Status.DONE).exists():
            time.sleep(0.05)
    finally:
        stop(worker)  # SIGTERM: what `docker compose restart worker` sends
    unfinished = Classification.objects.filter(pk__in=ids).exclude(status=Classification.Status.DONE).count()
    assert unfinished > 0, "the queue was drained before the restart; the test proves nothing"

    worker = start_worker(tmp_path / "worker-2.log", CELERY_BROKER_URL=REDIS_URL)
    try:
        finished = wait_until_finished(ids)
    finally:
        stop(worker)
        sender.close()
    assert len(finished) == len(ids) == Classification.objects.count()
    assert {job.status for job in finished} == {Classification.Status.DONE}
    assert {job.attempts for job in finished} == {1}  # no job ran twice
