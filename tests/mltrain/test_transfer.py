"""Transfer learning: backbones, the two phases, the report with its from-scratch baseline."""

import json

import keras
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mltrain.keras import transfer
from mltrain.keras.datasets import Dataset, load_image_folder
from tests.imagefolder import make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=8)


@pytest.mark.parametrize("backbone", [name for name in transfer.BACKBONES if name != "imageclass"])
def test_every_keras_backbone_builds_flat_with_raw_pixels_in(backbone):
    config = transfer.TransferConfig(backbone=backbone, weights="none", image_size=32)
    model = transfer.build_model(config, 3)
    assert model.input.dtype == "uint8" and model.input.shape[1:] == (32, 32, 3)
    assert not any(
        isinstance(layer, keras.Model) for layer in model.layers
    )  # Grad-CAM reaches inside
    assert model.get_layer(transfer.BACKBONES[backbone].fine_tune_from)
    assert model.output.shape[1:] == (3,)


def test_caffe_weights_take_rgb_by_reversing_the_first_kernel():
    """After take_rgb, RGB pixels through the model give what the original kernel gives on
    caffe-preprocessed input (BGR, minus ImageNet's BGR mean)."""
    model = transfer.build_model(
        transfer.TransferConfig(backbone="vgg16", weights="none", image_size=32), 2
    )
    first = model.get_layer("block1_conv1")
    original = keras.layers.Conv2D.from_config(first.get_config())
    original.build((None, 32, 32, 3))
    original.set_weights(first.get_weights())
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    caffe = pixels[..., ::-1].astype("float32") - np.array(
        transfer.IMAGENET_MEAN_RGB[::-1], "float32"
    )
    transfer.take_rgb(model)
    actual = keras.Model(model.input, first.output)(pixels)
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(original(caffe)), rtol=1e-4, atol=1e-3
    )


def test_phases_freeze_the_backbone_then_open_its_top_blocks_but_not_batchnorm(tiny_run):
    config = transfer.TransferConfig(backbone="imageclass", weights=str(tiny_run / "model.keras"))
    model = transfer.build_model(config, 2)
    transfer.freeze_backbone(model)
    assert {layer.name for layer in model.layers if layer.trainable and layer.weights} == {
        "probabilities"
    }
    transfer.unfreeze_top(model, "group3_conv1")
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert "group3_conv1" in trainable and "group2_conv1" not in trainable
    assert not any(
        isinstance(model.get_layer(name), keras.layers.BatchNormalization) for name in trainable
    )
    with pytest.raises(ValueError, match="no layer"):
        transfer.unfreeze_top(model, "nonexistent")


def test_class_weights_balance_uneven_folders():
    weights = transfer.class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


def test_only_classes_relabels_in_the_order_given():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    dataset = Dataset(images, np.array([0, 1, 2, 1]), ["a", "b", "c"])
    subset = dataset.only_classes(["c", "b"])
    assert subset.class_names == ["c", "b"] and subset.labels.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="unknown: z"):
        dataset.only_classes(["a", "z"])


def test_train_transfer_writes_model_report_and_baseline(folder, tmp_path, tiny_run):
    output = tmp_path / "run"
    call_command(
        "train_transfer",
        "--data",
        str(folder),
        "--backbone",
        "imageclass",
        "--weights",
        str(tiny_run / "model.keras"),
        "--head-epochs",
        "1",
        "--fine-tune-epochs",
        "1",
        "--batch-size",
        "8",
        "--validation-fraction",
        "0.25",
        "--compare-scratch",
        "--output",
        str(output),
    )
    for name in (
        "model.keras",
        "metrics.json",
        "curves.png",
        "confusion_matrix.png",
        "misclassified.npz",
        "MODEL_CARD.md",
    ):
        assert (output / name).stat().st_size > 0, name
    run = json.loads((output / "training.json").read_text())
    assert run["config"]["architecture"] == "transfer:imageclass"
    assert run["class_names"] == ["blue", "green", "red"]
    card = (output / "MODEL_CARD.md").read_text()
    assert "Transfer learning from `imageclass`" in card
    assert "| the same network from scratch |" in card
    model = keras.saving.load_model(output / "model.keras", compile=False)
    assert all(w.dtype == "float32" for w in model.weights)
    dataset = load_image_folder(folder, (32, 32))
    np.testing.assert_allclose(np.asarray(model(dataset.images[:4])).sum(axis=1), 1, atol=1e-5)


