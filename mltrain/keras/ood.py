"""The "none of these classes" verdict. A network that knows ten classes answers every photo
with one of them; a photo of none of them tends to spread its probability over several. The
score of an answer is the entropy of the model's own probabilities
(`classifier.probabilities.entropy`), and a version's threshold is set on its validation
images: at most FALSE_ALARMS of the answers the model gets right score above it. How many
photos of other things it catches is measured on the real photos installed packages ship
(`package_photos`), leaving out those that show one of the model's classes."""

import re

import numpy as np

from classifier.probabilities import entropy
from mltrain.keras import package_photos

METHOD = "entropy"
FALSE_ALARMS = 0.05


def outside_photos(class_names: list[str]) -> list[package_photos.Photo]:
    """The package photos that show none of `class_names` (by name, as whole words)."""
    names = [re.compile(rf"\b{re.escape(name.lower())}s?\b") for name in class_names]
    return [
        photo
        for photo in package_photos.PHOTOS
        if not any(name.search(photo.shows.lower()) for name in names)
    ]


def fit(probabilities: np.ndarray, labels: np.ndarray, outside: np.ndarray) -> dict:
    """The threshold over which an answer is "none of the known classes", from the model's
    probabilities on its validation images (`labels`) and on photos of other things
    (`outside`), with the share of each that it flags."""
    right = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    scores = entropy(np.asarray(probabilities)[right])
    if not len(scores):
        return {"method": METHOD, "threshold": None}  # no right answer to set it on
    threshold = float(np.quantile(scores, 1 - FALSE_ALARMS, method="higher"))
    outside_scores = entropy(outside) if len(outside) else np.zeros(0)
    return {
        "method": METHOD,
        "threshold": threshold,
        "validation_right": int(right.sum()),
        "validation_flagged": float(np.mean(scores > threshold)),
        "outside_photos": len(outside_scores),
        "outside_flagged": float(np.mean(outside_scores > threshold)) if len(outside) else None,
    }
