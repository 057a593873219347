"""Running a registered model: load once per process (cached by version), predict, top-k.

Only workers and commands import this module; Keras loads with the first model, so importing
it stays cheap. Models run through the runtime that
settings.INFERENCE_RUNTIME names (see classifier.serving.runtime).
"""

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
from django.conf import settings

from classifier.models import ModelVersion, models_storage
from classifier.preprocessing import load_image_array
from classifier.probabilities import entropy
from classifier.serving.runtime import MAX_BATCH, runner_for
from imageclass.storage import STORAGE_ERRORS

RETRY_FAILED_LOAD_AFTER = 300  # seconds before this process tries a broken artifact again
log = logging.getLogger(__name__)
_loaded: dict = {}  # version pk -> runner; the serving version only
_failed: dict = {}  # version pk -> (monotonic time, reason) of the failed load
_active: dict = {}  # version pk -> the active version as last read in full
_lock = threading.Lock()


class ArtifactError(Exception):
    """The stored model artifact is missing, corrupted or cannot be loaded."""


class NoActiveModel(Exception):
    """No model version is active: nothing can be classified."""


def local_artifact(version: ModelVersion) -> Path:
    """A verified local copy of the version's artifact (Keras loads from a file path)."""
    # Named by content: versions with the same artifact share one copy (and one conversion).
    path = Path(settings.MODEL_CACHE_DIR) / f"{version.artifact_sha256}.keras"
    if path.exists():
        return path
    try:
        with models_storage().open(version.artifact_key, "rb") as f:
            data = f.read()
    except STORAGE_ERRORS as exc:
        raise ArtifactError(f"cannot read {version.artifact_key}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != version.artifact_sha256:
        raise ArtifactError(f"{version.artifact_key} does not match its recorded sha256")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return path


def load_model(version: ModelVersion):
    """A runner for `version` (images in, probabilities out), loaded once per process."""
    with _lock:
        if version.pk not in _loaded:
            failed_at, reason = _failed.get(version.pk, (None, None))
            if failed_at and time.monotonic() - failed_at < RETRY_FAILED_LOAD_AFTER:
                # The same reason again: it is what the registry records.
                raise ArtifactError(reason)
            try:
                model = runner_for(
                    local_artifact(version), settings.INFERENCE_RUNTIME, version.metrics.get("int8")
                )
            except Exception as exc:
                reason = (
                    str(exc) if isinstance(exc, ArtifactError) else f"cannot load {version}: {exc}"
                )
                _failed[version.pk] = (time.monotonic(), reason)
                raise ArtifactError(reason) from exc
            _failed.pop(version.pk, None)
            # Keep memory bounded: a newly activated version replaces the others.
            _loaded.clear()
            _loaded[version.pk] = model
        return _loaded[version.pk]


def forget():
    """Drop the loaded model, the remembered failures and the active version read, as a new
    worker process starts: a version's record changed behind this process's back."""
    with _lock:
        _loaded.clear()
        _failed.clear()
        _active.clear()


def loaded_versions() -> list:
    """The ids of the versions this process holds a model of (at most the serving one)."""
    return list(_loaded)


def active_version():
    """The active version. Every batch asks, and its document is large (metrics, confusion
    matrix): only its id is read each time, the rest when it changes."""
    pk = ModelVersion.active_pk()
    if pk not in _active:
        _active.clear()
        version = ModelVersion.objects.filter(pk=pk).first() if pk else None
        if version is None:
            return None
        _active[pk] = version
    return _active[pk]


def serving_model():
    """(version, model) to classify with: the active version, or when its artifact cannot be
    loaded the most recently active version that loads (logged, and recorded on the active
    version so /readyz shows it)."""
    active = active_version()
    if active is None:
        raise NoActiveModel("No model is active: an administrator must publish or activate one.")
    try:
        model = load_model(active)
    except ArtifactError as exc:
        log.error("active model %s cannot be loaded: %s", active, exc)
        active.record_load_error(str(exc))
        previous = ModelVersion.objects.exclude(pk=active.pk).filter(activated_at__isnull=False)
        for candidate in previous.order_by("-activated_at"):
            try:
                model = load_model(candidate)
            except ArtifactError:
                continue
            log.warning("serving with %s instead of the active %s", candidate, active)
            return candidate, model
        raise
    if active.load_error:
        active.record_load_error("")
    return active, model


def top_k(probabilities: np.ndarray, class_names: list[str], k: int) -> list[dict]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": class_names[i], "probability": float(probabilities[i])} for i in order]


def classify_files(version: ModelVersion, paths: list, k: int = 3):
    """Yield (path, predictions, out-of-distribution score) for image files, decoded exactly as
    uploads are and scored as workers score them."""
    model = load_model(version)
    for start in range(0, len(paths), MAX_BATCH):
        chunk = paths[start : start + MAX_BATCH]
        answers = model(np.stack([load_image_array(p, version.input_size) for p in chunk]))
        for path, probabilities, score in zip(chunk, version.calibrated(answers), entropy(answers)):
            yield path, top_k(probabilities, version.class_names, k), float(score)
