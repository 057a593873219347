from django.urls import reverse


def test_profile_requires_login(client, db):
    response = client.get(reverse("profile"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


def test_profile_shows_and_edits_the_user(alice_client, alice):
    page = alice_client.get(reverse("profile")).content.decode()
    assert "alice" in page and "alice@example.com" in page
    response = alice_client.post(
        reverse("profile"),
        {"first_name": "Alice", "last_name": "Liddell", "email": "alice@example.org"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.first_name, alice.email) == ("Alice", "alice@example.org")


def test_profile_refuses_an_email_in_use(alice_client, django_user_model):
    django_user_model.objects.create_user("bob", "bob@example.com", "x" * 12)
    response = alice_client.post(
        reverse("profile"), {"first_name": "", "last_name": "", "email": "BOB@example.com"}
    )
    assert "already exists" in response.content.decode()
