"""API tokens remembered in the shared cache (API_TOKEN_CACHE_SECONDS, Redis): a known token
costs no database read, and every way a token stops working still stops it at once."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ApiToken
from imageclass.cache import RedisCache


def client_with_token(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)}")
    return client


def test_a_known_token_is_answered_from_the_cache(alice):
    api = client_with_token(alice)
    assert api.get("/api/v1/me/").json()["username"] == "alice"
    with CaptureQueriesContext(connection) as reads:
        assert api.get("/api/v1/me/").json()["username"] == "alice"
    assert not [query for query in reads.captured_queries if "accounts_" in query["sql"]]


def test_the_cache_never_holds_a_password_hash(alice):
    api = client_with_token(alice)
    api.get("/api/v1/me/")
    (key,) = [key for key in cache._cache.get_client().keys("*apitoken:*")]
    stored = cache._cache.get_client().get(key)
    assert alice.password.encode() not in stored and b"argon2" not in stored
    cached = cache.get(key.decode().split(":", 2)[-1])
    assert "password" in cached.get_deferred_fields()
    assert cached.password == alice.password  # loaded from the database when asked for


def test_the_redis_cache_builds_one_client_per_connection_pool():
    cache.set("greeting", {"hello": "world"})
    assert cache.get("greeting") == {"hello": "world"}
    assert cache._cache.get_client() is cache._cache.get_client(write=True)


def test_without_the_setting_every_request_asks_the_database(settings, alice):
    settings.API_TOKEN_CACHE_SECONDS = 0
    api = client_with_token(alice)
    api.get("/api/v1/me/")
    with CaptureQueriesContext(connection) as reads:
        assert api.get("/api/v1/me/").status_code == 200
    assert [query for query in reads.captured_queries if "accounts_apitoken" in query["sql"]]


def test_a_revoked_token_stops_at_once(alice):
    api, other = client_with_token(alice), client_with_token(alice)
    assert api.get("/api/v1/me/").status_code == other.get("/api/v1/me/").status_code == 200
    assert api.delete("/api/v1/auth/token/").status_code == 204
    assert api.get("/api/v1/me/").status_code == 401
    assert other.get("/api/v1/me/").status_code == 200


@pytest.mark.parametrize("change", ["password", "deactivation", "deletion"])
def test_a_cached_token_dies_with_its_user(alice, bob, change):
    api, bobs = client_with_token(alice), client_with_token(bob)
    assert api.get("/api/v1/me/").status_code == bobs.get("/api/v1/me/").status_code == 200
    if change == "password":
        alice.set_password("another long passphrase")
        alice.save()
    elif change == "deactivation":
        alice.is_active = False
        alice.save()
    else:
        alice.delete()
    assert api.get("/api/v1/me/").status_code == 401
    assert bobs.get("/api/v1/me/").status_code == 200  # other users' tokens stay cached and valid


def test_an_unreachable_cache_falls_back_to_the_database(monkeypatch, alice):
    # Only the token cache is away here: the throttles, which use it too, keep theirs.
    monkeypatch.setattr("accounts.models.cache", RedisCache("redis://127.0.0.1:1/0", {}))
    assert client_with_token(alice).get("/api/v1/me/").json()["username"] == "alice"
