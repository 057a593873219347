"""Images and model artifacts in S3-compatible object storage (moto's server in its own
process): set-up, uploads through the web and the API, a real worker reading the image and the
model from the buckets, access-checked downloads, deletion, and the store being down."""

import io
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.urls import reverse

from classifier.models import Classification, ModelVersion
from imageclass.storage import s3_storages
from tests import badimages
from tests.classifier.test_api_classifications import upload
from tests.classifier.test_upload import upload as upload_file
from tests.conftest import api_client_for
from tests.s3server import S3Server
from tests.workers import start_worker, stop, wait_until_finished


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def buckets(s3_server, settings):
    """Fresh buckets for each test, and this process's storages pointed at them."""
    names = {
        "media_bucket": f"media-{uuid.uuid4().hex[:12]}",
        "models_bucket": f"models-{uuid.uuid4().hex[:12]}",
    }
    settings.STORAGES = settings.STORAGES | s3_storages(
        endpoint_url=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region_name="us-east-1",
        url_expire=300,
        **names,
    )
    call_command("init_storage", stdout=io.StringIO())
    return names


def keys(client, bucket, prefix=""):
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_init_storage_creates_private_buckets_and_is_safe_to_rerun(s3_server, buckets):
    client = s3_server.client()
    media = buckets["media_bucket"]
    public_read = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/*"}]}'
    client.put_bucket_policy(Bucket=media, Policy=public_read % media)

    out = io.StringIO()
    call_command("init_storage", stdout=out)

    assert f"bucket {media}: exists, private" in out.getvalue()
    with pytest.raises(client.exceptions.ClientError, match="NoSuchBucketPolicy"):
        client.get_bucket_policy(Bucket=media)


def test_stored_objects_are_private_and_never_overwritten(s3_server, buckets):
    storage = storages["default"]
    first = storage.save("images/x/photo.jpg", ContentFile(b"first"))
    second = storage.save("images/x/photo.jpg", ContentFile(b"second"))

    assert first != second
    assert storage.open(first).read() == b"first" and storage.open(second).read() == b"second"
    grants = s3_server.client().get_object_acl(Bucket=buckets["media_bucket"], Key=first)["Grants"]
    assert all("URI" not in grant["Grantee"] for grant in grants)  # no AllUsers/AuthenticatedUsers
    url = storage.url(first)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url


def test_web_and_api_uploads_are_classified_from_the_buckets_and_deleted(
    s3_server, buckets, alice, alice_client, tiny_run, tmp_path
):
    client = s3_server.client()
    version = ModelVersion.publish(tiny_run, "tiny", activate=True)
    assert version.artifact_key in keys(client, buckets["models_bucket"])

    photo = badimages.jpeg((50, 40))
    web = alice_client.post(reverse("home"), {"images": upload_file("web.jpg", photo)})
    api = upload(api_client_for(alice), badimages.jpeg(), name="api.jpg")
    assert web.status_code == 302 and api.status_code == 202
    jobs = list(Classification.objects.order_by("created_at"))
    assert {job.image_key for job in jobs} <= keys(client, buckets["media_bucket"], "images/")

    worker = start_worker(tmp_path / "worker.log", **s3_server.environment(**buckets))
    try:
        finished = wait_until_finished([job.pk for job in jobs])
    finally:
        stop(worker)
    assert [job.status for job in finished] == ["done", "done"], [job.error for job in finished]
    assert all(job.model_version_id == version.pk for job in finished)
    stored = keys(client, buckets["media_bucket"])
    assert {job.thumbnail_key for job in finished} <= stored

    # Downloads go through the access-checked views, which stream from the bucket.
    web_job, api_job = sorted(finished, key=lambda job: job.original_filename != "web.jpg")
    image = alice_client.get(reverse("result_image", args=[web_job.pk]))
    assert image.status_code == 200 and b"".join(image.streaming_content) == photo

    # Deleting moves to the trash, files kept in the bucket; purging the trash deletes them.
    assert api_client_for(alice).delete(f"/api/v1/classifications/{api_job.pk}/").status_code == 204
    alice_client.post(reverse("delete", args=[web_job.pk]))
    assert keys(client, buckets["media_bucket"])
    assert api_client_for(alice).delete(f"/api/v1/trash/{api_job.pk}/").status_code == 204
    alice_client.post(reverse("trash_empty"))
    assert Classification.objects.count() == 0
    assert keys(client, buckets["media_bucket"]) == set()


def test_storage_down_refuses_uploads_with_503_and_keeps_nothing(
    alice, alice_client, active_model, settings
):
    from imageclass.embedded import free_port

    settings.STORAGES = settings.STORAGES | s3_storages(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key="a",
        secret_key="b",
        region_name="us-east-1",
        media_bucket="media",
        models_bucket="models",
        url_expire=300,
    )

    web = alice_client.post(
        reverse("home"), {"images": upload_file("web.jpg", badimages.jpeg((50, 40)))}
    )
    api = upload(api_client_for(alice))

    assert web.status_code == 503 and "storage is unavailable" in web.content.decode()
    assert api.status_code == 503 and "storage is unavailable" in api.json()["detail"]
    assert Classification.objects.count() == 0
