"""Training from the admin: a zip of class folders, checked like any upload, trained on the
training queue's task, published, activated, and then serving."""

import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import ModelVersion
from imageclass.dispatch import QueueUnavailable
from mltrain import dispatch
from mltrain.archive import InvalidArchive, inspect_archive
from mltrain.models import TrainingJob
from mltrain.tasks import train_model
from tests import badimages
from tests.conftest import broker_down
from tests.imagefolder import make_image_folder


def zip_of(entries: dict) -> io.BytesIO:
    """A zip with `entries` {name: bytes}; a bytes value of None makes a symlink entry."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            if data is None:
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, "/etc/passwd")
            else:
                archive.writestr(name, data)
    buffer.seek(0)
    buffer.name = "dataset.zip"
    return buffer


def folder_zip(root, wrapper="") -> io.BytesIO:
    entries = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            entries[os.path.join(wrapper, str(path.relative_to(root)))] = path.read_bytes()
    return zip_of(entries)


def start_training(admin_client, upload, **fields):
    """Post the admin's training form: a small run on our own model unless `fields` say otherwise."""
    form = {
        "name": "colours",
        "dataset": upload,
        "backbone": "imageclass",
        "head_epochs": 1,
        "fine_tune_epochs": 1,
        "batch_size": 8,
        "validation_fraction": 0.25,
        **fields,
    }
    return admin_client.post(reverse("admin:mltrain_trainingjob_start"), form)


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("colours"), per_class=6)


def test_a_zip_of_class_folders_is_accepted_with_or_without_a_top_folder(colours):
    assert inspect_archive(folder_zip(colours)).class_counts == {"blue": 6, "green": 6, "red": 6}
    assert inspect_archive(folder_zip(colours, "my-dataset")).images == 18


@pytest.mark.parametrize(
    "entries, reason",
    [
        ({"a/1.jpg": "JPEG", "../b/1.jpg": "JPEG"}, "'..'"),
        ({"a/1.jpg": "JPEG", "/etc/b/1.jpg": "JPEG"}, "absolute"),
        ({"a/1.jpg": "JPEG", "b\\..\\1.jpg": "JPEG"}, "Windows"),
        ({"a/1.jpg": "JPEG", "a/2.jpg": "JPEG", "b/1.jpg": "JPEG", "b/link.jpg": None}, "links"),
        ({"a/1.jpg": "JPEG", "a/2.jpg": "JPEG", "b/inner.zip": "ZIP"}, "nested archives"),
        (
            {"a/1.jpg": "JPEG", "a/2.jpg": "JPEG", "b/1.jpg": "JPEG", "b/notes.jpg": b"just text"},
            "not an image",
        ),
        ({"a/1.jpg": "JPEG", "a/2.jpg": "JPEG"}, "two class folders"),
        ({"a/1.jpg": "JPEG", "a/2.jpg": "JPEG", "b/1.jpg": "JPEG"}, "too few in: b"),
        (
            {"a/1.jpg": "JPEG", "a/2.jpg": "JPEG", "b/c/1.jpg": "JPEG", "d/1.jpg": "JPEG"},
            "nested folders",
        ),
    ],
)
def test_hostile_or_malformed_archives_are_refused_with_the_reason(entries, reason):
    jpeg = badimages.jpeg((8, 8))
    inner = zip_of({"x/1.jpg": jpeg}).getvalue()
    resolved = {
        name: {"JPEG": jpeg, "ZIP": inner}.get(data, data) if isinstance(data, str) else data
        for name, data in entries.items()
    }
    with pytest.raises(InvalidArchive, match=reason):
        inspect_archive(zip_of(resolved))


