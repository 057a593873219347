"""Running a registered model: load once per process (cached by version), predict, top-k.

Only workers and commands import this module; it imports Keras lazily so that even importing
it stays cheap, and the web process never calls it.
"""

import hashlib
import threading
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier.models import ModelVersion, models_storage
from classifier.preprocessing import load_image_array

PREDICT_BATCH = 64
_loaded: dict[int, object] = {}
_lock = threading.Lock()


class ArtifactError(Exception):
    """The stored model artifact is missing, corrupted or cannot be loaded."""


def local_artifact(version: ModelVersion) -> Path:
    """A verified local copy of the version's artifact (Keras loads from a file path)."""
    path = Path(settings.MODEL_CACHE_DIR) / f"{version.pk}-{version.artifact_sha256[:16]}.keras"
    if path.exists():
        return path
    try:
        with models_storage().open(version.artifact_key, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ArtifactError(f"cannot read {version.artifact_key}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != version.artifact_sha256:
        raise ArtifactError(f"{version.artifact_key} does not match its recorded sha256")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return path


def load_model(version: ModelVersion):
    """The Keras model of `version`, loaded once per process."""
    with _lock:
        if version.pk not in _loaded:
            import keras

            try:
                _loaded[version.pk] = keras.saving.load_model(local_artifact(version), compile=False)
            except ArtifactError:
                raise
            except Exception as exc:
                raise ArtifactError(f"cannot load {version}: {exc}") from exc
        return _loaded[version.pk]


def predict(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities (float64) for a uint8 batch, in fixed-size chunks."""
    outputs = [
        np.asarray(model(images[i : i + PREDICT_BATCH], training=False), dtype=np.float64)
        for i in range(0, len(images), PREDICT_BATCH)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0))


def top_k(probabilities: np.ndarray, class_names: list[str], k: int) -> list[dict]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": class_names[i], "probability": float(probabilities[i])} for i in order]


def classify_files(version: ModelVersion, paths: list, k: int = 3):
    """Yield (path, predictions) for image files, decoded exactly as uploads are."""
    model = load_model(version)
    for start in range(0, len(paths), PREDICT_BATCH):
        chunk = paths[start : start + PREDICT_BATCH]
        images = np.stack([load_image_array(p, version.input_size) for p in chunk])
        for path, probabilities in zip(chunk, predict(model, images)):
            yield path, top_k(probabilities, version.class_names, k)
