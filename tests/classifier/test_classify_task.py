"""The classify task's states: done, failed with reasons, retries, running twice, takeover,
model reload on activation and fallback to the previous version."""

from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from classifier import dispatch, files, notify
from classifier.models import Classification, ModelVersion
from classifier.serving import inference
from classifier.tasks import classify, sweep_stuck_jobs
from tests import badimages
from tests.tinymodel import make_run_dir

Status = Classification.Status


@pytest.fixture(autouse=True)
def fresh_model_cache():
    inference.forget()


def stored(alice, data=None):
    return Classification.store(data or badimages.jpeg(), owner=alice, filename="photo.jpg")


def submitted(alice, data=None):
    """A queued job with its message in the broker, as uploads make them: batches take
    companions only while messages wait."""
    return dispatch.submit(data or badimages.jpeg(), owner=alice, filename="photo.jpg")


def run(job):
    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    return job


def test_a_job_ends_done_with_the_full_result(alice, active_model):
    job = run(stored(alice, badimages.jpeg((400, 300))))
    assert job.status == Status.DONE
    assert job.model_version == active_model and job.model_name == "tiny v1"
    assert job.class_names == ["blue", "green", "red"]
    assert len(job.probabilities) == 3 and sum(job.probabilities) == pytest.approx(1, abs=1e-5)
    assert [p["label"] for p in job.predictions] == sorted(
        job.class_names, key=lambda c: -job.probabilities[job.class_names.index(c)]
    )
    assert job.top_label == job.predictions[0]["label"]
    assert job.top_probability == pytest.approx(max(job.probabilities))
    assert job.attempts == 1 and job.finished_at >= job.started_at >= job.created_at
    assert {"queue_ms", "read_ms", "preprocess_ms", "predict_ms", "total_ms"} <= set(job.timings)
    from PIL import Image

    with storages["default"].open(job.thumbnail_key) as f, Image.open(f) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 256
    assert job.thumbnail_key.startswith("thumbnails/")
    job.delete()
    assert not storages["default"].exists(job.thumbnail_key) and not storages["default"].exists(
        job.image_key
    )


def test_a_jpeg_no_larger_than_a_thumbnail_is_its_own(alice, active_model):
    small, png = run(stored(alice)), run(stored(alice, badimages.encode(badimages.photo(), "PNG")))
    assert small.thumbnail_key == small.image_key
    assert png.thumbnail_key.startswith("thumbnails/")  # served as a JPEG like every thumbnail
    small.delete()
    assert not storages["default"].exists(small.image_key)


def test_running_twice_changes_nothing(alice, active_model):
    job = run(stored(alice))
    finished_at = job.finished_at
    job = run(job)
    assert (job.status, job.finished_at, job.attempts) == (Status.DONE, finished_at, 1)


def test_a_job_another_worker_is_running_is_left_alone(alice, active_model):
    job = stored(alice)
    assert job.claim(stale_before=timezone.now() - timedelta(minutes=5))
    job = run(job)
    assert (job.status, job.attempts) == (Status.RUNNING, 1)


def test_a_job_abandoned_by_a_dead_worker_is_taken_over(alice, active_model):
    job = stored(alice)
    Classification.objects.filter(pk=job.pk).update(
        status=Status.RUNNING, started_at=timezone.now() - timedelta(hours=1), attempts=1
    )
    job = run(job)
    assert (job.status, job.attempts) == (Status.DONE, 2)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda key: storages["default"].delete(key), "The stored image is missing."),
        (lambda key: overwrite(key, badimages.truncated_jpeg()), "The image could not be read"),
    ],
    ids=["missing", "corrupt"],
)
def test_bad_images_fail_at_once_with_a_reason(alice, active_model, damage, reason):
    job = stored(alice)
    damage(job.image_key)
    job = run(job)
    assert job.status == Status.FAILED and job.error.startswith(reason)
    assert job.attempts == 1


def overwrite(key, data):
    with open(storages["default"].path(key), "wb") as f:
        f.write(data)


def test_no_active_model_fails_with_a_reason(alice, db):
    job = run(stored(alice))
    assert job.status == Status.FAILED and "No model is active" in job.error


