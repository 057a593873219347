"""GET /api/v1/classifications/{id}/?wait=N, and POST /api/v1/classifications/?wait=N: the answer
comes when the job ends (signalled through Redis), or after N seconds with the job as it is. A
GET without ?wait= waits API_POLL_WAIT seconds (a long poll); an upload waits only when asked."""

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import ApiToken
from classifier import notify
from classifier.models import Classification
from tests import badimages

Status = Classification.Status


@pytest.fixture
def api(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(alice)}")
    return client


@pytest.fixture
def queued(alice):
    return Classification.store(badimages.jpeg(), owner=alice, filename="photo.jpg")


def in_thread(function) -> threading.Thread:
    thread = threading.Thread(target=function)
    thread.start()
    return thread


def end_later(job, delay):
    def end():
        time.sleep(delay)
        job.claim()
        job.fail("ended by the test")

    return in_thread(end)


def timed_get(api, job, wait=None):
    """The job's GET, with ?wait= unless `wait` is None; the answer and the seconds it took."""
    started = time.monotonic()
    response = api.get(f"/api/v1/classifications/{job.pk}/", {} if wait is None else {"wait": wait})
    return response, time.monotonic() - started


def test_a_wait_answers_when_the_job_ends(api, queued):
    thread = end_later(queued, 0.3)
    response, seconds = timed_get(api, queued, 5)
    thread.join()
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert 0.25 < seconds < 3


def test_a_wait_that_runs_out_answers_with_the_job_as_it_is(api, queued):
    response, seconds = timed_get(api, queued, 0.3)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert seconds >= 0.3


def test_a_poll_without_wait_waits_api_poll_wait_for_the_end(api, queued, settings):
    settings.API_POLL_WAIT = 3
    thread = end_later(queued, 0.3)
    response, seconds = timed_get(api, queued)
    thread.join()
    assert response.json()["status"] == "failed" and 0.25 < seconds < 2.5


def test_a_poll_without_wait_answers_after_api_poll_wait(api, queued, settings):
    settings.API_POLL_WAIT = 0.3
    response, seconds = timed_get(api, queued)
    assert response.json()["status"] == "queued" and 0.3 <= seconds < 2


def test_wait_0_answers_an_unfinished_job_at_once(api, queued, settings):
    settings.API_POLL_WAIT = 5
    response, seconds = timed_get(api, queued, 0)
    assert response.json()["status"] == "queued" and seconds < 1


def test_a_finished_job_answers_at_once(api, queued):
    queued.claim()
    queued.fail("done before the request")
    response, seconds = timed_get(api, queued, 5)
    assert response.json()["status"] == "failed" and seconds < 1


@pytest.mark.parametrize("wait", ["soon", "-1", "11", "nan", "inf"])
def test_a_bad_wait_is_refused(api, queued, wait):
    response = api.get(f"/api/v1/classifications/{queued.pk}/", {"wait": wait})
    assert response.status_code == 400 and "wait" in response.json()


def test_waiting_on_someone_elses_job_is_a_404(api, bob):
    job = Classification.store(badimages.jpeg(), owner=bob, filename="theirs.jpg")
    response, seconds = timed_get(api, job, 5)
    assert response.status_code == 404 and seconds < 1


def test_every_waiter_wakes(api, queued):
    woken = []
    waiters = [
        threading.Thread(target=lambda: woken.append(notify.wait_for_end(queued.pk, 5)))
        for _ in range(2)
    ]
    for waiter in waiters:
        waiter.start()
    end_later(queued, 0.3).join()
    response, seconds = timed_get(api, queued, 5)  # a late waiter still sees the signal
    for waiter in waiters:
        waiter.join()
    assert woken == [True, True] and response.json()["status"] == "failed" and seconds < 1


def end_next_job(owner, delay):
    """End the owner's next queued job `delay` seconds after it appears (no worker runs here)."""

    def find_and_end():
        deadline = time.monotonic() + 5
        while (
            job := Classification.objects.filter(owner=owner, status=Status.QUEUED).first()
        ) is None:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        end_later(job, delay).join()

    return in_thread(find_and_end)


def timed_post(api, wait=None):
    """An upload, with ?wait= unless `wait` is None; the answer and the seconds it took."""
    started = time.monotonic()
    query = "" if wait is None else f"?wait={wait}"
    response = api.post(
        f"/api/v1/classifications/{query}",
        {"image": SimpleUploadedFile("photo.jpg", badimages.jpeg(), "image/jpeg")},
        format="multipart",
    )
    return response, time.monotonic() - started


def test_an_upload_does_not_wait_unless_asked(api, settings):
    settings.API_POLL_WAIT = 5
    response, seconds = timed_post(api)
    assert response.status_code == 202 and seconds < 1


def test_an_upload_that_waits_answers_201_with_the_result(api, alice):
    thread = end_next_job(alice, 0.3)
    response, seconds = timed_post(api, 5)
    thread.join()
    assert response.status_code == 201 and response.json()["status"] == "failed"
    assert response["Location"].endswith(f"/api/v1/classifications/{response.json()['id']}/")
    assert 0.25 < seconds < 3


def test_an_upload_whose_wait_runs_out_answers_202_with_the_queued_job(api, alice):
    response, seconds = timed_post(api, 0.3)
    assert response.status_code == 202 and response.json()["status"] == "queued" and seconds >= 0.3
    assert Classification.objects.get(pk=response.json()["id"]).owner == alice


def test_several_files_share_one_wait(api, alice):
    thread = end_next_job(alice, 0.2)  # the first file's job ends, the second's never does
    started = time.monotonic()
    response = api.post(
        "/api/v1/classifications/?wait=1",
        {
            "image": [
                SimpleUploadedFile(f"{name}.jpg", badimages.jpeg(), "image/jpeg")
                for name in ("first", "second")
            ]
        },
        format="multipart",
    )
    seconds = time.monotonic() - started
    thread.join()
    assert response.status_code == 207
    statuses = sorted(answer["status"] for answer in response.json()["files"])
    assert statuses == [201, 202] and 1 <= seconds < 2


@pytest.mark.parametrize("wait", ["soon", "11", "nan"])
def test_an_upload_with_a_bad_wait_is_refused_and_nothing_is_kept(api, alice, wait):
    response, _ = timed_post(api, wait)
    assert response.status_code == 400 and "wait" in response.json()
    assert not Classification.objects.filter(owner=alice).exists()


def test_the_end_signal_expires():
    notify.jobs_ended(["ended"])
    assert 0 < notify.connection().ttl(notify.signal_key("ended")) <= notify.SIGNAL_LIFETIME
