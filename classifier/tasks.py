"""Celery tasks: classify one image, and sweep jobs that got stuck.

Tasks take ids, are safe to run twice (a job is claimed by a conditional update and its
outcome written only over a running job), and do their slow I/O outside any transaction.
"""

import io
import logging
import time
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone
from PIL import UnidentifiedImageError
from pymongo.errors import PyMongoError

from classifier.models import Classification
from imageclass.storage import STORAGE_ERRORS

log = logging.getLogger(__name__)
Status = Classification.Status


class TransientError(Exception):
    """Storage or database trouble worth retrying."""


class BadImage(Exception):
    """The stored bytes do not decode: retrying cannot help."""


def backoff(retries: int) -> int:
    return min(2 ** retries, 60)


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 1)


def run_inference(job: Classification):
    from classifier import inference
    from classifier.preprocessing import decode_image, prepare_image

    started = time.perf_counter()
    try:
        data = job.read_image()
    except FileNotFoundError:
        raise
    except STORAGE_ERRORS as exc:
        raise TransientError(f"storage: {exc}") from exc
    read = time.perf_counter()
    version, model = inference.serving_model()
    loaded = time.perf_counter()
    try:
        image = decode_image(io.BytesIO(data))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(str(exc)) from exc
    pixels = prepare_image(image, version.input_size)
    prepared = time.perf_counter()
    probabilities = inference.predict(model, pixels[None])[0]
    predicted = time.perf_counter()
    timings = {
        "queue_ms": milliseconds((job.started_at - job.created_at).total_seconds()),
        "read_ms": milliseconds(read - started),
        "model_ms": milliseconds(loaded - read),
        "preprocess_ms": milliseconds(prepared - loaded),
        "predict_ms": milliseconds(predicted - prepared),
        "total_ms": milliseconds(predicted - started),
    }
    try:
        thumbnail_key = job.thumbnail_key or job.store_thumbnail(image)
    except STORAGE_ERRORS as exc:
        raise TransientError(f"storage: {exc}") from exc
    predictions = inference.top_k(probabilities, version.class_names, settings.TOP_K)
    if not job.finish(version, probabilities, predictions, timings, thumbnail_key):
        storages["default"].delete(thumbnail_key)  # the job was ended elsewhere meanwhile


@worker_process_init.connect
def preload_model(**kwargs):
    """Load the active model in each worker process right after fork, so the first job does
    not wait for it (TensorFlow state must not be shared across a fork)."""
    from classifier.inference import serving_model

    try:
        version, _ = serving_model()
        log.info("worker process ready with %s", version)
    except Exception as exc:  # a worker without a model still starts; jobs then fail with the reason
        log.warning("no model preloaded: %s", exc)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CLASSIFY_SOFT_TIME_LIMIT,
    time_limit=settings.CLASSIFY_TIME_LIMIT,
)
def classify(self, classification_id: str):
    from classifier.inference import ArtifactError, NoActiveModel

    try:
        job = Classification.objects.filter(pk=classification_id).first()
        if job is None or job.is_finished:
            return
        # A job still "running" after the hard time limit lost its worker: take it over.
        if not job.claim(stale_before=timezone.now() - timedelta(seconds=settings.CLASSIFY_TIME_LIMIT)):
            return
    except PyMongoError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries), max_retries=settings.CLASSIFY_MAX_RETRIES)
    if job.attempts > settings.CLASSIFY_MAX_ATTEMPTS:
        job.fail("Classification was attempted too many times without finishing; this image cannot be processed.")
        return
    try:
        run_inference(job)
    except BadImage as exc:
        job.fail(f"The image could not be read: {exc}")
    except FileNotFoundError:
        job.fail("The stored image is missing.")
    except NoActiveModel as exc:
        job.fail(str(exc))
    except ArtifactError:
        job.fail("No model could be loaded to classify this image.")
    except SoftTimeLimitExceeded:
        job.fail("Classification took too long.")
    except (TransientError, PyMongoError, OSError) as exc:
        if self.request.retries >= settings.CLASSIFY_MAX_RETRIES:
            job.fail(f"Classification failed after {self.request.retries + 1} tries: {exc}")
            return
        log.warning("classification %s: transient error, retrying: %s", job.pk, exc)
        # Back to queued, so the retry can claim it again.
        Classification.objects.filter(pk=job.pk, status=Status.RUNNING).update(
            status=Status.QUEUED, queued_at=timezone.now()
        )
        raise self.retry(exc=exc, countdown=backoff(self.request.retries), max_retries=settings.CLASSIFY_MAX_RETRIES)


@shared_task(ignore_result=True)
def sweep_stuck_jobs():
    """Re-queue jobs stuck in queued or running past their time limit (a lost message, a dead
    worker), at most SWEEP_MAX_REQUEUES times each; after that, fail them with a reason."""
    now = timezone.now()
    limit = timedelta(seconds=settings.CLASSIFY_TIME_LIMIT)
    stuck = [
        *Classification.objects.filter(status=Status.QUEUED, queued_at__lt=now - 2 * limit),
        *Classification.objects.filter(status=Status.RUNNING, started_at__lt=now - limit),
    ]
    for job in stuck:
        if job.requeue():
            classify.delay(str(job.pk))
    return len(stuck)
