"""Jobs flow through a real Celery worker process and the Redis broker."""

import time

from classifier import dispatch
from classifier.models import Classification
from tests import badimages
from tests.workers import start_worker, stop, wait_until_finished


def test_uploads_are_classified_by_a_worker(alice, active_model, tmp_path):
    worker = start_worker(tmp_path / "worker.log")
    try:
        jobs = [
            dispatch.submit(badimages.jpeg((40 + i, 30)), owner=alice, filename=f"{i}.jpg")
            for i in range(3)
        ]
        jobs.append(dispatch.submit(badimages.jpeg(), owner=alice, filename="again.jpg"))
        finished = wait_until_finished([job.pk for job in jobs])
    finally:
        stop(worker)
    assert {job.status for job in finished} == {Classification.Status.DONE}
    assert all(job.attempts == 1 and job.top_label in job.class_names for job in finished)
    assert (
        f"worker process ready with {active_model}" in (tmp_path / "worker.log").read_text()
    )  # preloaded


def test_a_worker_restart_in_the_middle_of_a_redis_queue_loses_and_repeats_nothing(
    alice, active_model, tmp_path
):
    jobs = [
        dispatch.submit(badimages.jpeg((30 + i, 30)), owner=alice, filename=f"{i}.jpg")
        for i in range(40)
    ]
    ids = [job.pk for job in jobs]
    worker = start_worker(tmp_path / "worker-1.log")
    try:
        while not Classification.objects.filter(
            pk__in=ids, status=Classification.Status.DONE
        ).exists():
            time.sleep(0.05)
    finally:
        stop(worker)  # SIGTERM: what `docker compose restart worker` sends
    unfinished = (
        Classification.objects.filter(pk__in=ids).exclude(status=Classification.Status.DONE).count()
    )
    assert unfinished > 0, "the queue was drained before the restart; the test proves nothing"

    worker = start_worker(tmp_path / "worker-2.log")
    try:
        finished = wait_until_finished(ids)
    finally:
        stop(worker)
    assert len(finished) == len(ids) == Classification.objects.count()
    assert {job.status for job in finished} == {Classification.Status.DONE}
    assert {job.attempts for job in finished} == {1}  # no job ran twice
