"""The general model (EfficientNet-Lite0 with ImageNet's 1,000 classes) that `make run`
registers beside the shipped CIFAR-10 one: once, inactive, with distinct readable labels and an
int8 verdict; once activated, results carry its labels and history finds them by label; and
`classify --model-version` picks either model. The first test builds the model (about a
minute); the others reuse the worker's built copy."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.models import Classification, ModelVersion
from classifier.serving import inference
from classifier.tasks import classify
from mltrain import general_model
from mltrain.keras import package_photos

CATS = range(281, 286)  # ImageNet's domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian


@pytest.fixture(autouse=True)
def both_models(db, settings):
    settings.GENERAL_MODEL = True
    settings.INFERENCE_RUNTIME = "keras"  # LiteRT conversions are the runtime tests' business
    inference.forget()
    call_command("publish_shipped", stdout=io.StringIO())
    return ModelVersion.objects.get(name="cifar10"), ModelVersion.objects.get(
        name=general_model.NAME
    )


def chelsea_jpeg() -> bytes:
    buffer = io.BytesIO()
    package_photos.load("chelsea").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_the_general_model_is_registered_once_beside_the_active_shipped_one(both_models):
    shipped, general = both_models
    call_command("publish_shipped", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 2 and ModelVersion.active() == shipped
    assert not general.is_active and general.input_size == (256, 256)
    assert len(general.class_names) == len(set(general.class_names)) == 1000
    assert general.class_names[281] == "tabby cat" and general.class_names[744] == "projectile"
    assert set(general.metrics["int8"]) >= {"passed", "agreement", "reason", "sha256"}
    assert {"MODEL_CARD.md", "metrics.json", "training.json"} <= set(general.report_keys)


def test_activated_it_labels_results_with_imagenet_classes_that_history_finds(
    both_models, alice, alice_client
):
    _, general = both_models
    general.activate()
    job = Classification.store(chelsea_jpeg(), owner=alice, filename="chelsea.jpg")
    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    assert job.status == Classification.Status.DONE and job.model_version == general
    assert (
        job.top_label in [general.class_names[i] for i in CATS] and len(job.probabilities) == 1000
    )
    page = alice_client.get("/history/", {"label": job.top_label})
    assert str(job.pk) in page.content.decode()
    assert "Show the 1000 class names" in alice_client.get("/").content.decode()


def test_classify_takes_either_model_by_name_or_id(both_models, tmp_path, capsys):
    shipped, general = both_models
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(chelsea_jpeg())
    cats = [general.class_names[i] for i in CATS]
    for reference, expected in ((general.name, cats), (str(shipped.pk), ["cat"])):
        call_command("classify", str(photo), "--json", "--model-version", reference)
        assert json.loads(capsys.readouterr().out)["top_label"] in expected
    with pytest.raises(CommandError, match="no model version 'resnet'"):
        call_command("classify", str(photo), "--model-version", "resnet")
