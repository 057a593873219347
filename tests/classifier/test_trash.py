"""Delete with a way back: deleted results wait in their owner's trash, out of every list,
restorable for TRASH_DAYS, then purged with their files (alice owns, bob is shared with,
charlie has no access)."""

from datetime import timedelta

from django.core.files.storage import storages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Share
from classifier.models import Classification
from classifier.tasks import purge_old_trash
from tests.conftest import PASSWORD, api_client_for, make_result


def logged_in(user):
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def stored(result) -> bool:
    return storages["default"].exists(result.image_key)


def history_ids(client, query=""):
    page = client.get(reverse("history") + query).content.decode()
    return [part.split('"')[0] for part in page.split('name="ids" value="')[1:]]


def test_a_deleted_result_leaves_every_list_but_keeps_its_image(alice, bob):
    Share.objects.create(owner=alice, grantee=bob)
    gone, kept = make_result(alice, filename="gone.jpg"), make_result(alice)
    alice_client = logged_in(alice)
    response = alice_client.post(reverse("delete", args=[gone.pk]), follow=True)
    assert "moved to the trash (restorable for 30 days)" in response.content.decode()
    assert history_ids(alice_client) == [str(kept.pk)]
    assert history_ids(alice_client, "?q=gone") == []
    export = b"".join(alice_client.get(reverse("export", args=["csv"])).streaming_content)
    assert b"gone.jpg" not in export
    api = api_client_for(alice).get("/api/v1/classifications/").json()
    assert [r["id"] for r in api["results"]] == [str(kept.pk)]
    assert alice_client.get(reverse("result", args=[gone.pk])).status_code == 404
    bob_client = logged_in(bob)
    assert (
        "gone.jpg" not in bob_client.get(reverse("shared_history", args=["alice"])).content.decode()
    )
    assert bob_client.get(reverse("result", args=[gone.pk])).status_code == 404
    assert stored(gone)
    trash = alice_client.get(reverse("trash")).content.decode()
    assert "gone.jpg" in trash and reverse("trash_restore", args=[gone.pk]) in trash
    assert alice_client.get(reverse("trash_thumbnail", args=[gone.pk])).status_code == 200


def test_a_restored_result_is_back_where_it_was(alice_client, alice):
    older = make_result(alice, created_at=timezone.now() - timedelta(days=3))
    newer = make_result(alice)
    older.move_to_trash(alice)
    alice_client.post(reverse("trash_restore", args=[older.pk]))
    assert history_ids(alice_client) == [str(newer.pk), str(older.pk)]
    assert Classification.trash_of(alice) == []


def test_bulk_delete_keeps_the_filters_and_says_when_nothing_was_ticked(alice_client, alice, bob):
    cats = [make_result(alice, "cat") for _ in range(2)]
    dog, bobs = make_result(alice, "dog"), make_result(bob)
    response = alice_client.post(
        reverse("delete_many"),
        {"ids": [str(c.pk) for c in cats] + [str(bobs.pk), "junk"], "query": "label=cat"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("history") + "?label=cat"
    assert history_ids(alice_client) == [str(dog.pk)]
    assert Classification.by_pk(bobs.pk).owner_id == bob.pk  # not hers: untouched
    followed = alice_client.post(reverse("delete_many"), {"query": "label=dog"}, follow=True)
    assert "Nothing was deleted: tick the results to delete first." in followed.content.decode()
    assert "Deleted 0" not in followed.content.decode()


def test_only_the_owner_deletes_restores_or_purges(alice, bob, charlie, client):
    Share.objects.create(owner=alice, grantee=bob)
    result = make_result(alice)
    for user in (bob, charlie):
        assert logged_in(user).post(reverse("delete", args=[result.pk])).status_code == 404
    result.move_to_trash(alice)
    for user in (bob, charlie):
        other = logged_in(user)
        assert other.post(reverse("trash_restore", args=[result.pk])).status_code == 404
        assert other.post(reverse("trash_purge", args=[result.pk])).status_code == 404
        assert other.get(reverse("trash_thumbnail", args=[result.pk])).status_code == 404
        assert str(result.pk) not in other.get(reverse("trash")).content.decode()
    assert client.get(reverse("trash")).status_code == 302  # log in first
    assert Classification.by_pk(result.pk).trashed_by_id == alice.pk


def test_purging_and_emptying_delete_records_and_files(alice_client, alice, bob):
    one, two, three = (make_result(alice) for _ in range(3))
    bobs = make_result(bob)
    for result in (one, two, three):
        result.move_to_trash(alice)
    bobs.move_to_trash(bob)
    alice_client.post(reverse("trash_purge", args=[one.pk]))
    assert not Classification.objects.filter(pk=one.pk).exists() and not stored(one)
    response = alice_client.post(reverse("trash_empty"), follow=True)
    assert "2 results deleted for good" in response.content.decode()
    assert not stored(two) and not stored(three)
    assert Classification.by_pk(bobs.pk).trashed_by_id == bob.pk and stored(bobs)


def test_the_sweep_purges_what_waited_trash_days(alice, settings):
    settings.TRASH_DAYS = 30
    old, recent = make_result(alice), make_result(alice)
    old.move_to_trash(alice)
    recent.move_to_trash(alice)
    Classification.objects.filter(pk=old.pk).update(trashed_at=timezone.now() - timedelta(days=31))
    assert purge_old_trash() == 1
    assert purge_old_trash() == 0  # safe to run twice
    assert not Classification.objects.filter(pk=old.pk).exists() and not stored(old)
    assert Classification.objects.filter(pk=recent.pk).exists() and stored(recent)


def test_the_api_trash(alice, bob):
    api = api_client_for(alice)
    result = make_result(alice)
    assert api.delete(f"/api/v1/classifications/{result.pk}/").status_code == 204
    listed = api.get("/api/v1/trash/").json()
    assert [r["id"] for r in listed] == [str(result.pk)] and listed[0]["trashed_at"]
    assert api_client_for(bob).post(f"/api/v1/trash/{result.pk}/restore/").status_code == 404
    restored = api.post(f"/api/v1/trash/{result.pk}/restore/")
    assert restored.status_code == 200 and restored.json()["id"] == str(result.pk)
    assert api.get(f"/api/v1/classifications/{result.pk}/").status_code == 200
    api.delete(f"/api/v1/classifications/{result.pk}/")
    assert api.delete(f"/api/v1/trash/{result.pk}/").status_code == 204
    assert not Classification.objects.exists() and not stored(result)
    other = make_result(alice)
    other.move_to_trash(alice)
    assert api.delete("/api/v1/trash/").status_code == 204
    assert not Classification.objects.exists()
