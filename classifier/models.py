import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import models
from django.utils import timezone

# Files of a training run that the registry keeps beside the model.
REPORT_FILES = ("metrics.json", "curves.png", "confusion_matrix.png", "MODEL_CARD.md", "training.json")


def models_storage():
    return storages["models"]


class ModelVersion(models.Model):
    """A trained model in the registry: its artifact in the models storage, the class names in
    output order, its input size and evaluation figures. Exactly one version is active."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    architecture = models.CharField(max_length=100, blank=True)
    artifact_key = models.CharField(max_length=300)
    artifact_sha256 = models.CharField(max_length=64)
    class_names = models.JSONField()
    input_height = models.PositiveIntegerField()
    input_width = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    report_keys = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_model_name_version")]
        indexes = [models.Index(fields=["is_active"], name="modelversion_active")]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)

    @property
    def validation_accuracy(self):
        return self.metrics.get("validation", {}).get("accuracy")

    @classmethod
    def active(cls):
        return cls.objects.filter(is_active=True).order_by("-activated_at").first()

    @classmethod
    def publish(cls, run_dir: Path, name: str, user=None, activate=False) -> "ModelVersion":
        """Copy a training run's model and report into the models storage and register it
        under the next version number of `name`."""
        run_dir = Path(run_dir)
        artifact = (run_dir / "model.keras").read_bytes()
        run = json.loads((run_dir / "training.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
        metrics.pop("history", None)  # per-epoch rows stay in the stored metrics.json
        latest = cls.objects.filter(name=name).order_by("-version").first()
        version = (latest.version if latest else 0) + 1
        prefix = f"{name}/v{version}"
        storage = models_storage()
        # Slow I/O first; the record is written only once every file is stored.
        artifact_key = storage.save(f"{prefix}/model.keras", ContentFile(artifact))
        report_keys = {
            filename: storage.save(f"{prefix}/{filename}", ContentFile((run_dir / filename).read_bytes()))
            for filename in REPORT_FILES
            if (run_dir / filename).exists()
        }
        height, width = run["input_shape"][:2]
        model_version = cls.objects.create(
            name=name,
            version=version,
            architecture=run.get("config", {}).get("architecture", ""),
            artifact_key=artifact_key,
            artifact_sha256=hashlib.sha256(artifact).hexdigest(),
            class_names=run["class_names"],
            input_height=height,
            input_width=width,
            metrics=metrics,
            report_keys=report_keys,
            created_by=user,
        )
        if activate:
            model_version.activate(user)
        return model_version

    def activate(self, user=None):
        """Make this the one active version. No transactions on MongoDB: deactivate the others
        with one conditional update, then mark this one."""
        ModelVersion.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
        self.is_active, self.activated_at, self.activated_by = True, timezone.now(), user
        self.save(update_fields=["is_active", "activated_at", "activated_by"])
