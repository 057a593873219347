"""API tokens where users look for them: the profile lists alice's tokens (name, created, last
used), creates a named one shown once, and revokes any; bob cannot touch hers."""

from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import PASSWORD


def logged_in(user):
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def api_me(key):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get("/api/v1/me/")


def test_a_token_made_on_the_profile_is_shown_once_and_works(alice):
    client = logged_in(alice)
    response = client.post(reverse("token_create"), {"name": "my phone"})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    page = response.content.decode()
    key = page.split('id="new-token-key" class="form-control font-monospace" readonly value="')[1]
    key = key.split('"')[0]
    assert len(key) > 30 and "shown only this once" in page
    token = ApiToken.objects.get(user=alice)
    assert token.name == "my phone" and token.digest == ApiToken.hash(key)
    later = client.get(reverse("profile")).content.decode()
    assert "my phone" in later and key not in later and "never used" in later

    assert api_me(key).json()["username"] == "alice"
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert "last used" in client.get(reverse("profile")).content.decode()


def test_a_token_needs_a_name(alice):
    response = logged_in(alice).post(reverse("token_create"), {"name": "  "}, follow=True)
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_on_the_profile_ends_the_token(alice):
    key = ApiToken.issue(alice, "script")
    token = ApiToken.objects.get()
    response = logged_in(alice).post(reverse("token_revoke", args=[token.pk]), follow=True)
    assert "The token script was revoked." in response.content.decode()
    assert not ApiToken.objects.exists() and api_me(key).status_code == 401


def test_only_the_owner_sees_and_revokes_a_token(alice, bob):
    ApiToken.issue(alice, "alice's laptop")
    token = ApiToken.objects.get()
    bob_client = logged_in(bob)
    assert "alice&#x27;s laptop" not in bob_client.get(reverse("profile")).content.decode()
    assert bob_client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    assert bob_client.post(reverse("token_revoke", args=["nonsense"])).status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_the_api_names_a_token_it_issues(alice):
    response = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "alice", "password": PASSWORD, "name": "ci job"},
        format="json",
    )
    assert response.status_code == 200
    assert ApiToken.objects.get().name == "ci job"


def test_use_is_recorded_at_most_once_per_interval(alice):
    key = ApiToken.issue(alice, "busy client")
    api_me(key)
    first = ApiToken.objects.get().last_used_at
    api_me(key)
    assert ApiToken.objects.get().last_used_at == first
