"""The workers' runtimes: LiteRT converted from the Keras artifact agrees with Keras, is
converted once and cached, and a file LiteRT cannot use falls back to Keras."""

import keras
import numpy as np
import pytest

from classifier import runtime
from classifier.runtime import KerasRunner, LiteRTRunner, bucket_size, runner_for
from tests.tinymodel import make_run_dir


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run")) / "model.keras"


def images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def test_batches_run_in_power_of_two_buckets():
    assert [bucket_size(n) for n in (1, 2, 3, 5, 8, 9, 64)] == [1, 2, 4, 8, 8, 16, 64]


@pytest.mark.parametrize("count", [1, 3, 8, 70])
def test_litert_agrees_with_keras(artifact, count):
    litert = runner_for(artifact, "litert")
    reference = KerasRunner(keras.saving.load_model(artifact, compile=False))
    assert isinstance(litert, LiteRTRunner)
    batch = images(count)
    expected, got = reference(batch), litert(batch)
    assert got.shape == expected.shape == (count, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_conversion_is_cached_beside_the_artifact(artifact):
    runner_for(artifact, "litert")
    converted = artifact.with_suffix(".tflite")
    written = converted.stat().st_mtime_ns
    runner_for(artifact, "litert")
    assert converted.stat().st_mtime_ns == written
    assert not list(artifact.parent.glob("*.part*"))


def test_a_cached_conversion_that_does_not_load_is_rebuilt(tmp_path):
    artifact = make_run_dir(tmp_path) / "model.keras"
    artifact.with_suffix(".tflite").write_bytes(b"not a flatbuffer")
    runner = runner_for(artifact, "litert")
    assert isinstance(runner, LiteRTRunner)
    assert runner(images(2)).shape == (2, 3)


def test_a_model_litert_cannot_convert_is_served_through_keras(tmp_path, monkeypatch, caplog):
    def unsupported(model, destination):
        raise ValueError("op not supported")

    monkeypatch.setattr(runtime, "convert_to_litert", unsupported)
    runner = runner_for(make_run_dir(tmp_path) / "model.keras", "litert")
    assert isinstance(runner, KerasRunner)
    assert runner(images(2)).shape == (2, 3)
    assert "serving through Keras: op not supported" in caplog.text


def test_the_keras_runtime_can_be_chosen(artifact):
    assert isinstance(runner_for(artifact, "keras"), KerasRunner)


def test_the_six_view_model_converts_and_agrees(tmp_path):
    import keras_tuner

    from mltrain import architectures

    hp = keras_tuner.HyperParameters()
    hp.Fixed("width", 8)
    logits = architectures.build_whitened_convnet(hp, num_classes=3)
    six_views = architectures.with_test_time_augmentation(logits, translate=True)
    six_views.save(tmp_path / "model.keras")
    batch = images(5)
    mirrored_shifts = keras.ops.softmax(
        (logits(batch) + logits(batch[:, :, ::-1])) / 4
        + sum(logits(view) + logits(view[:, :, ::-1]) for view in shifted(batch)) / 8
    )
    np.testing.assert_allclose(six_views(batch), mirrored_shifts, atol=1e-5)
    np.testing.assert_allclose(runner_for(tmp_path / "model.keras", "litert")(batch), mirrored_shifts, atol=1e-4)


def shifted(batch):
    padded = np.pad(batch, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    return padded[:, :32, :32], padded[:, 2:, 2:]
