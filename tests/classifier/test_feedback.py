"""Feedback: the owner marks a result wrong with the right label; the admin lists corrections
and exports them as an image-folder dataset that the training form accepts as it is."""

import io
import zipfile

import pytest
from django.urls import reverse

from accounts.models import Share
from classifier.models import Classification
from mltrain.archive import inspect_archive
from tests.conftest import api_client_for, make_result


def test_owner_corrects_a_result_on_the_page_and_takes_it_back(alice_client, alice):
    result = make_result(alice, label="cat")
    page = alice_client.get(reverse("result", args=[result.pk])).content.decode()
    assert "Wrong? The right label is" in page
    response = alice_client.post(
        reverse("feedback", args=[result.pk]), {"label": "  dog "}, follow=True
    )
    assert "your correction was recorded" in response.content.decode()
    result.refresh_from_db()
    assert result.corrected_label == "dog" and result.corrected_at is not None
    alice_client.post(reverse("feedback", args=[result.pk]), {"clear": "1"})
    result.refresh_from_db()
    assert (result.corrected_label, result.corrected_at) == ("", None)


@pytest.mark.parametrize(
    "label, reason",
    [("cat", "already said"), ("../etc", "becomes a folder name"), ("", "becomes a folder name")],
)
def test_refused_labels_say_why(alice_client, alice, label, reason):
    result = make_result(alice, label="cat")
    response = alice_client.post(
        reverse("feedback", args=[result.pk]), {"label": label}, follow=True
    )
    assert reason in response.content.decode()
    result.refresh_from_db()
    assert result.corrected_label == ""


def test_only_the_owner_gives_feedback(client, alice, bob, charlie):
    result = make_result(alice, label="cat")
    Share.objects.create(owner=alice, grantee=bob)
    for user in (bob, charlie):
        client.force_login(user)
        assert (
            client.post(reverse("feedback", args=[result.pk]), {"label": "dog"}).status_code == 404
        )
        assert (
            api_client_for(user)
            .post(reverse("api:classification-feedback", args=[result.pk]), {"label": "dog"})
            .status_code
            == 404
        )
    client.force_login(bob)
    assert (
        "Wrong? The right label is"
        not in client.get(reverse("result", args=[result.pk])).content.decode()
    )
    result.refresh_from_db()
    assert result.corrected_label == ""


def test_api_feedback(alice):
    api = api_client_for(alice)
    result = make_result(alice, label="cat")
    url = reverse("api:classification-feedback", args=[result.pk])
    response = api.post(url, {"label": "dog"}, format="json")
    assert response.status_code == 200 and response.json()["corrected_label"] == "dog"
    assert (
        api.get(reverse("api:classification-detail", args=[result.pk])).json()["corrected_label"]
        == "dog"
    )
    refused = api.post(url, {"label": "cat"}, format="json")
    assert refused.status_code == 400 and "already said" in refused.json()["label"][0]
    assert api.delete(url).status_code == 204
    queued = make_result(alice, status="queued")
    response = api.post(
        reverse("api:classification-feedback", args=[queued.pk]), {"label": "dog"}, format="json"
    )
    assert response.status_code == 400 and "finished" in response.json()["label"][0]


def test_admin_lists_corrections_and_exports_a_training_dataset(admin_client, alice):
    results = [make_result(alice, label="cat", filename=f"{i}.jpg") for i in range(5)]
    for result, label in zip(results, ["dog", "dog", "horse", "horse"]):
        result.correct(label)
    changelist = admin_client.get(
        reverse("admin:classifier_correction_changelist")
    ).content.decode()
    assert changelist.count('class="field-corrected_label"') == 4
    response = admin_client.post(
        reverse("admin:classifier_correction_changelist"),
        {
            "action": "export_dataset",
            "_selected_action": [str(r.pk) for r in results],
        },
    )
    assert response.status_code == 200 and response["Content-Disposition"].startswith(
        'attachment; filename="corrections-'
    )
    data = io.BytesIO(b"".join(response.streaming_content))
    with zipfile.ZipFile(data) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"{r.corrected_label}/{r.pk}.jpg"
            for r in Classification.objects.exclude(corrected_label="")
        )
    assert inspect_archive(data).class_counts == {
        "dog": 2,
        "horse": 2,
    }  # the training form takes it as it is
