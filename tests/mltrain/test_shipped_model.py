"""The shipped CIFAR-10 model's committed figures: its model card says what its metrics.json
holds, and its "none of these classes" figures were measured on the package photos installed
now."""

import json
import re

import pytest
from django.conf import settings

from classifier.probabilities import describe_ood
from mltrain.keras import ood


@pytest.fixture(params=settings.SHIPPED_MODEL_DIRS, ids=lambda folder: folder.name)
def shipped(request):
    folder = request.param
    return json.loads((folder / "metrics.json").read_text()), (folder / "MODEL_CARD.md").read_text()


def test_the_card_gives_the_metrics_figures(shipped):
    metrics, card = shipped
    assert f"Accuracy **{metrics['validation']['accuracy']:.2%}**" in card
    assert f"on {metrics['validation']['images']} held-out images" in card
    calibration = metrics["calibration"]
    assert f"temperature {calibration['temperature']:.3f}" in card
    assert f"{calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}" in card
    assert describe_ood(metrics["ood"]) in card
    verdict = metrics["int8"]
    assert verdict["passed"] and f"{verdict['agreement']:.2%}" in card
    per_class = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", card, re.M)
    assert {name: float(recall) for name, _, recall, _ in per_class} == pytest.approx(
        {name: m["recall"] for name, m in metrics["validation"]["per_class"].items()}, abs=5e-4
    )


def test_its_ood_figures_cover_every_package_photo_of_other_things(shipped):
    metrics, _ = shipped
    outside = ood.outside_photos(metrics["validation"]["class_names"])
    assert metrics["ood"]["outside_photos"] == len(outside) >= 25
    assert metrics["ood"]["validation_flagged"] <= 0.05 + 1e-9
