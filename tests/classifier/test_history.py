import csv
import io
import json
import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from classifier.history import History
from tests.conftest import make_result


def listed(response):
    return re.findall(r'name="ids" value="([0-9a-f]{24})"', response.content.decode())


def test_history_requires_login(client, db):
    response = client.get(reverse("history"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_only_my_results_newest_first(alice_client, alice, bob):
    now = timezone.now()
    old = make_result(alice, created_at=now - timedelta(days=2))
    new = make_result(alice, created_at=now)
    make_result(bob)
    assert listed(alice_client.get(reverse("history"))) == [str(new.pk), str(old.pk)]


def test_filters(alice_client, alice):
    now = timezone.now()
    cat = make_result(
        alice, "cat", 0.95, filename="garden cat.jpg", created_at=now - timedelta(days=10)
    )
    dog = make_result(alice, "dog", 0.40, filename="dog.png", created_at=now - timedelta(days=1))
    failed = make_result(alice, status="failed", filename="broken.jpg")
    url = reverse("history")
    assert listed(alice_client.get(url, {"label": "cat"})) == [str(cat.pk)]
    assert listed(alice_client.get(url, {"min_probability": "50"})) == [str(cat.pk)]
    assert listed(alice_client.get(url, {"status": "failed"})) == [str(failed.pk)]
    assert listed(alice_client.get(url, {"q": "GARDEN"})) == [str(cat.pk)]
    week_ago = (now - timedelta(days=7)).date().isoformat()
    assert set(listed(alice_client.get(url, {"created_after": week_ago}))) == {
        str(dog.pk),
        str(failed.pk),
    }
    assert listed(alice_client.get(url, {"created_before": week_ago})) == [str(cat.pk)]
    assert (
        listed(alice_client.get(url, {"min_probability": "500"})) == []
    )  # invalid: nothing, no error


def test_cursor_pages_are_stable_while_new_results_arrive(alice_client, alice):
    start = timezone.now() - timedelta(hours=1)
    results = [
        make_result(alice, created_at=start + timedelta(seconds=i // 2)) for i in range(30)
    ]  # ties too
    first = alice_client.get(reverse("history"))
    first_ids = listed(first)
    assert len(first_ids) == 24
    older = re.search(r"older=([\w-]+)", first.content.decode()).group(1)
    make_result(alice)  # arrives meanwhile
    second_ids = listed(alice_client.get(reverse("history"), {"older": older}))
    assert len(second_ids) == 6 and not set(first_ids) & set(second_ids)
    assert set(first_ids) | set(second_ids) == {str(r.pk) for r in results}
    back = alice_client.get(
        reverse("history"),
        {
            "newer": re.search(
                r"newer=([\w-]+)",
                alice_client.get(reverse("history"), {"older": older}).content.decode(),
            ).group(1)
        },
    )
    assert listed(back) == first_ids


def test_a_search_says_where_its_window_stopped(alice_client, alice, monkeypatch):
    """With a window of 3, the newest match lies past the first page's window: that page says
    it searched 3 results and links older; the older page holds the match."""
    monkeypatch.setattr(History, "scan_window", 3)
    start = timezone.now() - timedelta(hours=1)
    match = make_result(alice, filename="garden cat.jpg", created_at=start)
    for n in range(4):
        make_result(alice, filename=f"dog-{n}.jpg", created_at=start + timedelta(minutes=n + 1))
    first = alice_client.get(reverse("history"), {"q": "garden"})
    page = first.content.decode()
    assert (
        listed(first) == []
        and "No match among the 3 results searched for this page; <em>Older</em>" in page
    )
    older = re.search(r"older=([\w-]+)", page).group(1)
    second = alice_client.get(reverse("history"), {"q": "garden", "older": older})
    assert listed(second) == [str(match.pk)] and "results searched" not in second.content.decode()
    newer = re.search(r"newer=([\w-]+)", second.content.decode()).group(1)
    back = alice_client.get(reverse("history"), {"q": "garden", "newer": newer}).content.decode()
    assert (
        "No match among the 3 results searched for this page; <em>Newer</em> searches further"
        in back
    )


def test_a_garbled_cursor_shows_the_first_page(alice_client, alice):
    result = make_result(alice)
    assert listed(alice_client.get(reverse("history"), {"older": "%%%not-a-cursor"})) == [
        str(result.pk)
    ]


def test_export_csv_follows_the_filters_and_defuses_formulas(alice_client, alice, bob):
    make_result(alice, "cat", filename='=cmd|"calc"!A0.jpg')
    make_result(alice, "dog")
    make_result(bob, "cat")
    response = alice_client.get(reverse("export", args=["csv"]), {"label": "cat"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 and rows[0]["top_label"] == "cat"
    assert rows[0]["original_filename"].startswith("'=")


def test_export_json(alice_client, alice):
    results = [make_result(alice, "cat"), make_result(alice, "dog")]
    response = alice_client.get(reverse("export", args=["json"]))
    rows = json.loads(b"".join(response.streaming_content))
    assert {row["id"] for row in rows} == {str(r.pk) for r in results}
    assert alice_client.get(reverse("export", args=["xml"])).status_code == 404


def test_export_requires_login(client, db):
    assert client.get(reverse("export", args=["csv"])).status_code == 302


def test_dates_are_date_pickers_and_labels_a_list_of_those_in_the_history(alice_client, alice, bob):
    make_result(alice, "cat")
    make_result(alice, "golden_retriever")
    make_result(bob, "ship")  # not alice's: not offered to her
    page = alice_client.get(reverse("history")).content.decode()
    assert page.count('type="date"') == 2
    label_select = page[
        page.index('<select name="label"') : page.index(
            "</select>", page.index('<select name="label"')
        )
    ]
    assert '<option value="cat">Cat</option>' in label_select
    assert '<option value="golden_retriever">Golden retriever</option>' in label_select
    assert "ship" not in label_select


def test_the_label_filter_ignores_case(alice_client, alice):
    cat = make_result(alice, "cat")
    make_result(alice, "dog")
    assert listed(alice_client.get(reverse("history") + "?label=CAT")) == [str(cat.pk)]
    api = alice_client.get("/api/v1/classifications/?label=Cat").json()
    assert [r["id"] for r in api["results"]] == [str(cat.pk)]


def test_the_page_says_how_many_match(alice_client, alice, monkeypatch):
    for _ in range(3):
        make_result(alice, "cat", filename="cat.jpg")
    make_result(alice, "dog", filename="dog.jpg")

    def counted(query):
        page = alice_client.get(reverse("history") + query).content.decode()
        line = page.split('id="match-count" aria-live="polite">')[1].split("</p>")[0]
        return re.sub(r"\s+", " ", line).strip()

    assert counted("") == "4 results."
    assert counted("?label=cat") == "3 results match these filters."
    assert counted("?label=dog") == "1 result matches these filters."
    assert counted("?q=nothing") == "0 results match these filters."
    monkeypatch.setattr(History, "scan_window", 2)
    assert counted("?q=cat") == (  # the newest two are dog.jpg and one cat.jpg
        "At least 1 result matches these filters (only the newest 2 were searched)."
    )


def test_corrected_labels_show_on_cards_and_in_exports(alice_client, alice):
    result = make_result(alice, "cat")
    result.correct("dog")
    card = alice_client.get(reverse("history")).content.decode()
    assert "corrected to <strong>Dog</strong>" in card
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(
                    alice_client.get(reverse("export", args=["csv"])).streaming_content
                ).decode()
            )
        )
    )
    assert rows[0]["corrected_label"] == "dog"
    exported = json.loads(
        b"".join(alice_client.get(reverse("export", args=["json"])).streaming_content)
    )
    assert exported[0]["corrected_label"] == "dog"
