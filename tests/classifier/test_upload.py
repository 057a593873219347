"""The upload page (home): files, several files, URLs, and every kind of bad upload."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier import files
from classifier.models import Classification
from tests import badimages


def upload(name, data, content_type="image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def stored_files():
    media = Path(settings.MEDIA_ROOT)
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def test_home_shows_the_form_and_the_active_model(client, active_model):
    page = client.get(reverse("home")).content.decode()
    assert 'name="images"' in page and 'name="image_url"' in page
    assert "tiny v1" in page and "Blue" in page and "50.00% accuracy" in page


def test_anonymous_visitor_classifies_one_image_visible_only_in_their_session(
    client, active_model, db
):
    response = client.post(reverse("home"), {"images": upload("cat.jpg", badimages.jpeg())})
    assert response.status_code == 302
    job = Classification.objects.get()
    assert response.url == reverse("result", args=[job.pk])
    assert job.owner is None and job.session_key == client.session.session_key
    assert job.status == Classification.Status.QUEUED
    assert job.original_filename == "cat.jpg" and job.format == "JPEG"
    assert job.image_key.startswith("images/anon/") and job.image_key.endswith(".jpg")
    assert client.get(response.url).status_code == 200
    from django.test import Client

    assert Client().get(response.url).status_code == 404


def test_anonymous_visitors_send_one_image_at_a_time(client, db):
    response = client.post(
        reverse("home"),
        {"images": [upload("a.jpg", badimages.jpeg()), upload("b.jpg", badimages.jpeg())]},
    )
    assert response.status_code == 400
    assert "Log in to classify several images at once." in response.content.decode()
    assert not Classification.objects.exists()


def test_registered_user_sends_several_images(alice_client, alice):
    files = [upload(f"{i}.jpg", badimages.jpeg((30 + i, 30))) for i in range(3)]
    response = alice_client.post(reverse("home"), {"images": files})
    assert response.status_code == 302
    jobs = Classification.objects.filter(owner=alice)
    assert sorted(j.original_filename for j in jobs) == ["0.jpg", "1.jpg", "2.jpg"]
    assert len({j.image_key for j in jobs}) == 3
    assert all(j.image_key.startswith(f"images/{alice.pk}/") for j in jobs)


def test_same_filename_twice_never_overwrites(alice_client, alice):
    for colour in ((255, 0, 0), (0, 0, 255)):
        data = badimages.encode(badimages.Image.new("RGB", (8, 8), colour), "PNG")
        alice_client.post(reverse("home"), {"images": upload("photo.png", data, "image/png")})
    first, second = Classification.objects.filter(owner=alice)
    assert first.image_key != second.image_key and first.sha256 != second.sha256
    assert files.read_image(first) != files.read_image(second)


def test_more_than_twenty_images_are_refused(alice_client):
    files = [upload(f"{i}.jpg", badimages.jpeg((8, 8))) for i in range(21)]
    response = alice_client.post(reverse("home"), {"images": files})
    assert response.status_code == 400
    assert "At most 20 images at once." in response.content.decode()
    assert not Classification.objects.exists()


BAD_UPLOADS = {
    "empty.jpg": (b"", "The file is empty."),
    "notes.jpg": (b"this is a text file with a .jpg name\n", "not an image in a supported format"),
    "drawing.svg": (badimages.svg(), "not an image in a supported format"),
    "cut.jpg": (badimages.truncated_jpeg(), "truncated or corrupt"),
    "bomb.png": (badimages.png_bomb(), "megapixels are accepted"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_bad_uploads_get_a_clear_message_and_store_nothing(alice_client, name):
    data, message = BAD_UPLOADS[name]
    before = stored_files()
    response = alice_client.post(reverse("home"), {"images": upload(name, data)})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"{name}: {message}" in page or (f"{name}: " in page and message in page)
    assert not Classification.objects.exists() and stored_files() == before


def test_one_bad_file_among_good_ones_sinks_only_itself(alice_client, alice):
    files = [
        upload("good.jpg", badimages.jpeg()),
        upload("bad.jpg", b"nope"),
        upload("also-good.jpg", badimages.jpeg((40, 30))),
    ]
    response = alice_client.post(reverse("home"), {"images": files}, follow=True)
    page = response.content.decode()
    assert "bad.jpg was not sent: " in page and "not an image in a supported format" in page
    assert 'batch-done">0</span> of 2 done' in page
    assert sorted(c.original_filename for c in Classification.objects.all()) == [
        "also-good.jpg",
        "good.jpg",
    ]


def test_only_bad_files_store_nothing(alice_client):
    files = [upload("bad.jpg", b"nope"), upload("cut.jpg", badimages.truncated_jpeg())]
    before = stored_files()
    response = alice_client.post(reverse("home"), {"images": files})
    assert response.status_code == 400
    page = response.content.decode()
    assert "bad.jpg: " in page and "cut.jpg: The image is truncated or corrupt." in page
    assert not Classification.objects.exists() and stored_files() == before


@pytest.mark.parametrize(
    "name, data, format",
    [
        ("cmyk.jpg", badimages.cmyk_jpeg(), "JPEG"),
        ("deep.png", badimages.sixteen_bit_png(), "PNG"),
        ("palette.png", badimages.palette_png_with_transparency(), "PNG"),
        ("animated.gif", badimages.animated_gif(), "GIF"),
        ("rotated.jpg", badimages.exif_rotated_jpeg(), "JPEG"),
        ("renamed.gif", badimages.jpeg(), "JPEG"),  # the content decides, not the name
    ],
)
def test_unusual_but_valid_images_are_accepted(alice_client, name, data, format):
    assert alice_client.post(reverse("home"), {"images": upload(name, data)}).status_code == 302
    job = Classification.objects.get()
    assert job.format == format and job.image_key.endswith("." + job.image_key.rsplit(".", 1)[1])


def test_path_separators_in_filenames_are_dropped(alice_client):
    alice_client.post(reverse("home"), {"images": upload("..\\..\\evil\\x.jpg", badimages.jpeg())})
    assert Classification.objects.get().original_filename == "x.jpg"


def test_url_to_an_internal_address_is_refused_next_to_the_field(alice_client):
    response = alice_client.post(
        reverse("home"), {"image_url": "http://169.254.169.254/latest/meta-data/"}
    )
    assert response.status_code == 400
    assert "private or local network address" in response.content.decode()
    assert not Classification.objects.exists()


def test_nothing_chosen(alice_client):
    response = alice_client.post(reverse("home"), {})
    assert response.status_code == 400
    assert "Choose an image file or paste an image URL." in response.content.decode()
