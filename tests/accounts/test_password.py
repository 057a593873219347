import re

from django.core import mail
from django.urls import reverse

from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase 42"


def test_password_change(alice_client, alice):
    response = alice_client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response.url == reverse("password_change_done")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert alice.password.startswith("argon2")
    # The session that changed the password stays logged in.
    assert alice_client.get(reverse("profile")).status_code == 200


def test_password_change_needs_the_old_password(alice_client, alice):
    response = alice_client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_password_reset_email_and_link(client, alice):
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302 and response.url == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "Reset your ImageClass password"
    assert "Hello alice," in message.body
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/\S+/)", message.body).group(1)

    response = client.get(link)  # redirects to the set-password URL that hides the token
    assert response.status_code == 302
    form_url = response.url
    response = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response.url == reverse("password_reset_complete")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    # The link works once.
    assert "invalid or has already been used" in client.get(link, follow=True).content.decode()


def test_password_reset_for_unknown_email_sends_nothing_and_reveals_nothing(client, alice):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302 and response.url == reverse("password_reset_done")
    assert mail.outbox == []


def test_reset_mails_are_throttled_per_target_email_with_the_same_answer(client, alice, settings):
    settings.PASSWORD_RESET_RATE_EMAIL = "3/hour"
    for n in range(6):  # from six addresses: the target's own limit holds
        response = client.post(
            reverse("password_reset"), {"email": "alice@example.com"}, REMOTE_ADDR=f"198.51.100.{n}"
        )
        assert response.status_code == 302 and response.url == reverse("password_reset_done")
    assert len(mail.outbox) == 3


def test_reset_requests_are_throttled_per_address(client, alice, settings):
    settings.PASSWORD_RESET_RATE_ADDRESS = "5/hour"
    for n in range(5):
        assert (
            client.post(reverse("password_reset"), {"email": f"someone{n}@example.com"}).status_code
            == 302
        )
    for email in ("alice@example.com", "nobody@example.com"):  # the same answer either way
        response = client.post(reverse("password_reset"), {"email": email})
        assert response.status_code == 429 and int(response["Retry-After"]) > 0
        assert "Too many attempts" in response.content.decode()
    assert mail.outbox == []
