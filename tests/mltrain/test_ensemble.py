"""`manage.py ensemble`: finished runs joined into one model that averages their
probabilities, reported like any run; tiny members built here, on tiny generated images."""

import json

import keras
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mltrain.keras.datasets import load_image_folder
from mltrain.keras.ensemble import build_ensemble
from tests.imagefolder import COLOURS, make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=8)


def tiny_network(side: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((side, side, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(COLOURS), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")  # both members share the name


def finished_run(path, side: int, seed: int, split_seed: int = 42):
    path.mkdir()
    tiny_network(side, seed).save(path / "model.keras")
    run = {
        "config": {"architecture": f"tiny{side}", "seed": split_seed, "validation_fraction": 0.25},
        "class_names": sorted(COLOURS),
        "input_shape": [side, side, 3],
        "train_size": 18,
        "validation_size": 6,
        "parameters": 0,
    }
    (path / "training.json").write_text(json.dumps(run))
    (path / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.5}}))
    return path


def test_the_ensemble_averages_its_members_and_is_reported(folder, tmp_path):
    small = finished_run(tmp_path / "small", 16, seed=1)
    large = finished_run(tmp_path / "large", 32, seed=2)
    output = tmp_path / "ensemble"
    call_command(
        "ensemble",
        str(small),
        str(large),
        "--weights",
        "1",
        "3",
        "--output",
        str(output),
        "--data",
        str(folder),
    )
    model = keras.saving.load_model(output / "model.keras", compile=False)
    assert model.input_shape == (None, 32, 32, 3)  # the largest member's input
    pixels = load_image_folder(folder, (32, 32)).images[:5]
    reduced = pixels.reshape(5, 16, 2, 16, 2, 3).mean(axis=(2, 4))  # 2x2 area reduction
    small_model = keras.saving.load_model(small / "model.keras", compile=False)
    large_model = keras.saving.load_model(large / "model.keras", compile=False)
    expected = 0.25 * np.asarray(small_model(reduced)) + 0.75 * np.asarray(large_model(pixels))
    np.testing.assert_allclose(np.asarray(model(pixels)), expected, atol=1e-5)

    run = json.loads((output / "training.json").read_text())
    assert [m["input"] for m in run["members"]] == [32, 16]
    assert [m["weight"] for m in run["members"]] == [0.75, 0.25]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["validation"]["images"] == 6 and "ood" in metrics and "int8" in metrics
    card = (output / "MODEL_CARD.md").read_text()
    assert "The weighted mean of the (calibrated) probabilities of 2 trained runs" in card
    assert "`tiny32` at 32 px (50.00% alone, weight 0.75)" in card


def test_a_mirrored_member_averages_the_image_and_its_mirror_image():
    member = tiny_network(16, 3)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    expected = (np.asarray(member(pixels)) + np.asarray(member(pixels[:, :, ::-1]))) / 2
    ensemble = build_ensemble([member, tiny_network(16, 4)], [1.0, 0.0], mirror=True)
    np.testing.assert_allclose(np.asarray(ensemble(pixels)), expected, atol=1e-5)


def test_members_with_a_temperature_are_averaged_calibrated():
    sharp, soft = tiny_network(16, 5), tiny_network(16, 6)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)

    def calibrated(model, temperature):
        powered = np.asarray(model(pixels), dtype=np.float64) ** (1 / temperature)
        return powered / powered.sum(axis=1, keepdims=True)

    ensemble = build_ensemble([sharp, soft], temperatures=[2.0, None])
    expected = (calibrated(sharp, 2.0) + np.asarray(soft(pixels))) / 2
    np.testing.assert_allclose(np.asarray(ensemble(pixels)), expected, atol=1e-5)


def test_runs_on_other_validation_splits_are_refused(folder, tmp_path):
    one = finished_run(tmp_path / "one", 32, seed=1)
    other = finished_run(tmp_path / "other", 32, seed=2, split_seed=7)
    with pytest.raises(CommandError, match="another validation split"):
        call_command("ensemble", str(one), str(other), "--output", str(tmp_path / "e"))


def test_inputs_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="whole multiple"):
        build_ensemble([tiny_network(32, 1), tiny_network(24, 2)])
