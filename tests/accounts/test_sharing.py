from django.urls import reverse

from accounts.models import Share
from tests.conftest import make_result


def grant(client, username):
    return client.post(reverse("share_grant"), {"username": username}, follow=True)


def test_alice_shares_with_bob_who_reads_but_cannot_change(client, alice, bob, charlie):
    result = make_result(alice, "cat")
    client.force_login(alice)
    page = grant(client, "bob").content.decode()
    assert "bob can now see your history" in page
    client.force_login(bob)
    assert "alice's history" in client.get(reverse("shared")).content.decode()
    history = client.get(reverse("shared_history", args=["alice"]))
    assert history.status_code == 200 and str(result.pk) in history.content.decode()
    assert 'name="ids"' not in history.content.decode()  # read-only: nothing to select
    for name in ("result", "result_status", "result_image"):
        assert client.get(reverse(name, args=[result.pk])).status_code == 200
    assert "Delete</button>" not in client.get(reverse("result", args=[result.pk])).content.decode()
    assert client.post(reverse("delete", args=[result.pk])).status_code == 404
    client.force_login(charlie)
    assert client.get(reverse("shared_history", args=["alice"])).status_code == 404
    assert client.get(reverse("result", args=[result.pk])).status_code == 404


def test_revocation_takes_effect_at_once(client, alice, bob):
    result = make_result(alice)
    share = Share.objects.create(owner=alice, grantee=bob)
    client.force_login(bob)
    assert client.get(reverse("result", args=[result.pk])).status_code == 200
    client.force_login(alice)
    assert client.post(reverse("share_revoke", args=[share.pk])).status_code == 302
    client.force_login(bob)
    assert client.get(reverse("result", args=[result.pk])).status_code == 404
    assert client.get(reverse("shared_history", args=["alice"])).status_code == 404


def test_only_the_owner_revokes(client, alice, bob, charlie):
    share = Share.objects.create(owner=alice, grantee=bob)
    for user in (bob, charlie):
        client.force_login(user)
        assert client.post(reverse("share_revoke", args=[share.pk])).status_code == 404
    assert Share.objects.filter(pk=share.pk).exists()


def test_grant_errors_are_explained(alice_client, alice, bob):
    assert "There is no user with that username." in grant(alice_client, "nobody").content.decode()
    assert "Your history is already yours." in grant(alice_client, "ALICE").content.decode()
    grant(alice_client, "bob")
    assert "You already share your history with bob." in grant(alice_client, "bob").content.decode()
    assert Share.objects.count() == 1


def test_sharing_pages_require_login(client, db):
    for url in (reverse("shared"), reverse("shared_history", args=["alice"])):
        assert client.get(url).status_code == 302
    assert client.post(reverse("share_grant"), {"username": "x"}).status_code == 302