def test_transient_storage_errors_retry_with_backoff_then_fail(alice, active_model, settings):
    settings.CLASSIFY_MAX_RETRIES = 2
    job = stored(alice)
    path = storages["default"].path(job.image_key)
    import os

    os.remove(path)
    os.mkdir(path)  # reading a folder is an OSError that is not "missing": a storage fault
    job = run(job)
    assert job.status == Status.FAILED and "failed after 3 tries" in job.error
    assert job.attempts == 3


def test_a_job_that_keeps_crashing_its_worker_ends_failed(alice, active_model, settings):
    job = stored(alice)
    Classification.objects.filter(pk=job.pk).update(attempts=settings.CLASSIFY_MAX_ATTEMPTS)
    job = run(job)
    assert job.status == Status.FAILED and "attempted too many times" in job.error


def test_the_worker_uses_a_newly_activated_version(alice, active_model, tmp_path):
    assert run(stored(alice)).model_version == active_model
    second = ModelVersion.publish(
        make_run_dir(tmp_path / "v2", ["cat", "dog"]), "tiny", activate=True
    )
    job = run(stored(alice))
    assert job.model_version == second and job.model_name == "tiny v2"
    assert job.class_names == ["cat", "dog"] and len(job.probabilities) == 2
    assert inference.loaded_versions() == [second.pk]  # the old model was let go


def test_a_corrupt_active_artifact_falls_back_to_the_previous_version(
    alice, active_model, tmp_path
):
    second = ModelVersion.publish(make_run_dir(tmp_path / "v2"), "tiny", activate=True)
    with open(storages["models"].path(second.artifact_key), "wb") as f:
        f.write(b"not a model")
    job = run(stored(alice))
    assert job.status == Status.DONE and job.model_version == active_model
    second.refresh_from_db()
    assert "does not match its recorded sha256" in second.load_error


def test_old_results_keep_their_labels_after_a_new_version(alice, active_model, tmp_path):
    job = run(stored(alice))
    ModelVersion.publish(make_run_dir(tmp_path / "v2", ["cat", "dog"]), "tiny", activate=True)
    job.refresh_from_db()
    assert job.class_names == ["blue", "green", "red"] and job.model_name == "tiny v1"


def test_sweep_requeues_stuck_jobs_then_gives_up(alice, active_model, settings):
    settings.SWEEP_MAX_REQUEUES = 1
    long_ago = timezone.now() - timedelta(hours=1)
    queued = stored(alice)
    running = stored(alice)
    Classification.objects.filter(pk=queued.pk).update(queued_at=long_ago)
    Classification.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1
    )
    fresh = stored(alice)
    working = stored(alice)  # running within its time limit
    Classification.objects.filter(pk=working.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=1
    )
    assert sweep_stuck_jobs.apply().get() == 2
    for job in (queued, running):
        job.refresh_from_db()
        assert (job.status, job.requeues) == (Status.QUEUED, 1)
    for job in (fresh, working):
        job.refresh_from_db()
        assert job.requeues == 0
    assert working.status == Status.RUNNING
    Classification.objects.filter(pk=queued.pk).update(queued_at=long_ago)
    sweep_stuck_jobs.apply()
    queued.refresh_from_db()
    assert queued.status == Status.FAILED and "abandoned" in queued.error


def test_queued_jobs_run_together_in_one_batch(alice, active_model):
    jobs = [submitted(alice) for _ in range(4)]
    run(jobs[0])
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.timings["batch"]) == (Status.DONE, 1, 4)
    finished = [job.finished_at for job in jobs]
    for job in jobs[1:]:  # their own messages arrive later and change nothing
        assert run(job).finished_at in finished


def test_a_batch_never_exceeds_its_size(alice, active_model, settings):
    settings.CLASSIFY_BATCH_SIZE = 2
    jobs = [submitted(alice) for _ in range(3)]
    run(jobs[0])
    assert [Classification.objects.get(pk=job.pk).status for job in jobs] == [
        Status.DONE,
        Status.DONE,
        Status.QUEUED,
    ]


def test_only_announced_jobs_join_a_batch(alice, active_model):
    alone, unannounced = (
        submitted(alice),
        stored(alice),
    )  # the second is recorded, not yet announced
    assert run(alone).timings["batch"] == 1
    assert Classification.objects.get(pk=unannounced.pk).status == Status.QUEUED


