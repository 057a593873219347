"""Faults against real processes: the database down, the broker down and back, a worker
killed in the middle of a job, a job that kills its worker every time, and a corrupted model
artifact. The service answers 503 where it cannot work, keeps nothing half-written, and every
job ends exactly once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.db import connection

from classifier import dispatch
from classifier.models import Classification, ModelVersion
from classifier.tasks import classify
from imageclass.embedded import EmbeddedRedis, free_port, terminate
from tests import badimages
from tests.tinymodel import make_run_dir
from tests.workers import kill_hard, start_scheduler, start_worker, stop, wait_until_finished

Status = Classification.Status

UPLOAD_AS_ALICE = """
import io, json, django; django.setup()
from rest_framework.test import APIClient
from accounts.models import User
from tests import badimages
api = APIClient(HTTP_HOST="localhost", raise_request_exception=False)
api.force_authenticate(User.objects.get(username="alice"))
upload = io.BytesIO(badimages.jpeg()); upload.name = "cat.jpg"
response = api.post("/api/v1/classifications/", {"image": upload}, format="multipart")
print(json.dumps([response.status_code, response.json()]))
"""


def run_django(script, **env):
    """`script` in a fresh Django process on the test database (its settings from `env`)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imageclass.settings",
        "MONGODB_NAME": connection.settings_dict["NAME"],
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def stored_files():
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def test_database_down_answers_503_on_pages_and_the_api():
    # Each request as a visitor whose credentials make the server consult the database.
    script = """
import json, django; django.setup()
from django.test import Client
answers = {}
for method, path, extra in [
    ("get", "/", {}),
    ("get", "/history/", {"HTTP_COOKIE": "sessionid=0123456789abcdefghijklmnopqrstuv"}),
    ("post", "/accounts/login/", {"data": {"username": "a", "password": "b"}}),
    ("get", "/api/v1/classifications/", {"HTTP_AUTHORIZATION": "Token abc"}),
    ("get", "/api/v1/models/active/", {"HTTP_AUTHORIZATION": "Token abc"}),
]:
    client = Client(HTTP_HOST="localhost", raise_request_exception=False)
    response = getattr(client, method)(path, **extra)
    answers[f"{method} {path}"] = [response.status_code, response.get("Retry-After"), response.content.decode()[:400]]
print(json.dumps(answers))
"""
    answers = run_django(
        script,
        MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        MONGODB_TIMEOUT_MS="300",
    )
    for request, (status, retry_after, body) in answers.items():
        assert status == 503 and retry_after, request
        assert "temporarily unavailable" in body, request


def test_broker_down_refuses_uploads_with_503_and_jobs_flow_when_it_returns(
    alice, active_model, tmp_path
):
    redis_port = free_port()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    files_before = stored_files()

    status, body = run_django(UPLOAD_AS_ALICE, CELERY_BROKER_URL=broker)
    assert status == 503 and "queue is unavailable" in body["detail"]
    assert (
        Classification.objects.count() == 0 and stored_files() == files_before
    )  # nothing half-written

    redis = EmbeddedRedis(":memory:", redis_port).start()
    worker = start_worker(tmp_path / "worker.log", CELERY_BROKER_URL=broker)
    try:
        status, body = run_django(UPLOAD_AS_ALICE, CELERY_BROKER_URL=broker)
        assert status == 202
        (job,) = wait_until_finished([body["id"]])
    finally:
        stop(worker)
        redis.stop()
    assert job.status == Status.DONE


def block_reads_of(job) -> bytes:
    """Swap the job's stored image for a FIFO with no writer: a worker reading it blocks, so
    the job is certainly in the middle of running. Returns the image bytes."""
    path = storages["default"].path(job.image_key)
    data = Path(path).read_bytes()
    os.remove(path)
    os.mkfifo(path)
    return data


def wait_for_status(job, status, timeout=60):
    deadline = time.monotonic() + timeout
    while Classification.objects.get(pk=job.pk).status != status:
        if time.monotonic() > deadline:
            pytest.fail(f"job never reached {status}")
        time.sleep(0.1)


