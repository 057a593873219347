import pytest

from accounts.models import Share
from classifier.models import Classification
from tests import badimages
from tests.conftest import api_client_for, make_result


@pytest.fixture
def alice_api(alice):
    return api_client_for(alice)


def upload(api, data=None, name="cat.jpg"):
    import io

    file = io.BytesIO(data if data is not None else badimages.jpeg())
    file.name = name
    return api.post("/api/v1/classifications/", {"image": file}, format="multipart")


def test_upload_is_accepted_with_location(alice_api, alice):
    response = upload(alice_api)
    assert response.status_code == 202
    body = response.json()
    job = Classification.objects.get()
    assert body["id"] == str(job.pk) and body["status"] == "queued"
    assert response["Location"].endswith(f"/api/v1/classifications/{job.pk}/")
    assert body["image_url"].endswith(f"/api/v1/classifications/{job.pk}/image/")
    assert body["original_filename"] == "cat.jpg" and body["predictions"] == []


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The file is empty."),
        (b"text", "not an image"),
        (badimages.truncated_jpeg(), "truncated or corrupt"),
    ],
)
def test_bad_uploads_are_400_field_errors_and_store_nothing(alice_api, data, message):
    response = upload(alice_api, data)
    assert response.status_code == 400
    assert message in " ".join(response.json()["image"])
    assert not Classification.objects.exists()


def upload_many(api, files):
    import io

    parts = []
    for name, data in files:
        part = io.BytesIO(data)
        part.name = name
        parts.append(part)
    return api.post("/api/v1/classifications/", {"image": parts}, format="multipart")


def test_several_files_answer_one_by_one_and_a_bad_one_sinks_nothing(alice_api, alice):
    response = upload_many(
        alice_api,
        [
            ("a.jpg", badimages.jpeg()),
            ("cut.jpg", badimages.truncated_jpeg()),
            ("b.jpg", badimages.jpeg((40, 30))),
        ],
    )
    assert response.status_code == 207
    a, cut, b = response.json()["files"]
    assert (a["filename"], a["status"], a["classification"]["status"]) == ("a.jpg", 202, "queued")
    assert (cut["filename"], cut["status"]) == ("cut.jpg", 400) and "truncated" in cut["detail"]
    assert "classification" not in cut
    assert b["classification"]["original_filename"] == "b.jpg"
    stored = {str(c.pk): c for c in Classification.objects.all()}
    assert set(stored) == {a["classification"]["id"], b["classification"]["id"]}
    assert all(c.owner_id == alice.pk for c in stored.values())


def test_several_files_all_bad_are_400_naming_each(alice_api):
    response = upload_many(alice_api, [("x.jpg", b"nope"), ("y.jpg", b"")])
    assert response.status_code == 400
    errors = response.json()["image"]
    assert errors[0].startswith("x.jpg: ") and errors[1] == "y.jpg: The file is empty."
    assert not Classification.objects.exists()


def test_internal_urls_are_refused(alice_api):
    response = alice_api.post(
        "/api/v1/classifications/", {"image_url": "http://127.0.0.1/x.jpg"}, format="json"
    )
    assert response.status_code == 400
    assert "private or local network address" in response.json()["image_url"][0]


def test_nothing_sent_is_400_with_detail(alice_api):
    response = alice_api.post("/api/v1/classifications/", {}, format="json")
    assert (
        response.status_code == 400
        and response.json()["detail"] == "Choose an image file or paste an image URL."
    )


