"""Temperature scaling: fitted on one half of a model's answers, it lowers the calibration
error and the negative log-likelihood on the other half; every trained run reports it; workers
and `classify` serve calibrated probabilities, and each version flags uncertain answers by its
own threshold (UNCERTAIN_BELOW overrides)."""

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.models import Classification, ModelVersion, fitted_thresholds
from classifier.probabilities import apply_temperature
from classifier.serving import inference
from mltrain.keras import calibration
from tests import badimages
from tests.conftest import make_result


def answers(n: int, sharpness: float, seed: int):
    """Probabilities of a 10-class model whose logits are `sharpness` times what calibrated
    logits would be (< 1: over-smoothed, too unsure; > 1: overconfident), and labels drawn from
    the calibrated ones."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 10))
    calibrated = np.exp(logits - logits.max(axis=1, keepdims=True))
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in calibrated])
    shown = np.exp(sharpness * (logits - logits.max(axis=1, keepdims=True)))
    return shown / shown.sum(axis=1, keepdims=True), labels


def test_an_over_smoothed_model_gets_a_temperature_that_lowers_its_error_on_held_out_answers():
    fit, fit_labels = answers(4000, sharpness=0.4, seed=0)
    held_out, labels = answers(4000, sharpness=0.4, seed=1)
    temperature = calibration.fit_temperature(fit, fit_labels)
    assert 0.36 < temperature < 0.44  # undoes the 0.4: T = 0.4
    calibrated = calibration.apply_temperature(held_out, temperature)
    assert calibration.expected_calibration_error(held_out, labels) > 0.15
    assert calibration.expected_calibration_error(calibrated, labels) < 0.02
    assert calibration.negative_log_likelihood(
        calibrated, labels
    ) < calibration.negative_log_likelihood(held_out, labels)


def test_an_overconfident_model_is_softened_and_a_calibrated_one_left_alone():
    sharp, labels = answers(4000, sharpness=2.5, seed=2)
    assert 2.3 < calibration.fit_temperature(sharp, labels) < 2.7
    calibrated, labels = answers(4000, sharpness=1.0, seed=3)
    assert 0.93 < calibration.fit_temperature(calibrated, labels) < 1.07


def test_the_uncertain_threshold_keeps_accepted_answers_right_95_percent_of_the_time():
    probabilities, labels = answers(4000, sharpness=1.0, seed=4)
    threshold = calibration.uncertain_below(probabilities, labels)
    accepted = probabilities.max(axis=1) >= threshold
    assert (probabilities.argmax(axis=1) == labels)[accepted].mean() >= 0.95
    assert 0 < threshold < 1 and accepted.mean() > 0.1
    assert (
        calibration.uncertain_below(np.full((4, 2), 0.5), np.array([0, 1, 0, 1])) == 1.0
    )  # never 95% right


def calibrate(version, temperature: float, uncertain_below: float):
    version.metrics = {
        **version.metrics,
        "calibration": {"temperature": temperature, "uncertain_below": uncertain_below},
    }
    version.save(update_fields=["metrics"])
    fitted_thresholds.cache_clear()
    inference.forget()


def run(job):
    from classifier.tasks import classify

    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    return job


def test_workers_and_classify_serve_the_versions_calibrated_probabilities(
    alice, active_model, tmp_path
):
    data = badimages.jpeg()
    raw = run(Classification.store(data, owner=alice, filename="a.jpg")).probabilities
    calibrate(active_model, 3.0, 0.99)
    served = run(Classification.store(data, owner=alice, filename="b.jpg"))
    np.testing.assert_allclose(
        served.probabilities, apply_temperature(np.array(raw), 3.0), atol=1e-5
    )
    assert (
        served.top_probability == pytest.approx(max(served.probabilities)) and served.is_uncertain
    )
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    ((_, predictions, _),) = inference.classify_files(
        ModelVersion.objects.get(pk=active_model.pk), [path], k=1
    )
    assert predictions[0]["probability"] == pytest.approx(max(served.probabilities), abs=1e-5)


def test_each_version_flags_uncertain_answers_by_its_own_threshold_unless_overridden(
    alice, active_model, settings
):
    result = make_result(alice, probability=0.7)
    Classification.objects.filter(pk=result.pk).update(model_version=active_model)
    result.refresh_from_db()
    calibrate(active_model, 1.0, 0.8)
    assert result.is_uncertain
    calibrate(active_model, 1.0, 0.6)
    assert not result.is_uncertain
    settings.UNCERTAIN_BELOW = 0.75
    assert result.is_uncertain
    settings.UNCERTAIN_BELOW = None
    make_result(alice, probability=0.45)  # no version: the default 0.5
    assert Classification.objects.filter(top_probability=0.45).get().is_uncertain


def test_every_trained_run_reports_its_calibration(tiny_run, tmp_path):
    import shutil

    import keras

    from mltrain.keras.datasets import Dataset
    from mltrain.keras.report import write_report

    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    rng = np.random.default_rng(0)
    validation = Dataset(
        rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 3, 60),
        ["a", "b", "c"],
    )
    write_report(run_dir, keras.saving.load_model(run_dir / "model.keras"), validation)
    figures = json.loads((run_dir / "metrics.json").read_text())["calibration"]
    assert figures["temperature"] > 0 and 0 < figures["uncertain_below"] <= 1
    assert figures["nll_after"] <= figures["nll_before"] + 1e-9  # fitted on these very answers
    assert (run_dir / "reliability.png").stat().st_size > 0
    assert "Calibration: temperature" in (run_dir / "MODEL_CARD.md").read_text()