def test_a_worker_killed_in_the_middle_of_a_job_completes_it_once_after_restart(
    alice, active_model, tmp_path
):
    job = Classification.store(badimages.jpeg(), owner=alice, filename="cat.jpg")
    data = block_reads_of(job)
    worker = start_worker(tmp_path / "worker-1.log")
    try:
        classify.delay(str(job.pk))
        wait_for_status(job, Status.RUNNING)
    finally:
        kill_hard(worker)  # SIGKILL, mid-job
    path = Path(storages["default"].path(job.image_key))
    path.unlink()
    path.write_bytes(data)

    # The restarted worker's sweep finds the job abandoned past the time limit and sends it again.
    limits = {"CLASSIFY_TIME_LIMIT": "3", "CLASSIFY_SOFT_TIME_LIMIT": "2", "SWEEP_INTERVAL": "5"}
    worker = start_worker(tmp_path / "worker-2.log", beat=True, **limits)
    try:
        (job,) = wait_until_finished([job.pk], timeout=60)
    finally:
        stop(worker)
    assert job.status == Status.DONE and job.top_label in job.class_names
    assert job.attempts == 2 and Classification.objects.count() == 1


def kill_pool_processes(worker):
    """SIGKILL the worker's pool processes, as the kernel's OOM killer would; the worker itself
    lives on and starts new ones."""
    # A replacement pool process may be forked by any of the worker's threads.
    children = {
        pid
        for task in Path(f"/proc/{worker.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)


def test_a_job_that_kills_its_worker_every_time_ends_failed(alice, active_model, tmp_path):
    job = Classification.store(badimages.jpeg(), owner=alice, filename="cursed.jpg")
    block_reads_of(job)  # every attempt hangs in the job, and is killed there
    limits = {
        "CLASSIFY_TIME_LIMIT": "3",
        "CLASSIFY_SOFT_TIME_LIMIT": "2",
        "SWEEP_INTERVAL": "5",
        "CLASSIFY_MAX_ATTEMPTS": "2",
    }
    worker = start_worker(tmp_path / "worker.log", **limits)
    scheduler = start_scheduler(tmp_path / "beat.log", **limits)
    try:
        classify.delay(str(job.pk))
        deadline = time.monotonic() + 90
        killed = 0
        while (
            not (job := Classification.objects.get(pk=job.pk)).is_finished
            and time.monotonic() < deadline
        ):
            if job.status == Status.RUNNING and job.attempts > killed:
                kill_pool_processes(worker)
                killed = job.attempts
            time.sleep(0.05)
    finally:
        stop(worker)
        terminate(scheduler)
    # Bounded: failed with a reason at the attempt limit (by the sweep, or by the next delivery).
    assert job.status == Status.FAILED
    assert "abandoned" in job.error or "attempted too many times" in job.error
    # The delivery past the limit may itself be killed before it records the failure.
    assert 2 <= killed <= job.attempts <= 3


def test_a_corrupted_active_model_falls_back_and_readyz_says_so(
    client, alice, active_model, tmp_path
):
    newer = ModelVersion.publish(make_run_dir(tmp_path / "v2"), "tiny", activate=True)
    Path(storages["models"].path(newer.artifact_key)).write_bytes(b"not a keras file")
    worker = start_worker(tmp_path / "worker.log")
    try:
        job = dispatch.submit(badimages.jpeg(), owner=alice, filename="cat.jpg")
        (job,) = wait_until_finished([job.pk])
    finally:
        stop(worker)
    assert job.status == Status.DONE and job.model_version == active_model
    model_check = client.get("/readyz").json()["checks"]["model"]
    assert model_check["ok"] and "does not match its recorded sha256" in model_check["fallback"]


def test_only_unreachable_services_become_503(rf):
    from django.db import DatabaseError, IntegrityError
    from pymongo.errors import ServerSelectionTimeoutError

    from imageclass.middleware import ServiceUnavailableMiddleware

    middleware = ServiceUnavailableMiddleware(lambda request: None)
    unreachable = DatabaseError("no server")
    unreachable.__cause__ = ServerSelectionTimeoutError("timed out")
    assert middleware.process_exception(rf.get("/api/v1/me/"), unreachable).status_code == 503
    assert (
        middleware.process_exception(rf.get("/"), IntegrityError("duplicate key")) is None
    )  # a bug: 500
    assert middleware.process_exception(rf.get("/"), DatabaseError("bad query")) is None
