from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from classifier.models import Classification, ModelVersion
from tests.conftest import make_result
from tests.tinymodel import make_run_dir


def test_classification_list_detail_and_thumbnail(admin_client, alice):
    result = make_result(alice, "cat", filename="kitty.jpg")
    page = admin_client.get(reverse("admin:classifier_classification_changelist"), {"q": "kitty"})
    assert page.status_code == 200 and "kitty.jpg" in page.content.decode()
    assert (
        admin_client.get(
            reverse("admin:classifier_classification_changelist"), {"status__exact": "done"}
        ).status_code
        == 200
    )
    assert (
        admin_client.get(
            reverse("admin:classifier_classification_change", args=[result.pk])
        ).status_code
        == 200
    )
    image = admin_client.get(reverse("admin:classifier_classification_image", args=[result.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"


def listed(page) -> set[str]:
    """The file names of the results on a changelist page."""
    return {
        name
        for name in ("alice-blue.jpg", "alice-old.jpg", "bob-red.png", "bob-fixed.jpg")
        if name in page.content.decode()
    }


@pytest.fixture
def results(alice, bob, active_model):
    old = make_result(
        alice, "blue", filename="alice-old.jpg", created_at=timezone.now() - timedelta(days=30)
    )
    make_result(alice, "blue", filename="alice-blue.jpg")
    png = make_result(bob, "red", filename="bob-red.png")
    fixed = make_result(bob, "red", filename="bob-fixed.jpg")
    Classification.objects.filter(pk=png.pk).update(format="PNG")
    Classification.objects.filter(pk__in=[old.pk, png.pk]).update(model_name=str(active_model))
    Classification.objects.get(pk=fixed.pk).correct("green")


def test_results_list_reads_one_page_and_its_owners_in_one_query(admin_client, results):
    """No count, `$group` or `$lookup` over the whole collection (Django's defaults make five
    such reads a page, slow at a million results), and no query per row for its owner."""
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(reverse("admin:classifier_classification_changelist"))
    assert page.status_code == 200 and "4 classifications" in page.content.decode()
    assert listed(page) == {"alice-blue.jpg", "alice-old.jpg", "bob-red.png", "bob-fixed.jpg"}
    reads = [
        query["sql"]
        for query in queries.captured_queries
        if "classifier_classification." in query["sql"]
    ]
    assert len(reads) == 1 and "$group" not in reads[0] and "$lookup" not in reads[0]
    owners = [query for query in queries.captured_queries if "accounts_user." in query["sql"]]
    assert len(owners) == 2  # the admin's own session, then the listed results' owners at once


def test_results_list_filters_and_search(admin_client, results, active_model):
    def shown(**params):
        page = admin_client.get(reverse("admin:classifier_classification_changelist"), params)
        assert page.status_code == 200
        return listed(page)

    offered = admin_client.get(
        reverse("admin:classifier_classification_changelist")
    ).content.decode()
    assert all(f"?top_label={name}" in offered for name in active_model.class_names)
    assert shown(top_label="red") == {"bob-red.png", "bob-fixed.jpg"}
    assert (
        shown(top_label="zebra") == set()
    )  # a label no version has (a deleted one's) still filters
    assert shown(format="PNG") == {"bob-red.png"}
    assert shown(model_name=str(active_model)) == {"alice-old.jpg", "bob-red.png"}
    assert shown(created_at__gte=str(timezone.now() - timedelta(days=7))) == {
        "alice-blue.jpg",
        "bob-red.png",
        "bob-fixed.jpg",
    }
    assert shown(q="bob") == {"bob-red.png", "bob-fixed.jpg"}  # the owner's username
    assert shown(q="old") == {"alice-old.jpg"}  # the file name
    assert shown(q="alice blue") == {"alice-blue.jpg"}  # every word, in either
    assert shown(q='"alice-b"') == {"alice-blue.jpg"}


def test_admin_deletes_selected_results(admin_client, results):
    doomed = list(Classification.objects.filter(owner__username="bob").values_list("pk", flat=True))
    url = reverse("admin:classifier_classification_changelist")
    selected = {"action": "delete_selected", "_selected_action": [str(pk) for pk in doomed]}
    assert "Are you sure" in admin_client.post(url, selected).content.decode()
    assert admin_client.post(url, {**selected, "post": "yes"}).status_code == 302
    assert (
        not Classification.objects.filter(pk__in=doomed).exists()
        and Classification.objects.count() == 2
    )


def test_corrections_list(admin_client, alice, results):
    make_result(alice, "blue", filename="otter.jpg").correct("otter")  # a class no model has yet
    page = admin_client.get(
        reverse("admin:classifier_correction_changelist"), {"corrected_label": "green"}
    )
    assert page.status_code == 200 and listed(page) == {"bob-fixed.jpg"}
    offered = page.content.decode()
    assert (
        "?corrected_label=blue" in offered and "?corrected_label=otter" in offered
    )  # registered and given


def test_admin_images_need_staff(client, alice):
    result = make_result(alice)
    client.force_login(alice)
    response = client.get(reverse("admin:classifier_classification_image", args=[result.pk]))
    assert response.status_code == 302  # to the admin login


def test_activate_and_roll_back_are_logged(admin_client, tmp_path):
    from django.contrib.admin.models import LogEntry

    first = ModelVersion.publish(make_run_dir(tmp_path / "a"), "tiny", activate=True)
    second = ModelVersion.publish(make_run_dir(tmp_path / "b"), "tiny")
    url = reverse("admin:classifier_modelversion_changelist")
    admin_client.post(url, {"action": "activate", "_selected_action": [str(second.pk)]})
    assert ModelVersion.active() == second
    admin_client.post(url, {"action": "activate", "_selected_action": [str(first.pk)]})
    assert ModelVersion.active() == first
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert [e.change_message for e in LogEntry.objects.order_by("action_time")] == [
        "Activated tiny v2",
        "Activated tiny v1",
    ]
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[first.pk]))
    assert page.status_code == 200


def test_one_click_on_a_versions_activate_button_makes_it_active(admin_client, tmp_path):
    first = ModelVersion.publish(make_run_dir(tmp_path / "a"), "tiny", activate=True)
    second = ModelVersion.publish(make_run_dir(tmp_path / "b"), "tiny")
    activate = reverse("admin:classifier_modelversion_activate", args=[second.pk])
    page = admin_client.get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    assert f'formaction="{activate}"' in page  # inside the changelist's form, with its CSRF token
    assert admin_client.get(activate).status_code == 405
    response = admin_client.post(activate)
    assert response.status_code == 302 and ModelVersion.active() == second
    assert not ModelVersion.objects.get(pk=first.pk).is_active


def test_crossing_activations_leave_the_later_one_alone_active(db, tmp_path, monkeypatch):
    first = ModelVersion.publish(make_run_dir(tmp_path / "a"), "tiny", activate=True)
    second = ModelVersion.publish(make_run_dir(tmp_path / "b"), "tiny")
    third = ModelVersion.publish(make_run_dir(tmp_path / "c"), "tiny")
    second.activate()
    # An activation that started before second's but lands after it: second stays the one.
    started = second.activated_at - timedelta(seconds=1)
    monkeypatch.setattr("classifier.models.timezone.now", lambda: started)
    third.activate()
    assert ModelVersion.active() == second
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    assert not ModelVersion.objects.get(pk=first.pk).is_active


def test_share_admin(admin_client, alice, bob):
    from accounts.models import Share

    Share.objects.create(owner=alice, grantee=bob)
    assert "bob" in admin_client.get(reverse("admin:accounts_share_changelist")).content.decode()


def test_numbers_are_honest_about_what_they_were_measured_on(admin_client, client, alice, tmp_path):
    version = ModelVersion.publish(make_run_dir(tmp_path / "a"), "tiny", activate=True)
    version.metrics = {
        "validation": {
            "accuracy": 1.0,
            "loss": 0.1,
            "images": 6,
            "per_class": {"blue": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
        },
        "epochs": 2,
    }
    version.save()
    assert (
        "100.00% accuracy on 6 held-out validation images"
        in client.get(reverse("home")).content.decode()
    )
    listing = admin_client.get(reverse("admin:classifier_modelversion_changelist")).content.decode()
    assert "100.00% accuracy on 6 held-out validation images" in listing
    page = admin_client.get(
        reverse("admin:classifier_modelversion_change", args=[version.pk])
    ).content.decode()
    assert "<th>images</th><td>6</td>" in page and "<td>blue</td><td>1.000</td>" in page
    assert 'name="metrics"' not in page and 'name="exports"' not in page  # no raw JSON boxes
    make_result(alice, "cat", probability=0.9123)
    results = admin_client.get(reverse("admin:classifier_classification_changelist"))
    assert "91.2%" in results.content.decode() and "0.9123" not in results.content.decode()
