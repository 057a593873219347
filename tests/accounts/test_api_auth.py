import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import PASSWORD


@pytest.fixture
def api():
    return APIClient()


def token_for(api, username="alice", password=PASSWORD):
    return api.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


def test_register_then_obtain_a_token_and_read_me(api, db):
    response = api.post(
        "/api/v1/auth/register/",
        {"username": "dora", "email": "dora@example.com", "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["username"] == "dora" and "password" not in response.json()
    token = token_for(api, "dora").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/me/").json()["email"] == "dora@example.com"
    assert ApiToken.objects.get().digest != token  # only the hash is stored


@pytest.mark.parametrize(
    "data, field",
    [
        ({"username": "alice", "email": "new@example.com", "password": PASSWORD}, "username"),
        ({"username": "dora", "email": "ALICE@example.com", "password": PASSWORD}, "email"),
        ({"username": "dora", "email": "dora@example.com", "password": "12345"}, "password"),
        ({"username": "dora", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"username": "bad name!", "email": "dora@example.com", "password": PASSWORD}, "username"),
    ],
)
def test_registration_errors_are_field_errors(api, alice, data, field):
    response = api.post("/api/v1/auth/register/", data, format="json")
    assert response.status_code == 400 and field in response.json()


def test_wrong_credentials_are_401(api, alice):
    response = token_for(api, password="wrong")
    assert response.status_code == 401 and response.json() == {
        "detail": "Wrong username or password."
    }


@override_settings(LOGIN_FAILURE_LIMIT=2)
def test_repeated_failures_are_429_with_retry_after(api, alice):
    token_for(api, password="wrong")
    token_for(api, password="wrong")
    response = token_for(api)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_unauthenticated_requests_are_401(api, db):
    assert api.get("/api/v1/me/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api.get("/api/v1/me/").status_code == 401


def test_revoking_the_token(api, alice):
    token = token_for(api).json()["token"]
    other = token_for(api).json()["token"]  # a second device
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.delete("/api/v1/auth/token/").status_code == 204
    assert api.get("/api/v1/me/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert api.get("/api/v1/me/").status_code == 200


def test_a_token_dies_with_a_password_change_or_deactivation(api, alice, bob):
    token = token_for(api).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    alice.set_password("another long passphrase")
    alice.save()
    assert api.get("/api/v1/me/").status_code == 401
    bobs = token_for(APIClient(), "bob").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {bobs}")
    bob.is_active = False
    bob.save()
    assert api.get("/api/v1/me/").status_code == 401


def test_session_authentication_works_for_the_browsable_api(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/me/", HTTP_ACCEPT="application/json").json()["username"] == "alice"
