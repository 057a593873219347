"""User input in case-insensitive lookups is text, never a regular expression."""

import pytest

from accounts.models import Share, User
from tests.conftest import make_result


@pytest.mark.parametrize("pattern", ["b.*", "B..", ".ob", "(bob|alice)", "*x", "+", "[", "bob$|x"])
def test_iexact_is_literal(bob, pattern):
    assert not User.objects.filter(username__iexact=pattern).exists()


def test_iexact_still_ignores_case(bob):
    assert User.objects.get(username__iexact="BoB") == bob


def test_sharing_with_a_pattern_reaches_nobody(alice, bob):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="no user with that username"):
        Share.grant(alice, "b.*")
    assert not Share.objects.exists()


def test_filename_search_with_regex_characters(alice_client, alice):
    from django.urls import reverse

    result = make_result(alice, filename="a+b (1).jpg")
    make_result(alice, filename="aab 1.jpg")
    page = alice_client.get(reverse("history"), {"q": "a+b (1"}).content.decode()
    assert str(result.pk) in page and page.count('name="ids"') == 1
    assert alice_client.get(reverse("history"), {"q": "*("}).status_code == 200


def test_signup_with_regex_characters_in_email(client, db):
    from django.urls import reverse

    from tests.conftest import PASSWORD

    response = client.post(
        reverse("signup"),
        {
            "username": "dora",
            "email": "*+w'u{-kbg@example.io",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