def test_size_entry_count_and_zip_bombs_are_capped(settings, colours):
    settings.TRAINING_ZIP_MAX_FILES = 5
    with pytest.raises(InvalidArchive, match="entries"):
        inspect_archive(folder_zip(colours))
    settings.TRAINING_ZIP_MAX_FILES = 1000
    settings.TRAINING_ZIP_MAX_BYTES = 100
    with pytest.raises(InvalidArchive, match="larger than"):
        inspect_archive(folder_zip(colours))
    settings.TRAINING_ZIP_MAX_BYTES = 10**8
    bomb = b"\xff\xd8\xff" + bytes(5 * 2**20)
    with pytest.raises(InvalidArchive, match="zip bomb"):
        inspect_archive(
            zip_of({"a/1.jpg": bomb, "a/2.jpg": bomb, "b/1.jpg": bomb, "b/2.jpg": bomb})
        )
    with pytest.raises(InvalidArchive, match="not a zip"):
        inspect_archive(io.BytesIO(b"PK but not really"))


def test_many_small_members_cannot_add_up_to_a_bomb(colours):
    """300 zero-filled BMPs of 1.1 MB each, each under the members' own check: a 348 KB zip
    that unpacked to 339 MB and trained before the whole archive had a ratio."""
    bmp = b"BM" + bytes(1_130_000)
    entries = {f"{name}/{n}.bmp": bmp for name in ("a", "b") for n in range(150)}
    upload = zip_of(entries)
    assert len(upload.getvalue()) < 400_000
    with pytest.raises(InvalidArchive, match=r"expands \d{3,} times \(at most 20\)"):
        inspect_archive(upload)
    assert inspect_archive(folder_zip(colours)).images == 18  # small archives still expand freely


