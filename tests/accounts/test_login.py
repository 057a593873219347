from django.test import Client, override_settings
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


ATTACKER, OFFICE, HOME = "203.0.113.66", "198.51.100.10", "192.0.2.7"


@override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_PAIR_LOCK_SECONDS=60)
def test_failures_lock_only_that_account_from_that_address(client, alice, bob, charlie):
    for _ in range(3):
        assert login(client, "charlie", "wrong", REMOTE_ADDR=ATTACKER).status_code == 200
    # The attacker is held back, even with the right password...
    response = login(client, "charlie", REMOTE_ADDR=ATTACKER)
    assert response.status_code == 429
    assert "Too many failed login attempts. Try again in 1 minute(s)." in response.content.decode()
    # ...while charlie logs in from elsewhere, and alice from the attacker's own address.
    assert login(Client(), "charlie", REMOTE_ADDR=HOME).status_code == 302
    assert login(Client(), "alice", REMOTE_ADDR=ATTACKER).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=2, LOGIN_PAIR_LOCK_SECONDS=10, LOGIN_LOCKOUT_SECONDS=900)
def test_the_pair_lock_doubles_with_every_further_failure(client, alice):
    from accounts import throttle

    keys = throttle.Keys("alice", ATTACKER)
    waits = []
    for _ in range(4):
        throttle.record_failure(keys)
        waits.append(throttle.redis().ttl(keys.pair_lock))
    assert waits == [-2, 10, 20, 40]


@override_settings(LOGIN_FAILURE_LIMIT=5, LOGIN_ADDRESS_FAILURE_LIMIT=4)
def test_one_address_guessing_many_accounts_is_locked_out(client, alice):
    for name in ("bob", "charlie", "dave", "erin"):
        login(client, username=name, password="wrong", REMOTE_ADDR=OFFICE)
    assert login(client, REMOTE_ADDR=OFFICE).status_code == 429
    assert login(Client(), REMOTE_ADDR=HOME).status_code == 302


@override_settings(
    LOGIN_FAILURE_LIMIT=100,
    LOGIN_ADDRESS_FAILURE_LIMIT=100,
    LOGIN_ACCOUNT_FAILURE_LIMIT=3,
    LOGIN_ACCOUNT_DELAY_SECONDS=30,
)
def test_a_distributed_guess_is_slowed_but_cannot_shut_the_owner_out(alice):
    assert login(Client(), REMOTE_ADDR=HOME).status_code == 302  # alice's own address, known now
    for n in range(3):
        login(Client(), password="wrong", REMOTE_ADDR=f"203.0.113.{n}")
    # Past the account's ceiling, addresses it never logged in from get one try per 30 s...
    assert login(Client(), password="wrong", REMOTE_ADDR="203.0.113.50").status_code == 200
    response = login(Client(), password="wrong", REMOTE_ADDR="203.0.113.51")
    assert response.status_code == 429 and "second(s)." in response.content.decode()
    # ...and alice at home is not delayed at all.
    assert login(Client(), REMOTE_ADDR=HOME).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_PAIR_LOCK_SECONDS=1)
def test_the_lock_expires(client, alice):
    import time

    for _ in range(3):
        login(client, password="wrong")
    assert login(client).status_code == 429
    time.sleep(2.1)
    assert login(client).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_successful_login_resets_the_pair_count(client, alice):
    login(client, password="wrong")
    login(client, password="wrong")
    assert login(client).status_code == 302
    client.post(reverse("logout"))
    login(client, password="wrong")
    login(client, password="wrong")
    assert login(client).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_the_admin_login_has_the_same_rules(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for _ in range(3):
        client.post(
            "/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR=ATTACKER
        )
    response = client.post(
        "/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR=ATTACKER
    )
    assert (
        response.status_code == 200
        and "Too many failed login attempts" in response.content.decode()
    )
    response = Client().post(
        "/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR=HOME
    )
    assert response.status_code == 302
