"""The registry of model versions and the classification jobs with their results."""

import functools
import hashlib
import json
import logging
from pathlib import Path

from bson import ObjectId
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection, models
from django.utils import timezone

from classifier import files
from classifier.jobs import JobStates
from classifier.labels import display_label, displayed
from classifier.probabilities import apply_temperature
from classifier.validation import CLASS_NAME, inspect_image
from imageclass.mongodb.documents import ConditionalUpdates, PlainDocuments

log = logging.getLogger(__name__)

# Files of a training run that the registry keeps beside the model.
REPORT_FILES = (
    "metrics.json",
    "curves.png",
    "confusion_matrix.png",
    "reliability.png",
    "misclassified.npz",
    "MODEL_CARD.md",
    "training.json",
)
# The "uncertain" threshold of versions published before their reports fitted one.
DEFAULT_UNCERTAIN_BELOW = 0.5


def models_storage():
    return storages["models"]


@functools.lru_cache(maxsize=256)
def fitted_thresholds(pk) -> tuple[float, float | None]:
    """A version's thresholds by id: (uncertain below, "none of the known classes" above, or
    None for a version without that verdict), remembered (a published version's figures never
    change): history pages flag many results of a few versions."""
    version = ModelVersion.objects.filter(pk=pk).only("metrics").first() if pk else None
    metrics = version.metrics if version else {}
    return (
        (metrics.get("calibration") or {}).get("uncertain_below", DEFAULT_UNCERTAIN_BELOW),
        (metrics.get("ood") or {}).get("threshold"),
    )


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
    # Set by a worker that could not load the artifact (and fell back to an older version).
    load_error = models.TextField(blank=True)
    # Derived portable copies, by format ("tflite", "onnx"): {"status": "pending" | "ready" |
    # "failed", and when ready its key, sha256 and agreement with the Keras model}.
    exports = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_model_name_version")
        ]
        indexes = [models.Index(fields=["is_active"], name="modelversion_active")]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)

    @property
    def validation_accuracy(self):
        return self.metrics.get("validation", {}).get("accuracy")

    @property
    def validation_images(self) -> int | None:
        return self.metrics.get("validation", {}).get("images")

    @property
    def accuracy_text(self) -> str:
        """The accuracy with what it was measured on: 100% of 6 images says little."""
        if self.validation_accuracy is None:
            return ""
        images = self.validation_images
        measured = (
            f" on {images:,} held-out validation image{'s' if images != 1 else ''}"
            if images
            else ""
        )
        return f"{self.validation_accuracy:.2%} accuracy{measured}"

    @property
    def calibration(self) -> dict:
        """The temperature and uncertainty threshold fitted on validation, with their figures
        (empty for versions published before reports fitted them)."""
        return self.metrics.get("calibration") or {}

    def calibrated(self, probabilities):
        """The model's probabilities as served: scaled by the version's temperature."""
        return apply_temperature(probabilities, self.calibration.get("temperature", 1.0))

    @property
    def uncertain_below(self) -> float:
        return self.uncertain_below_of(self.pk)

    @staticmethod
    def uncertain_below_of(pk) -> float:
        """Answers of version `pk` below this top probability are flagged uncertain:
        UNCERTAIN_BELOW when set, else the version's own threshold from validation."""
        if settings.UNCERTAIN_BELOW is not None:
            return settings.UNCERTAIN_BELOW
        return fitted_thresholds(pk)[0]

    @property
    def out_of_distribution(self) -> dict:
        """The "none of the known classes" threshold fitted on validation and photos of other
        things, with its figures (empty for versions published before reports fitted it)."""
        return self.metrics.get("ood") or {}

    @classmethod
    def active(cls):
        pk = cls.active_pk()
        return cls.objects.filter(pk=pk).first() if pk else None

    @classmethod
    def active_pk(cls):
        """The active version's id (the latest activated while an activation is under way), read
        alone: the ORM's query costs several times the read, and workers ask for every batch."""
        active = connection.database[cls._meta.db_table].find_one(
            {"is_active": True}, {"_id": 1}, sort=[("activated_at", -1)]
        )
        return active and active["_id"]

    @classmethod
    def find(cls, reference: str):
        """The version with id `reference`, else the latest version named `reference`."""
        if ObjectId.is_valid(reference):
            by_id = cls.objects.filter(pk=reference).first()
            if by_id:
                return by_id
        return cls.objects.filter(name=reference).order_by("-version").first()

    @classmethod
    def publish(cls, run_dir: Path, name: str, user=None, activate=False) -> "ModelVersion":
        """Copy a training run's model and report into the models storage and register it
        under the next version number of `name`."""
        run_dir = Path(run_dir)
        artifact = (run_dir / "model.keras").read_bytes()
        run = json.loads((run_dir / "training.json").read_text())
        metrics = cls.run_metrics(run_dir)
        latest = cls.objects.filter(name=name).order_by("-version").first()
        version = (latest.version if latest else 0) + 1
        prefix = f"{name}/v{version}"
        storage = models_storage()
        # Slow I/O first; the record is written only once every file is stored.
        artifact_key = storage.save(f"{prefix}/model.keras", ContentFile(artifact))
        report_keys = {
            filename: storage.save(
                f"{prefix}/{filename}", ContentFile((run_dir / filename).read_bytes())
            )
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

    def set_export(self, fmt: str, record: dict):
        """Record one format's export with a single-key $set, so formats never overwrite each other."""
        connection.database[self._meta.db_table].update_one(
            {"_id": self.pk}, {"$set": {f"exports.{fmt}": record}}
        )
        self.exports = {**self.exports, fmt: record}

    @staticmethod
    def run_metrics(run_dir: Path) -> dict:
        """A run's metrics.json as the registry keeps it (the per-epoch rows stay in the file)."""
        metrics_file = Path(run_dir) / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        metrics.pop("history", None)
        return metrics

    def record_load_error(self, error: str):
        """Record (or with "" clear) why this process could not load the artifact."""
        self.load_error = error[:1000]
        ModelVersion.objects.filter(pk=self.pk).update(load_error=self.load_error)

    def activate(self, user=None):
        """Make this the one active version. No transactions on MongoDB: mark this one, then
        unmark all but the most recently activated. In between two are marked and `active()`
        already answers with this one, so no job ever finds no model; two activations that
        cross both end with the later one alone."""
        self.is_active, self.activated_at, self.activated_by = True, timezone.now(), user
        self.save(update_fields=["is_active", "activated_at", "activated_by"])
        latest = ModelVersion.active()
        ModelVersion.objects.filter(is_active=True).exclude(pk=latest.pk).update(is_active=False)


class Classification(JobStates, PlainDocuments, ConditionalUpdates, models.Model):
    """One image sent for classification and, once a worker has run, its result."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    # No index of their own on the two foreign keys: the owner's is the leading field of every
    # history index below, and results are looked up by model version only when an admin
    # deletes one. Each index is upkeep on every write (bench/LOG.md measures it).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, db_index=False
    )
    # An anonymous visitor's result is tied to their session and never listed anywhere.
    session_key = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    image_key = models.CharField(max_length=300)
    thumbnail_key = models.CharField(max_length=300, blank=True)  # written by the worker
    # Grad-CAM overlay of the top class, made by a worker on the first request for it.
    heatmap_key = models.CharField(max_length=300, blank=True)
    heatmap_requested_at = models.DateTimeField(null=True, blank=True)
    heatmap_error = models.CharField(max_length=500, blank=True)
    # The owner's feedback: the right label when the model got it wrong.
    corrected_label = models.CharField(max_length=100, blank=True)
    corrected_at = models.DateTimeField(null=True, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    source_url = models.URLField(max_length=2000, blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    # Copied from the version at prediction time: old results keep their labels.
    model_name = models.CharField(max_length=120, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    probabilities = models.JSONField(default=list, blank=True)
    predictions = models.JSONField(default=list, blank=True)
    top_label = models.CharField(max_length=100, blank=True)
    top_probability = models.FloatField(null=True, blank=True)
    # The entropy of the model's own probabilities: over its version's threshold, the photo is
    # taken to show none of the known classes (mltrain.keras.ood).
    ood_score = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)  # deliveries that started running
    claim_token = models.CharField(
        max_length=32, blank=True
    )  # the last claim's: a batch's claim reads which it won
    requeues = models.PositiveSmallIntegerField(default=0)  # times the sweep sent it again
    timings = models.JSONField(default=dict, blank=True)
    # A deleted result waits in its owner's trash with its owner moved here: every history
    # read goes by owner, so history, search, exports, shares and the API lists leave it out
    # with no condition added to their indexed queries.
    trashed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="trashed_results",
        db_index=False,
    )
    trashed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Pages sort on (created_at, id) for stable keyset cursors: with the id in the index
            # MongoDB walks it in order and stops at the page size, with no in-memory sort.
            models.Index(
                fields=["owner", "-created_at", "-id"], name="classification_history_keyset"
            ),
            models.Index(
                fields=["owner", "top_label", "-created_at", "-id"],
                name="classification_label_keyset",
            ),
            models.Index(
                fields=["owner", "status", "-created_at", "-id"],
                name="classification_status_keyset",
            ),
            # Serves both of the stuck-job sweep's queries (claims go by the announced ids).
            models.Index(fields=["status", "queued_at"], name="classification_sweep_queued"),
            models.Index(fields=["trashed_by", "-trashed_at"], name="classification_trash"),
            models.Index(fields=["trashed_at"], name="classification_trash_age"),
        ]

    def __str__(self):
        return f"{self.original_filename or self.source_url or self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def is_uncertain(self) -> bool:
        if self.top_probability is None:
            return False
        return self.top_probability < ModelVersion.uncertain_below_of(self.model_version_id)

    @property
    def is_out_of_distribution(self) -> bool:
        """The answer is "none of the known classes": its score is over its version's threshold."""
        threshold = fitted_thresholds(self.model_version_id)[1]
        return None not in (self.ood_score, threshold) and self.ood_score > threshold

    @classmethod
    def store(
        cls, data: bytes, *, owner=None, session_key="", filename="", source_url=""
    ) -> "Classification":
        """Validate the bytes (InvalidImage: nothing stored), store them under a new key and
        record a queued job. Raises StorageUnavailable when the image cannot be stored."""
        info = inspect_image(data)
        key = files.save_image(data, owner, info.extension)
        try:
            return cls.insert(
                owner=owner,
                session_key="" if owner else session_key,
                image_key=key,
                original_filename=Path(filename.replace("\\", "/")).name[:255] if filename else "",
                source_url=source_url,
                sha256=info.sha256,
                size=info.size,
                format=info.format,
                width=info.width,
                height=info.height,
            )
        except Exception:
            storages["default"].delete(key)
            raise

    def correct(self, label: str):
        """Record the right label for a finished result (None clears it). Raises ValueError
        saying why a label is refused."""
        if label is None:
            self.corrected_label, self.corrected_at = "", None
        else:
            label = " ".join(label.split())
            if self.status != self.Status.DONE:
                raise ValueError("Only a finished classification can be corrected.")
            if not CLASS_NAME.match(label):
                raise ValueError(
                    "A label is 1 to 100 letters, digits, spaces and . _ + - (it becomes a folder name)."
                )
            if label == self.top_label:
                raise ValueError(f"The model already said {label}.")
            self.corrected_label, self.corrected_at = label, timezone.now()
        Classification.objects.filter(pk=self.pk).update(
            corrected_label=self.corrected_label, corrected_at=self.corrected_at
        )

    @property
    def duration_ms(self):
        return self.timings.get("total_ms")

    def all_predictions(self) -> list[dict]:
        ranked = sorted(zip(self.class_names, self.probabilities), key=lambda pair: -pair[1])
        return [{"label": label, "probability": probability} for label, probability in ranked]

    def status_payload(self) -> dict:
        """What the result page polls for, its labels as pages show them."""
        return {
            "id": str(self.pk),
            "status": self.status,
            "finished": self.is_finished,
            "error": self.error,
            "top_label": display_label(self.top_label),
            "top_probability": self.top_probability,
            "uncertain": self.is_uncertain,
            "out_of_distribution": self.is_out_of_distribution,
            "ood_score": self.ood_score,
            "predictions": displayed(self.predictions),
            "all_predictions": displayed(self.all_predictions())
            if self.status == self.Status.DONE
            else [],
            "model_version": self.model_name,
            "duration_ms": self.duration_ms,
        }

    class Heatmap(models.TextChoices):
        READY = "ready"
        PENDING = "pending"
        UNAVAILABLE = "unavailable"

    def move_to_trash(self, user) -> bool:
        """Move the owner's result to their trash (files kept); False if it is not theirs or
        no longer where it was."""
        return self.transition(
            {"owner_id": user.pk},
            owner=None,
            trashed_by=user,
            trashed_at=timezone.now(),
            session_key="",
        )

    def restore(self, user) -> bool:
        """Back from `user`'s trash into their history, where it was."""
        return self.transition(
            {"trashed_by_id": user.pk}, owner=user, trashed_by=None, trashed_at=None
        )

    @classmethod
    def trash_of(cls, user) -> list["Classification"]:
        """The user's trash, most recently deleted first."""
        found = connection.database[cls._meta.db_table].find(
            {"trashed_by_id": user.pk}, sort=[("trashed_at", -1)]
        )
        return [cls.from_document(document) for document in found]

    @classmethod
    def in_trash(cls, user, pk) -> "Classification":
        """One result of the user's trash, or DoesNotExist."""
        found = cls.by_pk(pk)
        if found.trashed_by_id != user.pk:
            raise cls.DoesNotExist(f"No result {pk} in the trash of {user}.")
        return found

    @classmethod
    def purge(cls, documents) -> int:
        """Delete these trashed results for good, record then files; returns how many."""
        purged = 0
        for document in documents:
            cls.from_document(document).delete()
            purged += 1
        return purged

    @classmethod
    def empty_trash(cls, user) -> int:
        table = connection.database[cls._meta.db_table]
        return cls.purge(table.find({"trashed_by_id": user.pk}))

    @classmethod
    def purge_trash_older_than(cls, moment) -> int:
        table = connection.database[cls._meta.db_table]
        return cls.purge(table.find({"trashed_at": {"$lt": moment}}))

    def delete(self, *args, **kwargs):
        """Delete the record, then its files (an orphaned file is harmless; a record whose
        image is gone is not)."""
        keys, pk = files.stored_keys(self), self.pk
        result = super().delete(*args, **kwargs)
        files.delete_files(keys, pk)
        return result


class Correction(Classification):
    """A result its owner corrected: the admin lists these and exports them as a dataset."""

    class Meta:
        proxy = True
