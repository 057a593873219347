"""A multi-file upload's grid, which fills in as results end: one request per poll for every
unfinished card (alice owns the results, bob is shared with, charlie has no access)."""

from django.test import Client
from django.urls import reverse

from accounts.models import Share
from classifier.models import Classification
from tests import badimages
from tests.classifier.test_upload import upload
from tests.conftest import PASSWORD, make_result


def status_of(client, *results):
    ids = ",".join(str(r.pk) for r in results)
    response = client.get(f"{reverse('results_status')}?ids={ids}")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    return {answer["id"]: answer for answer in response.json()["results"]}


def logged_in(user):
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def test_several_files_lead_to_their_batch_in_the_order_sent(alice_client):
    files = [upload(f"{name}.jpg", badimages.jpeg()) for name in ("one", "two", "three")]
    response = alice_client.post(reverse("home"), {"images": files})
    assert response.status_code == 302 and response["Location"].startswith(reverse("batch"))
    page = alice_client.get(response["Location"]).content.decode()
    assert 'batch-done">0</span> of 3 done' in page
    assert page.index("one.jpg") < page.index("two.jpg") < page.index("three.jpg")
    assert page.count('data-finished="false"') == 3 and "js/live-cards.js" in page


def test_one_poll_answers_for_every_card_as_the_card_renders_it(alice_client, alice):
    done = make_result(alice, label="ship", probability=0.97)
    queued = make_result(alice, status="queued")
    answers = status_of(alice_client, done, queued)
    assert answers[str(done.pk)]["finished"] is True
    assert "<strong>Ship</strong> 97.0%" in answers[str(done.pk)]["html"]
    assert answers[str(queued.pk)] == {
        "id": str(queued.pk),
        "status": "queued",
        "finished": False,
        "html": answers[str(queued.pk)]["html"],
    }
    assert ">queued</span>" in answers[str(queued.pk)]["html"]


def test_the_batch_counts_what_is_done(alice_client, alice):
    results = [make_result(alice), make_result(alice, status="running"), make_result(alice)]
    page = alice_client.get(f"{reverse('batch')}?ids={','.join(str(r.pk) for r in results)}")
    assert 'batch-done">2</span> of 3 done' in page.content.decode()


def test_only_those_who_may_see_a_result_hear_of_it(alice, bob, charlie, client):
    result = make_result(alice)
    assert str(result.pk) in status_of(logged_in(alice), result)
    assert status_of(logged_in(bob), result) == {}
    assert status_of(logged_in(charlie), result) == {} and status_of(client, result) == {}
    Share.objects.create(owner=alice, grantee=bob)
    assert str(result.pk) in status_of(logged_in(bob), result)
    page = logged_in(charlie).get(f"{reverse('batch')}?ids={result.pk}").content.decode()
    assert "batch-done" not in page and "None of these results is yours to see" in page


def test_ids_that_are_no_ids_are_ignored(alice_client, alice):
    result = make_result(alice)
    response = alice_client.get(f"{reverse('results_status')}?ids=nope,{result.pk},,../x")
    assert [answer["id"] for answer in response.json()["results"]] == [str(result.pk)]
    assert Classification.objects.count() == 1


def test_the_history_page_polls_its_unfinished_cards(alice_client, alice):
    make_result(alice, status="queued")
    page = alice_client.get(reverse("history")).content.decode()
    assert 'data-finished="false"' in page and "js/live-cards.js" in page
