"""Every file of the bad-input corpus through the web form and the API: a clear 4xx with
nothing stored, or a correct result; never a 5xx; file names stored without paths and shown
escaped."""

import html
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Classification
from classifier.tasks import classify
from tests.conftest import api_client_for
from tests.hostile_corpus import ACCEPT, CASES

IDS = [case.name for case in CASES]


def stored_files():
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def web_upload(client, case):
    return client.post(
        reverse("home"), {"images": SimpleUploadedFile(case.filename, case.data, "image/jpeg")}
    )


def api_upload(api, case):
    file = SimpleUploadedFile(case.filename, case.data, "application/octet-stream")
    return api.post("/api/v1/classifications/", {"image": file}, format="multipart")


def check_result(client, job):
    """The job classifies correctly and its name is stored path-free and shown escaped."""
    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    assert job.status == Classification.Status.DONE, job.error
    assert job.top_label in job.class_names and len(job.predictions) > 0
    assert not any(c in job.original_filename for c in "/\\\x00")
    page = client.get(reverse("result", args=[job.pk])).content.decode()
    history = client.get(reverse("history")).content.decode()
    if job.original_filename:
        for shown in (page, history):
            assert (
                html.escape(job.original_filename, quote=True) in shown
                or job.original_filename not in shown
            )
            assert "<script>alert" not in shown and "<img src=x" not in shown


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_web_upload(case, alice, alice_client, active_model):
    files_before = stored_files()
    response = web_upload(alice_client, case)

    assert response.status_code < 500
    if case.expect == ACCEPT:
        assert response.status_code == 302, response.content.decode()[:2000]
        check_result(alice_client, Classification.objects.get())
    else:
        assert response.status_code == 400
        (message,) = response.context["form"].errors["images"]
        assert html.escape(message) in response.content.decode()
        assert Classification.objects.count() == 0 and stored_files() == files_before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_api_upload(case, alice, alice_client, active_model):
    files_before = stored_files()
    response = api_upload(api_client_for(alice), case)

    assert response.status_code < 500
    if case.expect == ACCEPT:
        assert response.status_code == 202, response.json()
        check_result(alice_client, Classification.objects.get())
    else:
        assert response.status_code == 400
        assert response.json()["image"], response.json()
        assert Classification.objects.count() == 0 and stored_files() == files_before


def test_the_corpus_is_large_and_can_be_written_out(tmp_path):
    from tests.hostile_corpus import write

    manifest = write(tmp_path)
    assert len(manifest) >= 40
    assert {entry["expect"] for entry in manifest} == {"accept", "refuse"}
    assert all((tmp_path / entry["file"]).is_file() for entry in manifest)
