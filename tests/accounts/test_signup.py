from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.conftest import PASSWORD

User = get_user_model()


def signup(client, **overrides):
    data = {
        "username": "dora",
        "email": "dora@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    return client.post(reverse("signup"), {**data, **overrides})


def test_signup_creates_user_logs_in_and_hashes_with_argon2(client, db):
    response = signup(client)
    assert response.status_code == 302 and response.url == reverse("home")
    user = User.objects.get(username="dora")
    assert user.password.startswith("argon2")
    assert user.email == "dora@example.com"
    page = client.get(reverse("home"))
    assert "Signed in as <strong>dora</strong>" in page.content.decode()


def test_duplicate_username_is_refused(client, alice):
    response = signup(client, username="alice")
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert User.objects.filter(username="alice").count() == 1


def test_duplicate_email_is_refused(client, alice):
    response = signup(client, email="ALICE@example.com")
    assert "An account with this email address already exists." in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_weak_passwords_are_refused(client, db):
    for weak, message in [
        ("12345678901", "This password is entirely numeric."),
        ("password123", "This password is too common."),
        ("short", "This password is too short."),
    ]:
        response = signup(client, password1=weak, password2=weak)
        assert message in response.content.decode()
    assert not User.objects.exists()


def test_signup_page_renders_for_anonymous(client, db):
    response = client.get(reverse("signup"))
    assert response.status_code == 200
    assert 'name="password1"' in response.content.decode()


def test_web_signup_has_the_api_signups_throttle(client, alice, monkeypatch):
    """Each try says whether an email is registered: as many tries as the API allows, then 429."""
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth", "3/minute")
    for n in range(3):
        response = signup(client, username=f"probe{n}", email="alice@example.com")
        assert "already exists" in response.content.decode()
    response = signup(client, username="probe9", email="alice@example.com")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "already exists" not in response.content.decode()
