"""Queueing the classifier's jobs: a classification (announced for the next batch, with a
message of its own when none is on its way: `classifier.batching`), a Grad-CAM overlay, and a
model version's export (run by the training worker)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from classifier import batching
from classifier.models import Classification, ModelVersion
from imageclass.dispatch import enqueue_or_undo, send

CLASSIFY = "classifier.tasks.classify"
EXPLAIN = "classifier.tasks.explain"
EXPORT = "mltrain.tasks.export_model"  # by name: classifier never imports mltrain


def submit(data: bytes, **fields) -> Classification:
    """Validate and store the image, record the job and queue it.

    Raises InvalidImage (nothing stored) or ServiceUnavailable (nothing kept)."""
    classification = Classification.store(data, **fields)
    with enqueue_or_undo("classification", classification.delete):
        if batching.announce(classification.pk):
            try:
                send(CLASSIFY, classification.pk)
            except Exception:
                batching.not_sent()
                raise
    return classification


def request_heatmap(classification: Classification) -> str:
    """READY when the overlay is stored; PENDING while a worker makes it (asked for here when
    nobody asked within HEATMAP_RETRY_AFTER seconds: a lost message is asked again);
    UNAVAILABLE for an unfinished or failed job, or when it could not be made (heatmap_error
    says why)."""
    Heatmap = Classification.Heatmap
    if classification.heatmap_key:
        return Heatmap.READY
    if classification.status != Classification.Status.DONE or classification.heatmap_error:
        return Heatmap.UNAVAILABLE
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HEATMAP_RETRY_AFTER)
    asked = classification.transition(
        {"heatmap_key": "", "heatmap_requested_at": None}, heatmap_requested_at=now
    ) or classification.transition(
        {"heatmap_key": "", "heatmap_requested_at": {"$lt": stale}}, heatmap_requested_at=now
    )
    if asked:

        def forget():  # the next request asks again
            classification.transition({"heatmap_key": ""}, heatmap_requested_at=None)

        with enqueue_or_undo("classification", forget):
            send(EXPLAIN, classification.pk)
    return Heatmap.PENDING


def request_export(version: ModelVersion, fmt: str) -> str:
    """The export's status; a missing or failed one (or one pending for longer than
    EXPORT_RETRY_AFTER: its message was lost) is queued for the training worker."""
    record = version.exports.get(fmt, {})
    if record.get("status") == "ready":
        return "ready"
    if record.get("status") == "pending":
        requested = datetime.fromisoformat(record["requested_at"])
        if (timezone.now() - requested).total_seconds() < settings.EXPORT_RETRY_AFTER:
            return "pending"
    version.set_export(fmt, {"status": "pending", "requested_at": timezone.now().isoformat()})
    with enqueue_or_undo("training", lambda: version.set_export(fmt, record)):
        send(EXPORT, version.pk, fmt)
    return "pending"
