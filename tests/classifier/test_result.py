"""The result page, its live status and the image: visible to the owner only."""

import pytest
from django.test import Client
from django.urls import reverse

from classifier import files
from classifier.models import Classification
from classifier.tasks import classify
from tests import badimages


@pytest.fixture
def job(alice, active_model):
    return Classification.store(
        badimages.jpeg(), owner=alice, filename="<img src=x onerror=alert(1)>.jpg"
    )


def test_owner_sees_the_page_status_and_image(alice_client, job):
    page = alice_client.get(reverse("result", args=[job.pk])).content.decode()
    assert 'data-status="queued"' in page
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in page and "<img src=x" not in page  # escaped
    status = alice_client.get(reverse("result_status", args=[job.pk])).json()
    assert status["status"] == "queued" and status["finished"] is False
    image = alice_client.get(reverse("result_image", args=[job.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert image["X-Content-Type-Options"] == "nosniff"
    assert b"".join(image.streaming_content) == files.read_image(job)


def test_thumbnail_is_the_original_until_the_worker_made_one(alice_client, alice, active_model):
    job = Classification.store(badimages.jpeg((400, 300)), owner=alice, filename="big.jpg")
    url = reverse("result_thumbnail", args=[job.pk])
    assert b"".join(alice_client.get(url).streaming_content) == files.read_image(job)
    classify.apply(args=[str(job.pk)])
    response = alice_client.get(url)
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) != files.read_image(job)


def test_status_reports_the_finished_result(alice_client, job):
    classify.apply(args=[str(job.pk)])
    status = alice_client.get(reverse("result_status", args=[job.pk])).json()
    assert status["status"] == "done" and status["finished"] is True
    assert len(status["predictions"]) == 3 and len(status["all_predictions"]) == 3
    assert status["model_version"] == "tiny v1"
    assert status["uncertain"] == (status["top_probability"] < 0.5)


@pytest.mark.parametrize("name", ["result", "result_status", "result_image", "result_thumbnail"])
def test_others_get_404(client, job, bob, charlie, name):
    url = reverse(name, args=[job.pk])
    for user in (bob, charlie):
        client.force_login(user)
        assert client.get(url).status_code == 404
    assert Client().get(url).status_code == 404


def test_malformed_ids_are_404(alice_client):
    assert alice_client.get("/c/not-an-id/").status_code == 404
    assert alice_client.get("/c/000000000000000000000000/status").status_code == 404
