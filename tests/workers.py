"""A real Celery worker process for the tests, on the test database and the test VAR_DIR."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from classifier.models import Classification
from imageclass.embedded import terminate


def start_worker(log_path, beat=False, **env):
    """A worker process in its own process group (see kill_hard); with `beat`, the periodic
    sweep for stuck jobs runs in it, as in `make run`."""
    environment = {
        **os.environ,
        "MONGODB_NAME": connection.settings_dict["NAME"],  # the test database
        "CELERY_WORKER_CONCURRENCY": "1",
        **env,
    }
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imageclass",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--without-gossip",
            "--without-mingle",
            *(["--beat", "--schedule", str(log_path.with_suffix(".beat"))] if beat else []),
        ],
        env=environment,
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def start_scheduler(log_path, **env):
    """Celery beat on its own (the periodic sweep for stuck jobs), as the compose stack runs it."""
    environment = {**os.environ, "MONGODB_NAME": connection.settings_dict["NAME"], **env}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imageclass",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log_path.with_suffix(".schedule")),
        ],
        env=environment,
        cwd=settings.BASE_DIR,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )


def kill_hard(process):
    """SIGKILL the worker and its pool processes at once: no shutdown, no acknowledgement."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop(process):
    terminate(process, timeout=20)


def wait_until_finished(ids, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(Classification.objects.filter(pk__in=ids))
        if all(job.is_finished for job in jobs):
            return jobs
        time.sleep(0.3)
    pytest.fail(f"jobs still unfinished: {[(j.pk, j.status) for j in jobs]}")
