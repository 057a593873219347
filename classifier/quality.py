"""A model version's per-class quality: the figures its report recorded, and the misclassified
validation images it kept for each cell of the confusion matrix (misclassified.npz)."""

import base64
import io

import numpy as np
from PIL import Image

from classifier.models import models_storage


def summary(version) -> dict:
    """Rows of the per-class table and the confusion matrix, cells marked where examples exist."""
    validation = version.metrics.get("validation", {})
    names = list(version.class_names)
    per_class = validation.get("per_class", {})
    matrix = validation.get("confusion_matrix") or []
    rows = [{"name": name, **per_class.get(name, {})} for name in names]
    confusion = [
        {
            "name": names[i],
            "cells": [
                {"count": count, "true": i, "predicted": j, "correct": i == j}
                for j, count in enumerate(row)
            ],
        }
        for i, row in enumerate(matrix)
    ]
    return {
        "rows": rows,
        "confusion": confusion,
        "class_names": names,
        "accuracy": validation.get("accuracy"),
        "images": validation.get("images"),
        "has_examples": "misclassified.npz" in version.report_keys,
    }


def cell_count(version, true: int, predicted: int) -> int:
    matrix = version.metrics.get("validation", {}).get("confusion_matrix") or []
    return matrix[true][predicted] if true < len(matrix) and predicted < len(matrix[true]) else 0


def misclassified(version, true: int, predicted: int) -> list[dict]:
    """The kept examples of one cell as PNG data URIs, with the model's confidence in its mistake."""
    key = version.report_keys.get("misclassified.npz")
    if not key or true == predicted:
        return []
    with models_storage().open(key, "rb") as f:
        examples = np.load(io.BytesIO(f.read()), allow_pickle=False)
        chosen = np.flatnonzero((examples["true"] == true) & (examples["predicted"] == predicted))
        images, probabilities = examples["images"][chosen], examples["probability"][chosen]
    return [
        {"src": png_data_uri(image), "probability": float(p)}
        for image, p in zip(images, probabilities)
    ]


def png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
