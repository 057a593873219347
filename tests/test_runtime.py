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


@pytest.fixture
def calibration(tmp_path):
    path = tmp_path / "calibration.npz"
    np.savez_compressed(path, images=images(40, seed=3), labels=np.arange(40, dtype=np.int32) % 3)
    return path


@pytest.fixture
def fresh_artifact(tmp_path):
    return make_run_dir(tmp_path / "run") / "model.keras"


def test_quantization_verdict_holds_int8_to_both_limits():
    expected = np.eye(3)[[0, 1, 2, 0] * 50]
    labels = np.array([0, 1, 2, 0] * 50)
    assert runtime.quantization_verdict(expected, expected, labels) == {"images": 200, "agreement": 1.0, "accuracy_drop": 0.0}
    one_wrong = expected.copy()
    one_wrong[0] = [0, 1, 0]  # 99.5% agreement, 0.5 points less accurate
    with pytest.raises(runtime.QuantizationRefused, match="loses 0.50 accuracy points"):
        runtime.quantization_verdict(expected, one_wrong, labels)
    one_better = expected.copy()
    one_better[0] = [0, 1, 0]
    assert runtime.quantization_verdict(expected, one_better, np.array([1, 1, 2, 0] + [0, 1, 2, 0] * 49))["agreement"] == 0.995


def test_int8_is_served_once_it_passes_on_the_calibration_images(fresh_artifact, calibration, monkeypatch):
    monkeypatch.setattr(runtime, "QUANTIZED_MIN_AGREEMENT", 0.0)  # an untrained model: its answers are near ties
    monkeypatch.setattr(runtime, "QUANTIZED_MAX_ACCURACY_DROP", 1.0)
    runner = runner_for(fresh_artifact, "litert-int8", calibration)
    quantized = fresh_artifact.with_suffix(".int8.tflite")
    assert isinstance(runner, LiteRTRunner) and runner.path == quantized
    reference = KerasRunner(keras.saving.load_model(fresh_artifact, compile=False))
    np.testing.assert_allclose(runner(images(4)), reference(images(4)), atol=0.05)
    modified = quantized.stat().st_mtime_ns
    assert runner_for(fresh_artifact, "litert-int8", calibration).path == quantized
    assert quantized.stat().st_mtime_ns == modified  # converted and checked once


def test_int8_that_answers_differently_is_refused_once_and_fp32_served(fresh_artifact, calibration, monkeypatch):
    monkeypatch.setattr(runtime, "QUANTIZED_MIN_AGREEMENT", 1.01)  # no conversion can pass
    runner = runner_for(fresh_artifact, "litert-int8", calibration)
    assert runner.path == fresh_artifact.with_suffix(".tflite")  # fp32
    refused = fresh_artifact.with_suffix(".int8.refused")
    assert "calibration images" in refused.read_text()
    assert not fresh_artifact.with_suffix(".int8.tflite").exists()
    monkeypatch.setattr(runtime, "QUANTIZED_MIN_AGREEMENT", 0.0)
    assert runner_for(fresh_artifact, "litert-int8", calibration).path == fresh_artifact.with_suffix(".tflite")  # decided once


def test_int8_without_calibration_images_serves_fp32(fresh_artifact):
    assert runner_for(fresh_artifact, "litert-int8", None).path == fresh_artifact.with_suffix(".tflite")
