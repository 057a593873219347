from datetime import timedelta

import pytest
from django.urls import reverse

from classifier.models import ModelVersion
from tests.conftest import make_result
from tests.tinymodel import make_run_dir


def test_classification_list_detail_and_thumbnail(admin_client, alice):
    result = make_result(alice, "cat", filename="kitty.jpg")
    page = admin_client.get(reverse("admin:classifier_classification_changelist"), {"q": "kitty"})
    assert page.status_code == 200 and "kitty.jpg" in page.content.decode()
    assert admin_client.get(reverse("admin:classifier_classification_changelist"), {"status__exact": "done"}).status_code == 200
    assert admin_client.get(reverse("admin:classifier_classification_change", args=[result.pk])).status_code == 200
    image = admin_client.get(reverse("admin:classifier_classification_image", args=[result.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"


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
    assert [e.change_message for e in LogEntry.objects.order_by("action_time")] == ["Activated tiny v2", "Activated tiny v1"]
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[first.pk]))
    assert page.status_code == 200


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
