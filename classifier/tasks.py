"""Celery tasks: classify an image (with the jobs announced since the last batch), and sweep
jobs that got stuck.

Tasks take ids, are safe to run twice (a job is claimed by a conditional update and its
outcome written only over a running job), and do their slow I/O outside any transaction.
"""

import io
import logging
import time
from datetime import timedelta

import numpy as np
import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone
from PIL import UnidentifiedImageError
from pymongo.errors import PyMongoError

from classifier import batching, files
from classifier.models import Classification
from classifier.preprocessing import decode_image, prepare_image
from classifier.probabilities import entropy
from classifier.serving import inference
from classifier.serving.explain import explain as grad_cam
from classifier.serving.inference import ArtifactError, NoActiveModel, serving_model
from imageclass.storage import STORAGE_ERRORS

log = logging.getLogger(__name__)
Status = Classification.Status


class TransientError(Exception):
    """Storage or database trouble worth retrying."""


class BadImage(Exception):
    """The stored bytes do not decode: retrying cannot help."""


def backoff(retries: int) -> int:
    return min(2**retries, 60)


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 1)


def read_and_decode(job: Classification, input_size):
    """The job's image, its model input and the timings of getting them."""
    started = time.perf_counter()
    try:
        data = files.read_image(job)
    except FileNotFoundError:
        raise
    except STORAGE_ERRORS as exc:
        raise TransientError(f"storage: {exc}") from exc
    read = time.perf_counter()
    try:
        image = decode_image(io.BytesIO(data))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(str(exc)) from exc
    pixels = prepare_image(image, input_size)
    timings = {
        "queue_ms": milliseconds((job.started_at - job.created_at).total_seconds()),
        "read_ms": milliseconds(read - started),
        "preprocess_ms": milliseconds(time.perf_counter() - read),
    }
    return image, pixels, timings


def run_inference(jobs: list[Classification]) -> dict:
    """Classify `jobs` with one call of the model. Returns {job pk: exception} for the jobs
    that did not finish; a model that cannot be loaded raises for all of them."""
    started = time.perf_counter()
    version, model = inference.serving_model()
    model_ms = milliseconds(time.perf_counter() - started)
    errors, ready = {}, []
    for job in jobs:
        try:
            ready.append((job, *read_and_decode(job, version.input_size)))
        except (BadImage, FileNotFoundError, TransientError) as exc:
            errors[job.pk] = exc
    if not ready:
        return errors
    predicting = time.perf_counter()
    answers = model(np.stack([pixels for _, _, pixels, _ in ready]))
    probabilities, ood_scores = version.calibrated(answers), entropy(answers)
    predict_ms = milliseconds(time.perf_counter() - predicting)
    endings = []
    for (job, image, _, timings), job_probabilities, ood_score in zip(
        ready, probabilities, ood_scores
    ):
        timings.update(model_ms=model_ms, predict_ms=predict_ms, batch=len(ready))
        timings["total_ms"] = round(
            sum(timings[k] for k in ("read_ms", "preprocess_ms", "model_ms", "predict_ms")), 1
        )
        try:
            thumbnail_key = job.thumbnail_key or files.store_thumbnail(job, image)
        except STORAGE_ERRORS as exc:
            errors[job.pk] = TransientError(f"storage: {exc}")
            continue
        predictions = inference.top_k(job_probabilities, version.class_names, settings.TOP_K)
        endings.append(
            job.finishing(
                version, job_probabilities, predictions, timings, thumbnail_key, ood_score
            )
        )
    for (job, fields), ended in zip(endings, Classification.end_many(endings)):
        if not ended and fields["thumbnail_key"] != job.image_key:
            storages["default"].delete(
                fields["thumbnail_key"]
            )  # the job was ended elsewhere meanwhile
    return errors


def end_with_error(job: Classification, exc: Exception) -> bool:
    """Fail the job for an error that retrying cannot fix (True); False for one worth retrying."""
    if isinstance(exc, BadImage):
        job.fail(f"The image could not be read: {exc}")
    elif isinstance(exc, FileNotFoundError):
        job.fail("The stored image is missing.")
    else:
        return False
    return True


def announced_companions(limit: int, own_pk: str, worker: str) -> list[Classification]:
    """Up to `limit` announced jobs besides the message's own, claimed to run with it
    (`classifier.batching`). The next announced job, when more wait, gets its message here."""
    try:
        pks, next_pk = batching.take(limit, own_pk)
    except redis.RedisError as exc:  # the announced jobs wait for the next message, or the sweep
        log.warning("announced jobs not taken: %s", exc)
        return []
    if next_pk:
        try:
            classify.delay(next_pk)
        except Exception as exc:  # kombu raises many kinds when the broker is away
            log.warning("classification %s left queued for the stuck-job sweep: %s", next_pk, exc)
    try:
        return Classification.claim_announced(pks, worker) if pks else []
    except PyMongoError as exc:
        log.warning(
            "announced jobs %s left queued for the stuck-job sweep: %s", ", ".join(pks), exc
        )
        return []


def requeue_now(job: Classification):
    """Give a job taken into another's batch back to the queue, with a message of its own
    (its batch's message carried it, and is done with)."""
    if job.release():
        classify.apply_async(args=[str(job.pk)], countdown=1)


