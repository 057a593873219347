""" "None of the known classes": each version's threshold on the entropy of its model's own
probabilities, set so that at most 5% of the validation answers it gets right are flagged;
every trained run fits and reports it; workers score every result, and the web page, the API
and `classify --json` say when a photo shows none of the classes (the ranked labels still
there)."""

import json
import re
import shutil
from io import StringIO
from pathlib import Path

import keras
import numpy as np
from django.core.management import call_command

from classifier.models import Classification, ModelVersion, fitted_thresholds
from classifier.probabilities import entropy
from classifier.serving import inference
from classifier.tasks import classify
from mltrain.keras import ood, package_photos
from mltrain.keras.datasets import Dataset
from mltrain.keras.report import write_report
from tests import badimages
from tests.conftest import api_client_for


def confident(n: int, classes: int, rng) -> np.ndarray:
    """Answers that put most of their probability on one class."""
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), rng.integers(0, classes, n)] += rng.uniform(4, 8, n)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_the_threshold_flags_at_most_five_percent_of_right_answers_and_catches_spread_ones():
    rng = np.random.default_rng(0)
    probabilities = confident(2000, 10, rng)
    labels = probabilities.argmax(axis=1)
    labels[:200] = (labels[:200] + 1) % 10  # wrong answers do not set the threshold
    spread = rng.dirichlet(np.ones(10), 40)
    figures = ood.fit(probabilities, labels, spread)
    assert figures["method"] == "entropy" and figures["validation_right"] == 1800
    assert figures["validation_flagged"] <= 0.05
    right_scores = entropy(probabilities[200:])
    assert np.mean(right_scores > figures["threshold"]) == figures["validation_flagged"]
    assert figures["outside_photos"] == 40 and figures["outside_flagged"] > 0.9
    assert ood.fit(probabilities, np.full(2000, -1), spread)["threshold"] is None  # none right


def test_photos_of_a_models_classes_are_not_counted_as_other_things():
    cifar = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    outside = {photo.name for photo in ood.outside_photos(cifar + ["truck"])}
    assert "chelsea" not in outside and {"coffee", "rocket", "astronaut"} <= outside
    assert "coffee" not in {photo.name for photo in ood.outside_photos(["coffee", "clock"])}


def test_every_trained_run_fits_and_reports_its_threshold(tiny_run, tmp_path):
    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    rng = np.random.default_rng(0)
    validation = Dataset(
        rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 3, 60),
        ["apple", "banana", "cherry"],
    )
    write_report(run_dir, keras.saving.load_model(run_dir / "model.keras"), validation)
    figures = json.loads((run_dir / "metrics.json").read_text())["ood"]
    assert figures["outside_photos"] == len(package_photos.PHOTOS)  # none shows any of those
    assert 0 <= figures["validation_flagged"] <= 0.05 + 1 / figures["validation_right"]
    assert "None of the known classes: answers whose entropy exceeds" in (
        (run_dir / "MODEL_CARD.md").read_text()
    )


def with_threshold(version: ModelVersion, threshold: float):
    version.metrics = {**version.metrics, "ood": {"method": "entropy", "threshold": threshold}}
    version.save(update_fields=["metrics"])
    fitted_thresholds.cache_clear()
    inference.forget()


def test_a_result_over_its_versions_threshold_says_none_of_the_known_classes(
    alice, alice_client, active_model, tmp_path
):
    data = badimages.jpeg()
    job = Classification.store(data, owner=alice, filename="photo.jpg")
    classify.apply(args=[str(job.pk)])
    job.refresh_from_db()
    assert 0 < job.ood_score <= np.log(3) + 1e-6  # the entropy of three classes' answer
    api = api_client_for(alice)
    url = f"/api/v1/classifications/{job.pk}/"

    with_threshold(active_model, job.ood_score + 1)
    body = api.get(url).json()
    assert body["out_of_distribution"] is False and body["ood_score"] == job.ood_score
    assert not says_none_of_the_known_classes(alice_client, job)

    with_threshold(active_model, job.ood_score - 1e-6)
    body = api.get(url).json()
    assert body["out_of_distribution"] is True and len(body["predictions"]) == 3
    assert says_none_of_the_known_classes(alice_client, job)
    assert alice_client.get(f"/c/{job.pk}/status").json()["out_of_distribution"] is True

    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    out = StringIO()
    call_command("classify", str(path), "--json", stdout=out)
    line = json.loads(out.getvalue())
    assert line["out_of_distribution"] is True
    assert abs(line["ood_score"] - job.ood_score) < 1e-4


def says_none_of_the_known_classes(client, job) -> bool:
    """Whether the result page shows its "none of the known classes" line (not hidden)."""
    page = client.get(f"/c/{job.pk}/").content.decode()
    shown = re.search(r'id="none-known"(?! hidden)', page)
    assert "None of the known classes" in page  # always there, for the page's own updates
    return bool(shown)
