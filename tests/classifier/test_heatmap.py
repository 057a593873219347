"""Grad-CAM heatmaps: the map points where the evidence is; made once by the worker on the
first request, cached in storage, shown to whoever may see the result (web and API)."""

import io

import keras
import numpy as np
import pytest
import redis
from django.core.files.storage import storages
from django.urls import reverse
from PIL import Image

from accounts.models import Share
from classifier.models import Classification, ModelVersion
from classifier.serving import explain as grad_cam
from classifier.serving import inference
from classifier.tasks import classify, explain
from tests import badimages
from tests.conftest import api_client_for, broker_down


@pytest.fixture(autouse=True)
def fresh_model_caches():
    inference.forget()
    grad_cam.forget()


def finished(owner):
    job = Classification.store(badimages.jpeg((80, 60)), owner=owner, filename="photo.jpg")
    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    assert job.status == "done"
    return job


def test_the_map_is_hot_where_the_class_evidence_is():
    """Class 0 is 'red', class 1 'blue': a red patch top-left and a blue one bottom-right."""
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    features = keras.layers.Conv2D(3, 1, use_bias=False, name="features")
    x = keras.layers.GlobalAveragePooling2D()(features(x))
    head = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inputs, head(x))
    features.set_weights([np.eye(3, dtype="float32")[None, None]])
    head.set_weights([np.array([[1, 0], [0, 0], [0, 1]], "float32")])
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:3, :3, 0] = 255
    pixels[5:, 5:, 2] = 255
    layer = grad_cam.feature_layer(model)
    assert layer.name == "features"
    gradients = keras.Model(model.input, [layer.output, model.output])
    red = grad_cam.class_activation_map(gradients, pixels, 0)
    blue = grad_cam.class_activation_map(gradients, pixels, 1)
    assert red.max() == 1 and np.unravel_index(red.argmax(), red.shape) < (3, 3) and red[6, 6] == 0
    assert np.unravel_index(blue.argmax(), blue.shape) >= (5, 5) and blue[1, 1] == 0


def test_the_explained_network_is_the_one_inside_the_mirror_wrapper(tiny_run):
    model = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    network = grad_cam.network_of(model)
    assert network is not model and network.output.shape[-1] == 3
    assert min(grad_cam.feature_layer(network).output.shape[1:3]) >= grad_cam.MIN_MAP_SIDE


def test_heatmap_is_made_once_on_request_and_served_to_those_who_may_see(
    client, alice, bob, charlie, active_model, settings
):
    job = finished(alice)
    client.force_login(alice)
    url = reverse("result_heatmap", args=[job.pk])
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def messages():
        return broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE)

    sent = messages()
    pending = client.get(url)
    assert pending.status_code == 202 and pending["Retry-After"] == "1"
    assert client.get(url).status_code == 202
    assert messages() == sent + 1  # asked once: the second request sent no message
    job.refresh_from_db()
    assert job.heatmap_requested_at is not None

    explain.apply(args=[str(job.pk)])  # what the worker runs for the queued message
    explain.apply(args=[str(job.pk)])  # a second delivery keeps the first overlay
    job.refresh_from_db()
    assert job.heatmap_key.startswith("heatmaps/")
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as overlay:
        assert overlay.format == "JPEG" and overlay.size == (80, 60)

    client.force_login(charlie)
    assert client.get(url).status_code == 404
    Share.objects.create(owner=alice, grantee=bob)
    client.force_login(bob)
    assert client.get(url).status_code == 200
    key = job.heatmap_key
    job.delete()
    assert not storages["default"].exists(key)


def test_api_heatmap_and_the_reasons_there_is_none(alice, active_model):
    api = api_client_for(alice)
    queued = Classification.store(badimages.jpeg(), owner=alice, filename="later.jpg")
    response = api.get(reverse("api:classification-heatmap", args=[queued.pk]))
    assert response.status_code == 409 and "not finished" in response.json()["detail"]

    job = finished(alice)
    assert api.get(reverse("api:classification-heatmap", args=[job.pk])).status_code == 202
    explain.apply(args=[str(job.pk)])
    response = api.get(reverse("api:classification-heatmap", args=[job.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"

    orphan = finished(alice)
    ModelVersion.objects.filter(pk=active_model.pk).delete()
    explain.apply(args=[str(orphan.pk)])
    response = api.get(reverse("api:classification-heatmap", args=[orphan.pk]))
    assert response.status_code == 409 and "no longer registered" in response.json()["detail"]


def test_a_heatmap_asked_while_the_broker_is_down_gets_503_and_is_asked_again_later(
    alice_client, alice, active_model, settings
):
    job = finished(alice)
    url = reverse("result_heatmap", args=[job.pk])
    with broker_down():
        response = alice_client.get(url)
    assert response.status_code == 503 and response["Retry-After"]
    job.refresh_from_db()
    assert job.heatmap_requested_at is None  # not marked as asked: the next request sends it
    assert alice_client.get(url).status_code == 202
