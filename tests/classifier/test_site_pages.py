"""Pages that belong to the site: error pages in its layout with a way back, its name (not the
server's address) on every page, a favicon, whose a shared result is, class names written one
way (alice owns, bob is shared with, charlie has no access)."""

from django.test import Client
from django.urls import reverse

from accounts.models import Share
from tests.conftest import PASSWORD, make_result


def logged_in(user):
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def test_an_unknown_page_is_a_404_in_the_sites_layout_with_a_way_back(client):
    response = client.get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert 'id="error-page"' in page and "Back to the start page" in page
    assert "<title>Not found · ImageClass</title>" in page


def test_a_revoked_share_shows_the_sites_404(alice, bob):
    share = Share.objects.create(owner=alice, grantee=bob)
    result = make_result(alice)
    bob_client = logged_in(bob)
    assert bob_client.get(reverse("shared_history", args=["alice"])).status_code == 200
    share.delete()
    for url in (reverse("shared_history", args=["alice"]), reverse("result", args=[result.pk])):
        response = bob_client.get(url)
        assert response.status_code == 404 and "Back to the start page" in response.content.decode()


def test_the_login_page_says_imageclass_not_the_server_address(client):
    page = client.get(reverse("login")).content.decode()
    assert "<title>Log in · ImageClass</title>" in page and "testserver" not in page


def test_a_favicon_is_linked_and_served(client):
    page = client.get(reverse("home")).content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


def test_a_shared_result_says_whose_it_is(alice, bob):
    Share.objects.create(owner=alice, grantee=bob)
    result = make_result(alice)
    assert (
        "Shared with you by <strong>alice</strong>"
        in logged_in(bob).get(reverse("result", args=[result.pk])).content.decode()
    )
    result.correct("dog")
    assert (
        "alice corrected this to <strong>Dog</strong>"
        in logged_in(bob).get(reverse("result", args=[result.pk])).content.decode()
    )
    assert (
        'id="shared-by"'
        not in logged_in(alice).get(reverse("result", args=[result.pk])).content.decode()
    )


def test_class_names_read_one_way_on_cards_and_results(alice, alice_client):
    result = make_result(alice, label="golden_retriever", probability=0.8)
    history = alice_client.get(reverse("history")).content.decode()
    assert "<strong>Golden retriever</strong> 80.0%" in history
    assert 'class="stretched-link"' in history  # the whole card opens the result
    page = alice_client.get(reverse("result", args=[result.pk])).content.decode()
    assert '<strong id="top-label">Golden retriever</strong>' in page
    status = alice_client.get(reverse("result_status", args=[result.pk])).json()
    assert status["top_label"] == "Golden retriever"
    assert status["predictions"][0]["label"] == "Golden retriever"
    api = alice_client.get(f"/api/v1/classifications/{result.pk}/").json()
    assert api["top_label"] == "golden_retriever"  # the API keeps the model's names


def test_the_home_page_lists_formats_as_people_write_them(client):
    assert "JPEG, PNG, GIF, WebP, BMP; up to" in client.get(reverse("home")).content.decode()


def test_the_footer_links_to_the_api_docs(client):
    assert (
        f'href="{reverse("api-docs")}">API docs</a>' in client.get(reverse("home")).content.decode()
    )
