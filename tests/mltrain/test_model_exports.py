"""TFLite and ONNX exports of a model version: built on the training queue from the Keras
artifact, checked against it, downloadable from the model's admin page."""

import numpy as np
import pytest
from django.urls import reverse

from classifier import dispatch
from classifier.models import ModelVersion
from mltrain import export
from mltrain.keras import transfer
from mltrain.keras.datasets import load_image_folder
from mltrain.tasks import export_model
from tests.conftest import broker_down
from tests.imagefolder import make_image_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return load_image_folder(
        make_image_folder(tmp_path_factory.mktemp("photos"), per_class=4), (32, 32)
    ).images


def keras_top1(version, images):
    import keras

    from classifier.serving.inference import local_artifact

    return np.asarray(
        keras.saving.load_model(local_artifact(version), compile=False)(images)
    ).argmax(axis=1)


def test_exports_are_built_on_request_and_agree_with_keras(admin_client, active_model, photos):
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[active_model.pk]))
    assert "not built yet" in page.content.decode()
    for fmt in ("tflite", "onnx"):
        url = reverse("admin:classifier_modelversion_download", args=[active_model.pk, fmt])
        response = admin_client.get(url)
        assert response.status_code == 302  # queued for the training worker
        assert ModelVersion.objects.get(pk=active_model.pk).exports[fmt]["status"] == "pending"
        export_model(str(active_model.pk), fmt)  # what the training worker runs
        version = ModelVersion.objects.get(pk=active_model.pk)
        assert version.exports[fmt]["status"] == "ready", version.exports[fmt]
        assert version.exports[fmt]["max_difference"] < export.MAX_PROBABILITY_DIFFERENCE
        download = admin_client.get(url)
        assert download.status_code == 200
        assert f'filename="tiny-v1.{fmt}"' in download["Content-Disposition"]
        assert version.exports[fmt]["key"].startswith("tiny/v1/exports/")
        data = b"".join(download.streaming_content)
        predicted = predict_bytes(fmt, data, photos)
        np.testing.assert_array_equal(predicted.argmax(axis=1), keras_top1(version, photos))
    keras_download = admin_client.get(
        reverse("admin:classifier_modelversion_download", args=[active_model.pk, "keras"])
    )
    assert (
        keras_download.status_code == 200
        and 'filename="tiny-v1.keras"' in keras_download["Content-Disposition"]
    )


def predict_bytes(fmt, data, images):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / export.FORMATS[fmt]
        path.write_bytes(data)
        return (
            export.onnx_predict(path, images)
            if fmt == "onnx"
            else export.litert_predict(path, images)
        )


def test_a_transfer_model_exports_too(tmp_path, photos):
    """MobileNetV2's depthwise convolutions and ReLU6 through both converters."""
    model = transfer.build_model(
        transfer.TransferConfig(backbone="mobilenet_v2", weights="none", image_size=32), 3
    )
    model.save(tmp_path / "model.keras")
    for fmt in export.FORMATS:
        record = export.build(tmp_path / "model.keras", fmt, tmp_path / export.FORMATS[fmt])
        assert (
            record["agreement"] == 1.0
            and record["max_difference"] < export.MAX_PROBABILITY_DIFFERENCE
        )
        np.testing.assert_allclose(
            predict_bytes(fmt, (tmp_path / export.FORMATS[fmt]).read_bytes(), photos),
            model(photos),
            atol=1e-4,
        )


def test_a_failed_export_says_why_and_can_be_asked_again(admin_client, active_model, monkeypatch):
    monkeypatch.setattr(
        export, "build", lambda *args: (_ for _ in ()).throw(ValueError("converter exploded"))
    )
    export_model(str(active_model.pk), "onnx")
    version = ModelVersion.objects.get(pk=active_model.pk)
    assert version.exports["onnx"] == {
        "status": "failed",
        "error": "ValueError: converter exploded",
    }
    page = admin_client.get(
        reverse("admin:classifier_modelversion_change", args=[active_model.pk])
    ).content.decode()
    assert "converter exploded" in page
    assert dispatch.request_export(version, "onnx") == "pending"


def test_unknown_formats_and_other_users_get_404(client, alice, admin_client, active_model):
    assert (
        admin_client.get(
            reverse("admin:classifier_modelversion_download", args=[active_model.pk, "pickle"])
        ).status_code
        == 404
    )
    client.force_login(alice)
    response = client.get(
        reverse("admin:classifier_modelversion_download", args=[active_model.pk, "keras"])
    )
    assert response.status_code == 302 and "login" in response.url


def test_an_export_asked_while_the_broker_is_down_gets_503_and_is_asked_again_later(
    admin_client, active_model, settings
):
    url = reverse("admin:classifier_modelversion_download", args=[active_model.pk, "onnx"])
    with broker_down():
        assert admin_client.get(url).status_code == 503
    assert "status" not in ModelVersion.objects.get(pk=active_model.pk).exports.get(
        "onnx", {}
    )  # not left pending
    assert admin_client.get(url).status_code == 302
