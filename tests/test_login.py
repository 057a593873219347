from django.test import override_settings
from django.urls import reverse

from tests.conftest import PASSWORD


def login(client, username="alice", password=PASSWORD, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_login_and_logout(client, alice):
    response = login(client)
    assert response.status_code == 302 and response.url == reverse("profile")
    assert client.get(reverse("profile")).status_code == 200
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("profile")).status_code == 302


def test_wrong_password_is_refused(client, alice):
    response = login(client, password="not the password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


@override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_LOCKOUT_SECONDS=600)
def test_repeated_failures_lock_the_username_out_with_a_clear_message(client, alice):
    for _ in range(3):
        assert login(client, password="wrong").status_code == 200
    # Even the right password is refused while locked out: the lock is what stops guessing.
    response = login(client)
    assert response.status_code == 429
    assert "Too many failed login attempts. Try again in 10 minute(s)." in response.content.decode()
    # From another address the username is still locked.
    response = login(client, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_LOCKOUT_SECONDS=600)
def test_one_address_guessing_many_usernames_is_locked_out(client, alice):
    for name in ("bob", "charlie", "dave"):
        login(client, username=name, password="wrong")
    assert login(client).status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_LOCKOUT_SECONDS=1)
def test_the_lock_expires(client, alice):
    import time

    for _ in range(3):
        login(client, password="wrong")
    assert login(client).status_code == 429
    time.sleep(2.1)
    assert login(client).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_successful_login_resets_the_username_count(client, alice):
    login(client, password="wrong", REMOTE_ADDR="198.51.100.1")
    login(client, password="wrong", REMOTE_ADDR="198.51.100.2")
    assert login(client, REMOTE_ADDR="198.51.100.3").status_code == 302
    client.post(reverse("logout"))
    login(client, password="wrong", REMOTE_ADDR="198.51.100.4")
    assert login(client, REMOTE_ADDR="198.51.100.5").status_code == 302