def test_an_interrupted_transfer_run_skips_the_finished_head_phase(folder, tmp_path, tiny_run):
    dataset = load_image_folder(folder, (32, 32))
    config = transfer.TransferConfig(
        backbone="imageclass",
        weights=str(tiny_run / "model.keras"),
        head_epochs=1,
        fine_tune_epochs=1,
        batch_size=8,
    )

    def phase(model):  # the head phase trains a head model of its own, on cached features
        return (
            "fine-tune"
            if any(layer.name == "group3_conv1" and layer.trainable for layer in model.layers)
            else "head"
        )

    class Interrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if phase(self.model) == "fine-tune":
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transfer.train_transfer(config, dataset, dataset, tmp_path, callbacks=[Interrupt()])
    assert json.loads((tmp_path / "phases.json").read_text()) == {"head_epochs": 1}
    phases = []

    class Phases(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            phases.append(phase(self.model))

    transfer.train_transfer(config, dataset, dataset, tmp_path, callbacks=[Phases()])
    assert phases == ["fine-tune"]


def test_phase_one_trains_the_head_on_features_computed_once_per_image_and_mirror(
    folder, tmp_path, tiny_run
):
    dataset = load_image_folder(folder, (32, 32))
    config = transfer.TransferConfig(
        backbone="imageclass", weights=str(tiny_run / "model.keras"), head_epochs=3, batch_size=8
    )
    model = transfer.build_model(config, len(dataset.class_names))
    transfer.freeze_backbone(model)
    features = transfer.cached_features(model, config, dataset, dataset, tmp_path)
    mirrored = transfer.backbone_features(model, dataset.images[:, :, ::-1], 8)
    assert features["train"].shape[0] == 2 * len(dataset) and (tmp_path / "features.npz").exists()
    np.testing.assert_allclose(features["train"][len(dataset) :], mirrored, atol=1e-5)
    before = model.get_layer("probabilities").get_weights()[0].copy()
    assert transfer.fit_head_on_features(model, config, dataset, dataset, tmp_path, ()) >= 1
    kernel, bias = model.get_layer("probabilities").get_weights()
    assert not np.allclose(kernel, before)
    logits = features["validation"] @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        np.asarray(model(dataset.images, training=False)),
        expected / expected.sum(axis=1, keepdims=True),
        atol=1e-4,
    )


def test_imageclass_backbone_needs_a_model_file(tmp_path):
    with pytest.raises(CommandError, match="not a model file"):
        call_command(
            "train_transfer",
            "--data",
            str(tmp_path),
            "--backbone",
            "imageclass",
            "--weights",
            str(tmp_path / "x.keras"),
        )


def test_our_backbone_keeps_its_model_input_size(tiny_run, tmp_path):
    config = transfer.TransferConfig(backbone="imageclass", weights=str(tiny_run / "model.keras"))
    assert config.input_size() == 32  # read from the file, before any model is built
    with pytest.raises(CommandError, match="input size"):
        call_command(
            "train_transfer",
            "--data",
            str(tmp_path),
            "--backbone",
            "imageclass",
            "--image-size",
            "64",
        )


def test_transfer_from_lite0_starts_from_its_imagenet_weights_without_a_download(folder, tmp_path):
    from mltrain.keras import efficientnet_lite, torch_legacy

    output = tmp_path / "lite0"
    call_command(
        "train_transfer",
        "--data",
        str(folder),
        "--image-size",
        "32",
        "--head-epochs",
        "1",
        "--fine-tune-epochs",
        "1",
        "--batch-size",
        "8",
        "--validation-fraction",
        "0.25",
        "--output",
        str(output),
    )
    run = json.loads((output / "training.json").read_text())
    assert run["config"]["architecture"] == "transfer:efficientnet_lite0"  # the default backbone
    trained = keras.saving.load_model(output / "model.keras", compile=False)
    pixels = load_image_folder(folder, (32, 32)).images[:4]
    np.testing.assert_allclose(np.asarray(trained(pixels)).sum(axis=1), 1, atol=1e-5)
    # The stem, frozen in both phases, is still the ImageNet one.
    stem = torch_legacy.read_state_dict(efficientnet_lite.checkpoint_path("lite0"))[
        "_conv_stem.weight"
    ]
    np.testing.assert_array_equal(
        trained.get_layer("stem_conv").get_weights()[0], stem.transpose(2, 3, 1, 0)
    )
