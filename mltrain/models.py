import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from classifier.models import ModelVersion
from imageclass.mongodb.documents import ConditionalUpdates


class TrainingJob(ConditionalUpdates, models.Model):
    """A transfer-learning run started from the admin: a zip of class folders in, a published
    model version out, with its progress recorded epoch by epoch."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    name = models.SlugField(
        max_length=100, help_text="Registry name of the trained model, e.g. pets."
    )
    dataset_key = models.CharField(max_length=300)  # the uploaded zip, in the models storage
    dataset_filename = models.CharField(max_length=255, blank=True)
    class_counts = models.JSONField(default=dict)  # class name -> images in the zip
    config = models.JSONField(default=dict)  # TransferConfig fields
    activate_when_done = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.JSONField(default=dict, blank=True)  # the last epoch: phase, epoch, metrics
    history = models.JSONField(default=list, blank=True)  # every epoch's metrics
    error = models.TextField(blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True
    )  # the last sign of life of its worker
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="trainingjob_sweep")]

    def __str__(self):
        return f"training {self.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @staticmethod
    def new_dataset_key() -> str:
        return f"training-data/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.zip"

    @classmethod
    def record(cls, dataset_key: str, summary, *, upload_name="", **fields) -> "TrainingJob":
        """A queued job for a stored, checked zip."""
        return cls.objects.create(
            dataset_key=dataset_key,
            dataset_filename=upload_name[:255],
            class_counts=summary.class_counts,
            **fields,
        )

    def claim(self) -> bool:
        now = timezone.now()
        return self.transition(
            {"status": self.Status.QUEUED},
            status=self.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
        )

    def beat(self):
        TrainingJob.objects.filter(pk=self.pk).update(heartbeat_at=timezone.now())

    @classmethod
    def fail_abandoned(cls) -> int:
        """Fail running jobs whose worker has shown no sign of life for TRAINING_STALE_AFTER."""
        stale = timezone.now() - timedelta(seconds=settings.TRAINING_STALE_AFTER)
        abandoned = cls.objects.filter(status=cls.Status.RUNNING, heartbeat_at__lt=stale)
        minutes = settings.TRAINING_STALE_AFTER // 60
        return sum(
            job.fail(
                f"The training worker stopped (no progress for {minutes} minutes); retry to resume."
            )
            for job in abandoned
        )

    def record_epoch(self, phase: str, epoch: int, epochs: int, metrics: dict):
        entry = {
            "phase": phase,
            "epoch": epoch,
            "epochs": epochs,
            **{k: round(float(v), 4) for k, v in metrics.items()},
        }
        TrainingJob.objects.filter(pk=self.pk).update(
            progress=entry, history=[*self.history, entry], heartbeat_at=timezone.now()
        )
        self.history.append(entry)

    def succeed(self, version: ModelVersion) -> bool:
        return self.transition(
            {"status": self.Status.RUNNING},
            status=self.Status.DONE,
            model_version=version,
            finished_at=timezone.now(),
        )

    def fail(self, reason: str) -> bool:
        return self.transition(
            {"status": self.Status.RUNNING},
            status=self.Status.FAILED,
            error=reason[:2000],
            finished_at=timezone.now(),
        )

    def requeue(self) -> bool:
        """A failed job queued again (False when it is no longer failed)."""
        return self.transition(
            {"status": self.Status.FAILED}, status=self.Status.QUEUED, error="", finished_at=None
        )

    def unqueue(self, error: str):
        """Back to failed with `error`, for a job whose message could not be sent."""
        self.transition(
            {"status": self.Status.QUEUED},
            status=self.Status.FAILED,
            error=error,
            finished_at=timezone.now(),
        )

    def progress_payload(self) -> dict:
        return {
            "status": self.status,
            "progress": self.progress,
            "history": self.history,
            "error": self.error,
            "model_version": str(self.model_version) if self.model_version_id else None,
            "finished": self.is_finished,
        }