@worker_ready.connect
def recover_after_restart(sender, **kwargs):
    """As an inference worker starts, put back to work at once what an earlier process of it
    held when it died (its running jobs, and through the rebuilt list every queued job whose
    message it held): otherwise they wait for the stuck-job sweep, minutes later, and its
    unacknowledged messages for the broker's visibility timeout."""
    if settings.CELERY_TASK_DEFAULT_QUEUE not in {
        queue.name for queue in sender.task_consumer.queues
    }:
        return
    released = [job.pk for job in Classification.abandoned(sender.hostname) if job.release()]
    first = batching.reannounce(Classification.queued_ids())
    if first:
        classify.delay(first)
    log.info(
        "worker %s started: %d abandoned jobs released, queue rebuilt from %s",
        sender.hostname,
        len(released),
        first or "nothing",
    )


@worker_process_init.connect
def preload_model(**kwargs):
    """Load the active model in each worker process right after fork, so the first job does
    not wait for it (TensorFlow state must not be shared across a fork)."""
    if not settings.PRELOAD_MODEL:
        return
    try:
        version, _ = serving_model()
        log.info("worker process ready with %s", version)
    except Exception as exc:  # a worker without a model still starts; its jobs fail saying why
        log.warning("no model preloaded: %s", exc)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CLASSIFY_SOFT_TIME_LIMIT,
    time_limit=settings.CLASSIFY_TIME_LIMIT,
)
def classify(self, classification_id: str):
    """Classify this message's job, if it still waits (or its worker died), together with
    the jobs announced since the last batch took its own."""
    try:
        job = claimed_job(classification_id, self.request.hostname or "")
    except PyMongoError as exc:
        raise self.retry(
            exc=exc,
            countdown=backoff(self.request.retries),
            max_retries=settings.CLASSIFY_MAX_RETRIES,
        ) from exc
    companions = announced_companions(
        settings.CLASSIFY_BATCH_SIZE - (1 if job else 0),
        classification_id,
        self.request.hostname or "",
    )
    jobs = ([job] if job else []) + companions
    if not jobs:
        return
    try:
        errors = run_inference(jobs)
    except NoActiveModel as exc:
        for each in jobs:
            each.fail(str(exc))
        return
    except ArtifactError:
        for each in jobs:
            each.fail("No model could be loaded to classify this image.")
        return
    except SoftTimeLimitExceeded:
        for each in jobs:
            each.fail("Classification took too long.")
        return
    except (PyMongoError, OSError) as exc:
        errors = {each.pk: exc for each in jobs}
    for companion in companions:
        if companion.pk in errors and not end_with_error(companion, errors[companion.pk]):
            requeue_now(companion)
    exc = errors.get(job.pk) if job else None
    if exc is None or end_with_error(job, exc):
        return
    if self.request.retries >= settings.CLASSIFY_MAX_RETRIES:
        job.fail(f"Classification failed after {self.request.retries + 1} tries: {exc}")
        return
    log.warning("classification %s: transient error, retrying: %s", job.pk, exc)
    # Back to queued, so the retry can claim it again.
    job.release()
    raise self.retry(
        exc=exc, countdown=backoff(self.request.retries), max_retries=settings.CLASSIFY_MAX_RETRIES
    )


def claimed_job(classification_id: str, worker: str = "") -> Classification | None:
    """The message's job, claimed for this worker; None when it has ended, another worker
    runs it (or ran it in a batch), or it was attempted too often (then failed here)."""
    try:
        job = Classification.by_pk(classification_id)
    except Classification.DoesNotExist:
        return None
    # A job still "running" after the hard time limit lost its worker: take it over.
    stale_before = timezone.now() - timedelta(seconds=settings.CLASSIFY_TIME_LIMIT)
    if job.is_finished or not job.claim(stale_before=stale_before, worker=worker):
        return None
    if job.attempts > settings.CLASSIFY_MAX_ATTEMPTS:
        job.fail(
            "Classification was attempted too many times without finishing; this image cannot be processed."
        )
        return None
    return job


@shared_task(
    acks_late=True,
    soft_time_limit=settings.CLASSIFY_SOFT_TIME_LIMIT,
    time_limit=settings.CLASSIFY_TIME_LIMIT,
)
def explain(classification_id: str):
    """Make and store the Grad-CAM overlay of a finished result's top class, with the model
    version that produced it. Safe to run twice: the first stored overlay is kept."""
    job = Classification.objects.filter(pk=classification_id).first()
    if job is None or job.heatmap_key or job.status != Status.DONE:
        return
    version = job.model_version
    if version is None or job.top_label not in version.class_names:
        job.transition(
            {"heatmap_key": ""},
            heatmap_error="The model version that produced this result is no longer registered.",
        )
        return
    try:
        image = decode_image(io.BytesIO(files.read_image(job)))
        overlay = grad_cam(version, image, prepare_image(image, version.input_size), job.top_label)
    except (FileNotFoundError, ArtifactError, ValueError) as exc:
        job.transition({"heatmap_key": ""}, heatmap_error=f"No heatmap can be made: {exc}"[:500])
        return
    files.store_heatmap(job, overlay)


@shared_task(ignore_result=True)
def sweep_stuck_jobs():
    """Re-queue jobs stuck in queued or running past their time limit (a lost message, a dead
    worker), at most SWEEP_MAX_REQUEUES times each; after that, fail them with a reason."""
    stuck = Classification.stuck(timedelta(seconds=settings.CLASSIFY_TIME_LIMIT))
    for job in stuck:
        if job.requeue():
            classify.delay(str(job.pk))
    return len(stuck)


@shared_task(ignore_result=True)
def purge_old_trash():
    """Purge results deleted more than TRASH_DAYS ago, records and files. Safe to run twice."""
    return Classification.purge_trash_older_than(
        timezone.now() - timedelta(days=settings.TRASH_DAYS)
    )