def test_a_bad_image_in_a_batch_fails_alone(alice, active_model):
    first, broken, last = submitted(alice), submitted(alice), submitted(alice)
    overwrite(broken.image_key, badimages.truncated_jpeg())
    run(first)
    statuses = {job.pk: Classification.objects.get(pk=job.pk) for job in (first, broken, last)}
    assert statuses[first.pk].status == statuses[last.pk].status == Status.DONE
    assert statuses[broken.pk].status == Status.FAILED
    assert statuses[broken.pk].error.startswith("The image could not be read")


def test_a_companion_with_a_storage_fault_goes_back_to_the_queue_with_its_own_message(
    alice, active_model, monkeypatch
):
    import os

    first, faulty = submitted(alice), submitted(alice)
    sent = []
    monkeypatch.setattr(classify, "apply_async", lambda args, countdown: sent.append(args))
    path = storages["default"].path(faulty.image_key)
    os.remove(path)
    os.mkdir(path)
    assert run(first).status == Status.DONE
    faulty.refresh_from_db()
    assert faulty.status == Status.QUEUED and sent == [[str(faulty.pk)]]


def test_a_batch_claims_and_ends_its_jobs_each_only_where_the_stored_state_allows(
    alice, active_model
):
    queued, taken = stored(alice), stored(alice)
    assert Classification.objects.get(pk=taken.pk).claim()  # another worker got there first
    moves = [(job, {"status": Status.QUEUED}, *job.claiming()) for job in (queued, taken)]
    assert Classification.transition_many(moves) == [True, False]
    assert (queued.status, queued.attempts) == (Status.RUNNING, 1)  # the instance holds the claim
    assert (taken.status, taken.attempts) == (Status.QUEUED, 0)  # untouched: it lost
    assert Classification.objects.get(pk=taken.pk).attempts == 1  # the winner's claim stands
    assert Classification.transition_many([]) == []


@pytest.mark.parametrize("side", [400, 64])  # a thumbnail of its own, or the original as one
def test_a_companion_ended_elsewhere_while_its_batch_ran_keeps_that_outcome(
    alice, active_model, monkeypatch, side
):
    first, swept, last = (submitted(alice, badimages.jpeg((side, side))) for _ in range(3))
    end_many, store_thumbnail = Classification.end_many, files.store_thumbnail
    thumbnails, signalled = {}, []
    monkeypatch.setattr(notify, "jobs_ended", signalled.extend)

    def recorded_thumbnail(job, image):
        thumbnails[job.pk] = store_thumbnail(job, image)
        return thumbnails[job.pk]

    def swept_meanwhile(cls, endings):
        cls.objects.filter(pk=swept.pk).update(
            status=Status.FAILED, error="abandoned"
        )  # the sweeper, say
        return end_many(endings)

    monkeypatch.setattr(files, "store_thumbnail", recorded_thumbnail)
    monkeypatch.setattr(Classification, "end_many", classmethod(swept_meanwhile))
    run(first)
    ended = {job.pk: Classification.objects.get(pk=job.pk) for job in (first, swept, last)}
    assert ended[first.pk].status == ended[last.pk].status == Status.DONE
    assert (ended[swept.pk].status, ended[swept.pk].error, ended[swept.pk].thumbnail_key) == (
        Status.FAILED,
        "abandoned",
        "",
    )
    made_one = side > 256  # and deleted it: the job ended elsewhere
    assert [storages["default"].exists(thumbnails[job.pk]) for job in (first, swept, last)] == [
        True,
        not made_one,
        True,
    ]
    assert storages["default"].exists(swept.image_key)
    assert sorted(signalled) == sorted([first.pk, last.pk])  # the sweeper signals its own


def test_workers_claiming_the_same_announced_jobs_at_once_each_win_different_ones(
    alice, active_model
):
    import threading

    from django.db import connections

    jobs = [stored(alice) for _ in range(8)]
    start, claimed = threading.Barrier(4), []

    def worker():
        start.wait()
        claimed.append(Classification.claim_announced([str(job.pk) for job in jobs]))
        connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [job.pk for batch in claimed for job in batch]
    assert sorted(won) == sorted(job.pk for job in jobs)  # every job once, none twice
    assert {Classification.objects.get(pk=job.pk).attempts for job in jobs} == {1}
    assert all(
        job.status == Status.RUNNING and job.attempts == 1 for batch in claimed for job in batch
    )