def test_list_filters_and_cursor_pages(alice_api, alice, bob):
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now() - timedelta(hours=1)
    results = [
        make_result(
            alice,
            "cat" if i % 2 else "dog",
            0.3 + i / 100,
            created_at=start + timedelta(seconds=i // 3),
        )
        for i in range(30)
    ]
    make_result(bob, "cat")
    first = alice_api.get("/api/v1/classifications/").json()
    assert len(first["results"]) == 24 and first["previous"] is None
    make_result(alice)  # arrives between pages
    second = alice_api.get(first["next"]).json()
    assert len(second["results"]) == 6 and second["next"] is None
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert ids == [
        str(r.pk) for r in sorted(results, key=lambda r: (r.created_at, r.pk), reverse=True)
    ]
    # Each result of a page links its own image (the URL is built once per page).
    assert [r["image_url"] for r in first["results"]] == [
        f"http://testserver/api/v1/classifications/{i}/image/" for i in ids[:24]
    ]
    back = alice_api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    cats = alice_api.get(
        "/api/v1/classifications/", {"label": "cat", "min_probability": 0.5}
    ).json()["results"]
    assert cats and all(r["top_label"] == "cat" and r["top_probability"] >= 0.5 for r in cats)
    assert alice_api.get("/api/v1/classifications/", {"min_probability": 5}).status_code == 400


def test_a_search_pages_on_past_its_window(alice_api, alice, monkeypatch):
    """A filename search reads at most a window of results per page (5 here): its pages can be
    short or empty and still link the next, until the pages together hold every match."""
    from datetime import timedelta

    from django.utils import timezone

    from classifier.history import History

    monkeypatch.setattr(History, "scan_window", 5)
    start = timezone.now() - timedelta(hours=1)
    made = [
        make_result(
            alice,
            filename=f"{'cat' if i in (3, 4, 5, 17) else 'dog'}-{i}.jpg",
            created_at=start + timedelta(seconds=i),
        )
        for i in range(20)
    ]
    pages, url = [], "/api/v1/classifications/?q=cat"
    while url:
        body = alice_api.get(url).json()
        pages.append([r["original_filename"] for r in body["results"]])
        url = body["next"]
    assert pages == [["cat-17.jpg"], [], ["cat-5.jpg"], ["cat-4.jpg", "cat-3.jpg"]]
    assert [item.original_filename for item in made if "cat" in item.original_filename][
        ::-1
    ] == sum(pages, [])


def test_detail_image_and_delete_scoped_to_owner(alice, bob, charlie):
    result = make_result(alice)
    Share.objects.create(owner=alice, grantee=bob)
    url = f"/api/v1/classifications/{result.pk}/"
    for user, expected in ((alice, 200), (bob, 200), (charlie, 404)):
        api = api_client_for(user)
        assert api.get(url).status_code == expected
        assert api.get(url + "image/").status_code == expected
    assert api_client_for(None).get(url).status_code == 401
    assert api_client_for(bob).delete(url).status_code == 404  # shared is read-only
    assert api_client_for(charlie).delete(url).status_code == 404
    image = api_client_for(alice).get(url + "image/")
    assert image["Content-Type"] == "image/jpeg"
    assert api_client_for(alice).delete(url).status_code == 204  # to the trash
    assert api_client_for(alice).get(url).status_code == 404
    assert Classification.objects.get().trashed_by == alice
    assert api_client_for(alice).get("/api/v1/classifications/not-an-id/").status_code == 404


def test_every_filter(alice_api, alice):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    cat = make_result(
        alice, "cat", 0.95, filename="garden cat.jpg", created_at=now - timedelta(days=10)
    )
    dog = make_result(alice, "dog", 0.40, filename="dog.png", created_at=now - timedelta(days=1))
    failed = make_result(alice, status="failed", filename="broken.jpg")
    week_ago = (now - timedelta(days=7)).date().isoformat()

    def ids(**params):
        return {
            r["id"] for r in alice_api.get("/api/v1/classifications/", params).json()["results"]
        }

    assert ids(label="dog") == {str(dog.pk)}
    assert ids(min_probability=0.5) == {str(cat.pk)}
    assert ids(status="failed") == {str(failed.pk)}
    assert ids(q="GARDEN") == {str(cat.pk)}
    assert ids(created_after=week_ago) == {str(dog.pk), str(failed.pk)}
    assert ids(created_before=week_ago) == {str(cat.pk)}
    assert ids(label="cat", status="done", q="cat") == {str(cat.pk)}
    for bad in ({"status": "lost"}, {"created_after": "yesterday"}, {"min_probability": "high"}):
        response = alice_api.get("/api/v1/classifications/", bad)
        assert response.status_code == 400 and set(bad) <= set(response.json())


def test_a_result_renders_as_its_declared_fields_would(alice, active_model):
    """The serializer writes its fields out for speed: what it gives must stay what DRF's
    generic rendering of the declared fields gives, for every kind of result."""
    from django.utils import timezone
    from rest_framework import serializers
    from rest_framework.test import APIRequestFactory

    from classifier.api import ClassificationSerializer
    from tests.classifier.test_classify_task import run, stored

    done = run(stored(alice))
    Classification.objects.filter(pk=done.pk).update(
        corrected_label="cat", corrected_at=timezone.now()
    )
    failed = make_result(alice, status="failed")
    Classification.objects.filter(pk=failed.pk).update(
        error="The image could not be read.", finished_at=timezone.now()
    )
    fetched = Classification.store(
        badimages.jpeg(), owner=alice, filename="x.jpg", source_url="https://example.com/x.jpg"
    )
    uncertain = make_result(alice, probability=0.2)
    context = {"request": APIRequestFactory().get("/api/v1/classifications/")}
    results = [
        Classification.objects.get(pk=result.pk) for result in (done, failed, fetched, uncertain)
    ]
    # The time zone is found once a serializer: a request's own must still show.
    for zone, offset in (("UTC", "Z"), ("Asia/Kolkata", "+05:30")):
        with timezone.override(zone):
            for result in results:
                serializer = ClassificationSerializer(result, context=context)
                assert serializer.data == serializers.ModelSerializer.to_representation(
                    serializer, result
                )
                assert list(serializer.data) == list(ClassificationSerializer.Meta.fields)
                assert serializer.data["created_at"].endswith(offset)