def test_only_staff_can_start_training(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:mltrain_trainingjob_start"))
    assert response.status_code == 302 and "login" in response.url


def test_a_bad_zip_is_refused_in_the_form_and_nothing_is_queued(admin_client):
    upload = SimpleUploadedFile(
        "x.zip", zip_of({"a/1.jpg": badimages.jpeg((8, 8)), "../b/1.jpg": b"x"}).getvalue()
    )
    response = start_training(admin_client, upload, name="pets")
    assert response.status_code == 200
    assert "paths may not contain" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_job_that_cannot_be_queued_keeps_nothing_and_says_so(admin_client, settings, colours):
    from django.core.files.storage import storages

    upload = SimpleUploadedFile("colours.zip", folder_zip(colours).getvalue())
    with broker_down():
        response = start_training(admin_client, upload)
    assert response.status_code == 503
    assert "training queue is unavailable" in response.content.decode()
    assert not TrainingJob.objects.exists()
    stored = Path(storages["models"].path("training-data"))
    assert not [path for path in stored.rglob("*") if path.is_file()]  # the zip was removed again


def test_admin_training_job_trains_publishes_activates_and_serves(
    admin_client, active_model, colours
):
    upload = SimpleUploadedFile("colours.zip", folder_zip(colours, "colours").getvalue())
    response = start_training(admin_client, upload, head_epochs=2, activate_when_done="on")
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/{job.pk}/change/")
    assert (job.status, job.class_counts) == ("queued", {"blue": 6, "green": 6, "red": 6})

    train_model(str(job.pk))  # what the training worker runs for the queued message
    train_model(str(job.pk))  # a second delivery finds the job taken and does nothing

    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.heartbeat_at > job.started_at  # every phase and epoch is a sign of life
    assert [entry["phase"] for entry in job.history][:1] == ["head"] and job.history[-1][
        "phase"
    ] == "fine-tune"
    version = ModelVersion.active()
    assert version == job.model_version and version.name == "colours"
    assert version.architecture == "transfer:imageclass"
    assert "misclassified.npz" in version.report_keys
    progress = admin_client.get(reverse("admin:mltrain_trainingjob_progress", args=[job.pk])).json()
    assert progress["status"] == "done" and progress["model_version"] == str(version)
    assert (
        admin_client.get(reverse("admin:mltrain_trainingjob_change", args=[job.pk])).status_code
        == 200
    )

    from classifier.serving import inference

    pixels = np.stack(
        [np.full((32, 32, 3), colour, np.uint8) for colour in ((30, 60, 220), (220, 40, 40))]
    )
    version_used, model = inference.serving_model()
    assert version_used.class_names == ["blue", "green", "red"]
    assert model(pixels).shape == (2, 3)


def test_a_failed_job_says_why_and_can_be_retried(admin_client, db, colours, settings):
    from django.core.files.storage import storages

    job = TrainingJob.objects.create(
        name="x",
        dataset_key="training-data/missing.zip",
        config={"backbone": "imageclass", "weights": "active"},
    )
    train_model(str(job.pk))
    job.refresh_from_db()
    assert job.status == "failed" and "no model is active" in job.error
    storages["models"].save("training-data/missing.zip", folder_zip(colours))
    with broker_down(), pytest.raises(QueueUnavailable):
        dispatch.retry_training(job)
    job.refresh_from_db()
    assert job.status == "failed" and "no model is active" in job.error  # as it was
    assert dispatch.retry_training(job)
    job.refresh_from_db()
    assert job.status == "queued" and job.error == ""
    assert not dispatch.retry_training(job)  # queued already


def test_a_job_whose_worker_died_is_failed_by_the_sweep_and_can_be_retried(db, settings):
    from datetime import timedelta

    from django.utils import timezone

    from mltrain.tasks import sweep_abandoned_jobs

    settings.TRAINING_STALE_AFTER = 3600
    now = timezone.now()
    alive = TrainingJob.objects.create(
        name="alive", dataset_key="k", status="running", heartbeat_at=now - timedelta(minutes=59)
    )
    dead = TrainingJob.objects.create(
        name="dead", dataset_key="k", status="running", heartbeat_at=now - timedelta(minutes=61)
    )
    assert sweep_abandoned_jobs() == 1
    alive.refresh_from_db()
    dead.refresh_from_db()
    assert alive.status == "running"
    assert dead.status == "failed" and "no progress for 60 minutes" in dead.error
    assert dispatch.retry_training(dead)


def test_the_sweep_runs_on_the_inference_queue_and_training_on_its_own():
    from imageclass.celery import app

    router = app.amqp.router
    assert router.route({}, "mltrain.tasks.sweep_abandoned_jobs")["queue"].name == "inference"
    assert router.route({}, "mltrain.tasks.train_model")["queue"].name == "training"
    assert router.route({}, "mltrain.tasks.export_model")["queue"].name == "training"


def test_encrypted_or_corrupt_members_are_refused_not_crashed_on():
    jpeg = badimages.jpeg((8, 8))
    plain = bytearray(
        zip_of({"a/1.jpg": jpeg, "a/2.jpg": jpeg, "b/1.jpg": jpeg, "b/2.jpg": jpeg}).getvalue()
    )
    for signature, flag_offset in (
        (b"PK\x03\x04", 6),
        (b"PK\x01\x02", 8),
    ):  # local and central headers
        start = 0
        while (start := plain.find(signature, start)) >= 0:
            plain[start + flag_offset] |= 0x1  # "encrypted": reading it needs a password
            start += 4
    encrypted = io.BytesIO(bytes(plain))
    with pytest.raises(InvalidArchive, match="unsupported feature"):
        inspect_archive(encrypted)
    corrupt = bytearray(
        zip_of({"a/1.jpg": jpeg * 50, "a/2.jpg": jpeg, "b/1.jpg": jpeg, "b/2.jpg": jpeg}).getvalue()
    )
    corrupt[40:60] = bytes(20)  # inside the first member's compressed data
    with pytest.raises(InvalidArchive):
        inspect_archive(io.BytesIO(bytes(corrupt)))


def test_the_form_warns_when_classes_have_few_validation_images(admin_client, colours):
    upload = SimpleUploadedFile("colours.zip", folder_zip(colours).getvalue())
    response = start_training(admin_client, upload)
    page = admin_client.get(response.url).content.decode()
    assert "Few validation images: blue (2), green (2), red (2)." in page
    assert "Fewer than 10 per class make its accuracy a coarse figure" in page
