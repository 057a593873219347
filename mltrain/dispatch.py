"""Queueing training jobs on the training queue: a new run from an uploaded zip, and a failed
run again (its run folder resumes from the last finished phase)."""

from django.core.files.base import File
from django.core.files.storage import storages

from imageclass.dispatch import enqueue_or_undo, send
from mltrain.models import TrainingJob

TRAIN = "mltrain.tasks.train_model"


def start_training(upload, summary, **fields) -> TrainingJob:
    """Store a checked zip, record the job (`fields`: name, config, activate_when_done,
    created_by) and queue it; QueueUnavailable, with nothing kept, when the broker is away."""
    storage = storages["models"]
    upload.seek(0)
    key = storage.save(TrainingJob.new_dataset_key(), File(upload))
    job = TrainingJob.record(key, summary, upload_name=upload.name or "", **fields)

    def forget():
        job.delete()
        storage.delete(key)

    with enqueue_or_undo("training", forget):
        send(TRAIN, job.pk)
    return job


def retry_training(job: TrainingJob) -> bool:
    """Queue a failed job again: False when it is no longer failed."""
    error = job.error
    if not job.requeue():
        return False
    with enqueue_or_undo("training", lambda: job.unqueue(error)):
        send(TRAIN, job.pk)
    return True
