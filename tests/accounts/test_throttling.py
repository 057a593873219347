"""The API's rate limits (imageclass.throttling): sliding windows per user and per address,
kept in Redis. Their effect on requests (429 with Retry-After, one address with many accounts)
is tested with the API in test_api_shares_models."""

import threading

from django.contrib.auth.models import AnonymousUser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import ScopedRateThrottle

from imageclass.throttling import WindowThrottle
from tests.conftest import api_client_for


def test_concurrent_requests_are_counted_exactly(db, monkeypatch):
    """The window is checked and recorded in one step: 40 requests at once, 10 pass."""
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"read": "10/minute"})
    view = type("View", (), {"throttle_scope": "read"})()
    request = Request(APIRequestFactory().get("/api/v1/models/", REMOTE_ADDR="198.51.100.9"))
    request.user = AnonymousUser()
    allowed = []
    threads = [
        threading.Thread(
            target=lambda: allowed.append(WindowThrottle().allow_request(request, view))
        )
        for _ in range(40)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 10
    throttle = WindowThrottle()
    assert not throttle.allow_request(request, view) and 59 < throttle.wait() <= 60


def test_an_unreachable_redis_refuses_uploads_with_503_and_serves_reads(alice, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the throttles' Redis: nothing listens there
    api = api_client_for(alice)
    response = api.post("/api/v1/classifications/", {"image_url": "https://example.com/cat.jpg"})
    assert (
        response.status_code == 503
        and response["Retry-After"]
        and "unavailable" in response.json()["detail"]
    )
    assert api.get("/api/v1/me/").status_code == 200  # a read needs nothing else from Redis
