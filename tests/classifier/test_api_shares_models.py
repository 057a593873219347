from accounts.models import Share
from tests.conftest import api_client_for, make_result


def test_grant_list_use_and_revoke_a_share(alice, bob, charlie):
    result = make_result(alice, "cat")
    alice_api, bob_api = api_client_for(alice), api_client_for(bob)
    response = alice_api.post("/api/v1/shares/", {"username": "bob"}, format="json")
    assert response.status_code == 201 and response.json()["grantee"] == "bob"
    share_id = response.json()["id"]
    assert [s["grantee"] for s in alice_api.get("/api/v1/shares/").json()["given"]] == ["bob"]
    assert [s["owner"] for s in bob_api.get("/api/v1/shares/").json()["received"]] == ["alice"]
    shared = bob_api.get("/api/v1/shared/alice/classifications/", {"label": "cat"}).json()
    assert [r["id"] for r in shared["results"]] == [str(result.pk)]
    assert api_client_for(charlie).get("/api/v1/shared/alice/classifications/").status_code == 404
    assert api_client_for(charlie).delete(f"/api/v1/shares/{share_id}/").status_code == 404
    assert bob_api.delete(f"/api/v1/shares/{share_id}/").status_code == 404  # the grantee cannot
    assert alice_api.delete(f"/api/v1/shares/{share_id}/").status_code == 204
    assert bob_api.get("/api/v1/shared/alice/classifications/").status_code == 404
    assert not Share.objects.exists()


def test_grant_errors(alice):
    api = api_client_for(alice)
    response = api.post("/api/v1/shares/", {"username": "nobody"}, format="json")
    assert response.status_code == 400 and response.json()["username"] == [
        "There is no user with that username."
    ]
    assert api.post("/api/v1/shares/", {}, format="json").status_code == 400


def test_models_and_the_active_one(alice, active_model):
    api = api_client_for(alice)
    versions = api.get("/api/v1/models/").json()
    assert [v["name"] for v in versions] == ["tiny"] and versions[0]["is_active"] is True
    active = api.get("/api/v1/models/active/").json()
    assert (
        active["class_names"] == ["blue", "green", "red"]
        and active["metrics"]["validation"]["accuracy"] == 0.5
    )


def test_the_active_model_leaves_out_what_only_workers_use(alice, active_model):
    verdict = {
        "passed": True,
        "reason": "int8 agrees on 99.9%",
        "sha256": "0" * 64,
        "probe": [[0.5, 0.25, 0.25]] * 128,
    }
    type(active_model).objects.filter(pk=active_model.pk).update(
        metrics={**active_model.metrics, "int8": verdict}
    )
    metrics = api_client_for(alice).get("/api/v1/models/active/").json()["metrics"]
    assert metrics["int8"] == {"passed": True, "reason": "int8 agrees on 99.9%", "sha256": "0" * 64}
    assert metrics["validation"]["accuracy"] == 0.5


def test_no_active_model_is_404(alice, db):
    assert api_client_for(alice).get("/api/v1/models/active/").status_code == 404


def test_everything_needs_authentication(db):
    anonymous = api_client_for(None)
    for url in (
        "/api/v1/shares/",
        "/api/v1/models/",
        "/api/v1/models/active/",
        "/api/v1/shared/alice/classifications/",
        "/api/v1/classifications/",
    ):
        assert anonymous.get(url).status_code == 401, url


def test_reads_are_throttled_with_retry_after(alice, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    # DRF reads the rates once at import; set them as a deployment would through the settings.
    rates = {"read": "3/minute", "upload": "1/minute", "auth": "5/minute"}
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {**rates, **{f"{k}_address": "100/minute" for k in rates}},
    )
    api = api_client_for(alice)
    statuses = [api.get("/api/v1/classifications/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get("/api/v1/classifications/")
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"].lower()


def test_one_address_cannot_multiply_its_rate_with_accounts(alice, bob, charlie, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"read": "100/minute", "read_address": "4/minute"}
    )
    statuses = [
        api_client_for(user).get("/api/v1/models/", REMOTE_ADDR="198.51.100.7").status_code
        for user in (alice, bob, charlie, alice, bob)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    # Another address is counted on its own, and a forged X-Forwarded-For changes nothing.
    assert (
        api_client_for(charlie).get("/api/v1/models/", REMOTE_ADDR="198.51.100.8").status_code
        == 200
    )
    forged = api_client_for(charlie).get(
        "/api/v1/models/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.1"
    )
    assert forged.status_code == 429


def test_a_request_refused_by_one_window_counts_in_none(alice, monkeypatch):
    """Refused by the address's window, alice's request does not use up her own allowance."""
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"read": "3/minute", "read_address": "2/minute"}
    )
    api = api_client_for(alice)
    statuses = [
        api.get("/api/v1/models/", REMOTE_ADDR=address).status_code
        for address in ["198.51.100.7"] * 3 + ["198.51.100.8"] * 2
    ]
    assert statuses == [200, 200, 429, 200, 429]
