"""Uploads announce their jobs: a burst sends one broker message and runs as one batch, and
no announced job is ever left without a message on its way to it (classifier.batching)."""

import threading

import pytest

from classifier import batching, dispatch
from classifier.models import Classification
from classifier.tasks import classify
from imageclass.dispatch import QueueUnavailable
from imageclass.embedded import free_port
from tests import badimages

Status = Classification.Status


@pytest.fixture
def sent(monkeypatch):
    """The ids that classify messages were sent for, in order (none reaches the broker)."""
    messages = []
    sends(monkeypatch, messages.append)
    return messages


def sends(monkeypatch, send):
    """Route the classify messages of uploads and of the worker's batches to `send(id)`."""
    monkeypatch.setattr(classify, "delay", send)
    monkeypatch.setattr(dispatch, "send", lambda task, pk: send(str(pk)))


def upload(owner):
    return dispatch.submit(badimages.jpeg(), owner=owner, filename="photo.jpg")


def deliver(sent):
    """Run every message sent so far, and those that running them sends, in order."""
    delivered = 0
    while delivered < len(sent):
        classify.apply(args=[sent[delivered]])
        delivered += 1
    return delivered


def test_a_burst_of_uploads_sends_one_message_and_runs_as_one_batch(alice, active_model, sent):
    jobs = [upload(alice) for _ in range(5)]
    assert sent == [str(jobs[0].pk)]
    deliver(sent)
    assert {(job.status, job.timings["batch"]) for job in Classification.objects.all()} == {
        (Status.DONE, 5)
    }


def test_the_first_upload_after_a_batch_took_every_job_sends_a_message(alice, active_model, sent):
    first, second = upload(alice), upload(alice)
    deliver(sent)
    assert Classification.by_pk(second.pk).timings["batch"] == 2  # taken with the first
    third = upload(alice)
    assert sent == [str(first.pk), str(third.pk)]
    deliver(sent)
    assert Classification.by_pk(third.pk).status == Status.DONE


def test_a_batch_that_leaves_jobs_behind_sends_the_next_one_its_message(
    alice, active_model, sent, settings
):
    settings.CLASSIFY_BATCH_SIZE = 2
    jobs = [upload(alice) for _ in range(5)]
    assert deliver(sent) == 3  # the upload's, then one per batch that left jobs behind
    assert sent == [str(jobs[0].pk), str(jobs[2].pk), str(jobs[4].pk)]
    assert [Classification.by_pk(job.pk).timings["batch"] for job in jobs] == [2, 2, 2, 2, 1]


def test_a_message_that_could_not_be_sent_leaves_the_next_upload_to_send_one(
    alice, active_model, monkeypatch
):
    def broker_away(pk):
        raise ConnectionError("broker away")

    sends(monkeypatch, broker_away)
    with pytest.raises(QueueUnavailable):
        upload(alice)
    assert not Classification.objects.exists()
    sent = []
    sends(monkeypatch, sent.append)
    job = upload(alice)
    assert sent == [str(job.pk)]
    deliver(sent)
    assert Classification.by_pk(job.pk).status == Status.DONE


def test_without_redis_an_upload_is_refused_and_nothing_kept(alice, settings, sent):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(QueueUnavailable):
        upload(alice)
    assert not Classification.objects.exists() and sent == []


def test_deleted_and_already_claimed_jobs_in_a_batch_are_left_out(alice, active_model, sent):
    first, deleted, taken, last = (upload(alice) for _ in range(4))
    deleted.delete()
    assert Classification.by_pk(taken.pk).claim()  # another worker's own message got there first
    deliver(sent)
    assert Classification.by_pk(last.pk).timings["batch"] == 2
    assert Classification.by_pk(taken.pk).status == Status.RUNNING  # the other worker's to end


def test_uploads_and_takes_at_once_leave_no_announced_job_without_a_message():
    """Four threads announce 200 ids while another runs the messages they send, taking three
    ids each time: every id ends up the own job of a message or taken by one (taken once at
    most), and the list and the flag end empty."""
    messages, owns, taken_ids, lock = [], [], [], threading.Lock()
    announced = [[f"{uploader}-{n}" for n in range(50)] for uploader in range(4)]
    uploads_done = threading.Event()

    def uploader(pks):
        for pk in pks:
            if batching.announce(pk):
                with lock:
                    messages.append(pk)

    def worker():
        while True:
            with lock:
                pk = messages.pop(0) if messages else None
            if pk is None:
                if uploads_done.is_set() and not messages:
                    return
                continue
            taken, next_pk = batching.take(3, pk)
            with lock:
                owns.append(pk)
                taken_ids.extend(taken)
                if next_pk:
                    messages.append(next_pk)

    running = threading.Thread(target=worker)
    running.start()
    threads = [threading.Thread(target=uploader, args=(pks,)) for pks in announced]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uploads_done.set()
    running.join()
    assert len(taken_ids) == len(set(taken_ids))
    assert set(owns) | set(taken_ids) == {pk for pks in announced for pk in pks}
    client = batching.redis_client(batching.settings.REDIS_URL)
    assert client.llen(batching.ANNOUNCED) == 0 and not client.exists(batching.MESSAGE_ON_ITS_WAY)
