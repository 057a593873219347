"""The workers' runtimes: LiteRT converted from the Keras artifact agrees with Keras, is
converted once and cached, and a file LiteRT cannot use falls back to Keras."""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

from classifier.serving import runtime
from classifier.serving.runtime import KerasRunner, LiteRTRunner, bucket_size, runner_for
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

    from mltrain.keras import architectures

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
    np.testing.assert_allclose(
        runner_for(tmp_path / "model.keras", "litert")(batch), mirrored_shifts, atol=1e-4
    )


def shifted(batch):
    padded = np.pad(batch, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    return padded[:, :32, :32], padded[:, 2:, 2:]


@pytest.fixture
def fresh_artifact(tmp_path):
    return make_run_dir(tmp_path / "run") / "model.keras"


def test_quantization_verdict_holds_int8_to_both_limits():
    expected = np.eye(3)[[0, 1, 2, 0] * 50]
    labels = np.array([0, 1, 2, 0] * 50)
    same = runtime.quantization_verdict(expected, expected, labels)
    assert (same["agreement"], same["accuracy_drop"], same["passed"]) == (1.0, 0.0, True)
    one_wrong = expected.copy()
    one_wrong[0] = [0, 1, 0]  # 99.5% agreement, 0.5 points less accurate
    refused = runtime.quantization_verdict(expected, one_wrong, labels)
    assert not refused["passed"] and "loses 0.50 accuracy points" in refused["reason"]
    better = runtime.quantization_verdict(
        expected, one_wrong, np.array([1, 1, 2, 0] + [0, 1, 2, 0] * 49)
    )
    assert better["agreement"] == 0.995 and better["passed"]


def test_a_report_verdict_measures_the_exact_int8_copy_workers_serve(fresh_artifact):
    model = keras.saving.load_model(fresh_artifact, compile=False)
    verdict = runtime.int8_verdict(model, images(40, seed=3), np.arange(40) % 3)
    verdict["passed"] = (
        True  # an untrained model's answers are near ties: the limits are tested above
    )
    runner = runner_for(fresh_artifact, "litert-int8", verdict)
    quantized = fresh_artifact.with_suffix(".int8.tflite")
    assert isinstance(runner, LiteRTRunner) and runner.path == quantized
    np.testing.assert_allclose(runner(images(4)), KerasRunner(model)(images(4)), atol=0.05)
    modified = quantized.stat().st_mtime_ns
    assert runner_for(fresh_artifact, "litert-int8", verdict).path == quantized
    assert quantized.stat().st_mtime_ns == modified  # converted once


@pytest.mark.parametrize(
    "verdict",
    [None, {"passed": False, "reason": "int8 agrees on 97%"}, {"passed": True, "sha256": "0" * 64}],
)
def test_int8_without_a_passed_verdict_for_this_very_copy_serves_fp32(fresh_artifact, verdict):
    assert runner_for(fresh_artifact, "litert-int8", verdict).path == fresh_artifact.with_suffix(
        ".tflite"
    )
    assert not fresh_artifact.with_suffix(".int8.tflite").exists()


@pytest.fixture
def checked_verdict(fresh_artifact):
    verdict = runtime.int8_verdict(
        keras.saving.load_model(fresh_artifact, compile=False), images(8), np.arange(8) % 3
    )
    return {
        **verdict,
        "passed": True,
    }  # an untrained model's answers are near ties: the limits are tested above


def another_hosts_report(verdict, probe):
    """The verdict as a report written on another CPU would hold it: another sha256 (the
    conversion folds constants with the host's float kernels), the given probe answers."""
    return {**verdict, "sha256": "f" * 64, "probe": probe}


def test_an_int8_copy_that_differs_only_by_rounding_is_served(
    fresh_artifact, checked_verdict, caplog
):
    rounding = np.random.default_rng(5).normal(
        0, runtime.PROBE_TOLERANCE / 3, np.shape(checked_verdict["probe"])
    )
    verdict = another_hosts_report(
        checked_verdict, (np.asarray(checked_verdict["probe"]) + rounding).tolist()
    )
    runner = runner_for(fresh_artifact, "litert-int8", verdict)
    assert runner.path == fresh_artifact.with_suffix(".int8.tflite")
    assert "answers its probe images alike" in caplog.text


def test_an_int8_copy_that_answers_the_probe_otherwise_serves_fp32(
    fresh_artifact, checked_verdict, caplog
):
    other_answers = np.eye(3)[
        np.zeros(runtime.PROBE_IMAGES, dtype=int)
    ].tolist()  # sure of class 0 every time
    runner = runner_for(
        fresh_artifact, "litert-int8", another_hosts_report(checked_verdict, other_answers)
    )
    assert runner.path == fresh_artifact.with_suffix(".tflite")
    assert not fresh_artifact.with_suffix(".int8.tflite").exists()
    assert f"on {runtime.PROBE_IMAGES} probe images its probabilities are" in caplog.text


def test_the_probe_images_are_the_ones_reports_recorded_answers_for():
    """Every machine must make the same probe images, or no copy would answer like the checked
    one and workers would serve fp32 (a numpy that changed its random stream, say)."""
    probe = runtime.probe_images((32, 32, 3))
    assert probe.shape == (runtime.PROBE_IMAGES, 32, 32, 3) and probe.dtype == np.uint8
    assert (
        hashlib.sha256(probe.tobytes()).hexdigest()
        == "576c0f1d15a926cc2ed5f04c18cbdc7a1ebe823849e3e62b7b20cbf03b682a40"
    )


def test_the_shipped_model_is_served_in_int8_on_this_machine(tmp_path, settings):
    """Its report was written on one CPU; this machine's conversion must be recognised, byte for
    byte or by the probe answers (on another CPU the workers served fp32 until it was)."""
    artifact = tmp_path / "model.keras"
    shutil.copy(settings.SHIPPED_MODEL_DIR / "model.keras", artifact)
    verdict = json.loads((settings.SHIPPED_MODEL_DIR / "metrics.json").read_text())["int8"]
    assert runner_for(artifact, "litert-int8", verdict).path == artifact.with_suffix(".int8.tflite")
