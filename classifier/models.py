import functools
import hashlib
import io
import json
import logging
import re
import uuid
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from bson import ObjectId
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection, models
from django.utils import timezone
from PIL import Image
from pymongo import UpdateOne

from accounts.models import Share
from classifier import batching, notify
from classifier.probabilities import apply_temperature
from imageclass.storage import STORAGE_ERRORS

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
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
def fitted_uncertain_below(pk) -> float:
    """A version's threshold by id, remembered (a published version's figures never change):
    history pages flag many results of a few versions."""
    version = ModelVersion.objects.filter(pk=pk).only("metrics").first() if pk else None
    return (version.calibration if version else {}).get("uncertain_below", DEFAULT_UNCERTAIN_BELOW)


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
        return fitted_uncertain_below(pk)

    @classmethod
    def active(cls):
        pk = cls.active_pk()
        return cls.objects.filter(pk=pk).first() if pk else None

    @classmethod
    def active_pk(cls):
        """The active version's id (the latest activated while an activation is under way), read
        alone: the ORM's query costs three times the read, and workers ask for every batch."""
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

    def request_export(self, fmt: str) -> str:
        """The export's status; a missing or failed one (or one pending for longer than
        EXPORT_RETRY_AFTER: its message was lost) is queued for the training worker."""
        from imageclass.celery import app

        record = self.exports.get(fmt, {})
        if record.get("status") == "ready":
            return "ready"
        if record.get("status") == "pending":
            requested = datetime.fromisoformat(record["requested_at"])
            if (timezone.now() - requested).total_seconds() < settings.EXPORT_RETRY_AFTER:
                return "pending"
        self.set_export(fmt, {"status": "pending", "requested_at": timezone.now().isoformat()})
        try:
            # By name: classifier never imports mltrain, which runs the export on the training queue.
            app.send_task("mltrain.tasks.export_model", args=[str(self.pk), fmt])
        except Exception as exc:  # kombu raises many kinds when the broker is away
            self.set_export(fmt, record)
            raise BrokerUnavailable(
                "The training queue is unavailable; please try again shortly."
            ) from exc
        return "pending"

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


class ServiceUnavailable(Exception):
    """A service the upload needs is down; nothing of the upload was kept."""


class BrokerUnavailable(ServiceUnavailable):
    """The job could not be queued."""


class StorageUnavailable(ServiceUnavailable):
    """The image could not be stored."""


def signal_ended(pks: list):
    """Wake requests waiting for these jobs; a lost signal only means they wait out their time."""
    if not pks:
        return
    try:
        notify.jobs_ended(pks)
    except Exception as exc:  # Redis or the disk: the outcomes are stored, which is what matters
        log.warning("could not signal the end of jobs %s: %s", ", ".join(map(str, pks)), exc)


class PlainDocuments:
    """Records read by id and inserted with plain pymongo calls, converted as the ORM converts
    what it reads and writes: the ORM compiles an aggregation pipeline for each read by id
    (1.17 ms of CPU in the client against 0.40). Results are read this way on the hot paths (a
    poll, the answer after a wait, a worker's jobs) and uploads inserted."""

    @classmethod
    def by_pk(cls, pk):
        """The record, or DoesNotExist; ValidationError for a value that is no id at all."""
        document = connection.database[cls._meta.db_table].find_one(
            {"_id": cls._meta.pk.to_python(pk)}
        )
        if document is None:
            raise cls.DoesNotExist(f"No {cls._meta.object_name} with id {pk}.")
        return cls.from_document(document)

    @classmethod
    def by_pks(cls, pks) -> list:
        """The records of those ids that exist, in no particular order."""
        ids = [cls._meta.pk.to_python(pk) for pk in pks]
        return [
            cls.from_document(found)
            for found in connection.database[cls._meta.db_table].find({"_id": {"$in": ids}})
        ]

    @classmethod
    def insert(cls, **values):
        """A new record, written with one insert_one of its fields as the ORM stores them
        (defaults and pre_save included), without the rest of the ORM's save: no signals are
        sent, and nothing listens for them on these models. Uploads are recorded this way:
        the ORM's create took 0.76 ms of CPU against 0.42 (and a fifth of the web's CPU under
        load)."""
        record = cls(**values)
        document = {
            field.column: field.get_db_prep_save(field.pre_save(record, True), connection)
            for field in cls._meta.concrete_fields
            if not field.primary_key
        }
        record.pk = connection.database[cls._meta.db_table].insert_one(document).inserted_id
        record._state.adding, record._state.db = False, connection.alias
        return record

    @classmethod
    def from_document(cls, document: dict):
        """The record that a stored document (as find returns it) holds."""
        fields = cls._meta.concrete_fields
        values = []
        for field, converters in zip(fields, cls._converters()):
            value = document.get(field.column)
            for converter in converters:
                value = converter(value, field, connection)
            values.append(value)
        return cls.from_db(connection.alias, [field.attname for field in fields], values)

    @classmethod
    def _converters(cls) -> list:
        """Each concrete field's converters from database values, in field order, as the
        ORM's compiler finds them (backend's, then the field's own). Found once: they depend
        on the fields and the database's settings only, the same in every thread, and finding
        them costs a quarter of the read."""
        if "field_converters" not in cls.__dict__:
            columns = [field.get_col(cls._meta.db_table) for field in cls._meta.concrete_fields]
            cls.field_converters = [
                connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                for column in columns
            ]
        return cls.field_converters


class ConditionalUpdates:
    """For models whose records move between states, claimed by one worker at a time."""

    def transition(self, condition: dict, increment=(), **changes) -> bool:
        """Apply `changes` (and +1 to the `increment` fields) only while the stored record meets
        `condition` (a MongoDB filter): True when it did, and the instance then holds the
        changes, with no reload. The counters must also still hold the instance's values, so
        its incremented copies are exact.

        One update_one on the plain _id, which every engine answers from the _id index: the
        ORM's update spells the filter as $and, which the embedded engine answers by scanning
        every record (and its find_one_and_update costs several updates)."""
        query, update = self._conditional_update(condition, increment, changes)
        if connection.database[self._meta.db_table].update_one(query, update).matched_count != 1:
            return False
        self._apply(increment, changes)
        return True

    @classmethod
    def transition_many(cls, moves: list) -> list[bool]:
        """`transition` for many records in one round trip: `moves` holds (instance, condition,
        increment, changes) tuples, and the answers come in their order. MongoDB 8's bulkWrite
        command says of each update whether it matched (a collection's bulk_write only counts
        them all). A batch's 31 claims and finishes took 59% of the worker's time one by one."""
        if not moves:
            return []
        namespace = f"{connection.database.name}.{cls._meta.db_table}"
        updates = [
            UpdateOne(
                *instance._conditional_update(condition, increment, changes), namespace=namespace
            )
            for instance, condition, increment, changes in moves
        ]
        results = connection.database.client.bulk_write(
            updates, ordered=False, verbose_results=True
        ).update_results
        outcomes = []
        for index, (instance, _, increment, changes) in enumerate(moves):
            outcomes.append(index in results and results[index].matched_count == 1)
            if outcomes[-1]:
                instance._apply(increment, changes)
        return outcomes

    def _conditional_update(self, condition: dict, increment, changes: dict) -> tuple[dict, dict]:
        counters = {self._meta.get_field(name).column: name for name in increment}
        condition = {
            **condition,
            **{column: getattr(self, name) for column, name in counters.items()},
        }
        return {"_id": self.pk, **condition}, self._update(increment, changes)

    @classmethod
    def _update(cls, increment, changes: dict) -> dict:
        """The update document that sets `changes` (stored as the ORM stores them) and adds 1
        to the `increment` fields."""
        values = {
            name: value.pk if isinstance(value, models.Model) else value
            for name, value in changes.items()
        }
        fields = {name: cls._meta.get_field(name) for name in values}
        update = {
            "$set": {
                f.column: f.get_db_prep_save(values[name], connection) for name, f in fields.items()
            }
        }
        if increment:
            update["$inc"] = {cls._meta.get_field(name).column: 1 for name in increment}
        return update

    def _apply(self, increment, changes: dict):
        for name, value in changes.items():
            setattr(self, name, value)
        for name in increment:
            setattr(self, name, getattr(self, name) + 1)


class Classification(PlainDocuments, ConditionalUpdates, models.Model):
    """One image sent for classification and, once a worker has run, its result."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    # No index of their own on the two foreign keys: the owner's is the leading field of every
    # history index below, and results are looked up by model version only when an admin
    # deletes one. Each index is upkeep on every write: on the embedded engine an update costs
    # about 0.3 ms more per index (3.2 ms with the eight indexes there were, 2.5 with five).
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
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)  # deliveries that started running
    claim_token = models.CharField(
        max_length=32, blank=True
    )  # the last claim's: a batch's claim reads which it won
    requeues = models.PositiveSmallIntegerField(default=0)  # times the sweep sent it again
    timings = models.JSONField(default=dict, blank=True)
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

    @classmethod
    def image_key_for(cls, owner, extension: str) -> str:
        now = timezone.now()
        folder = str(owner.pk) if owner else "anon"
        return f"images/{folder}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}.{extension}"

    @classmethod
    def submit(cls, data: bytes, **fields) -> "Classification":
        """Validate and store the image, record the job and queue it: announced for the
        next batch, with a message of its own when none is on its way (`classifier.batching`).

        Raises InvalidImage (nothing stored) or ServiceUnavailable (nothing kept)."""
        from classifier.tasks import classify

        classification = cls.store(data, **fields)
        try:
            if batching.announce(classification.pk):
                try:
                    classify.delay(str(classification.pk))
                except Exception:
                    batching.not_sent()
                    raise
        except Exception as exc:  # kombu and redis-py raise many kinds when the broker is away
            classification.delete()
            raise BrokerUnavailable(
                "The classification queue is unavailable; please try again shortly."
            ) from exc
        return classification

    @classmethod
    def store(
        cls, data: bytes, *, owner=None, session_key="", filename="", source_url=""
    ) -> "Classification":
        """Validate the bytes (InvalidImage: nothing stored), store them under a new key and
        record a queued job. Raises StorageUnavailable when the image cannot be stored."""
        from classifier.validation import inspect_image

        info = inspect_image(data)
        storage = storages["default"]
        try:
            key = storage.save(cls.image_key_for(owner, info.extension), ContentFile(data))
        except STORAGE_ERRORS as exc:
            raise StorageUnavailable(
                "Image storage is unavailable; please try again shortly."
            ) from exc
        try:
            classification = cls.insert(
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
            storage.delete(key)
            raise
        return classification

    def claim(self, stale_before=None, worker: str = "") -> bool:
        """Take the job for this worker: queued, or running but abandoned (started before
        `stale_before`, i.e. its worker died). One conditional update: only one worker wins."""
        claimable = [{"status": self.Status.QUEUED}]
        if stale_before is not None:
            claimable.append({"status": self.Status.RUNNING, "started_at": {"$lt": stale_before}})
        increment, changes = self.claiming(worker)
        # One plain condition at a time: with $or the embedded engine scans every job.
        return any(self.transition(condition, increment, **changes) for condition in claimable)

    @classmethod
    def claiming(cls, worker: str = "") -> tuple:
        """(increment, changes) of a claim, under a token of its own that starts with the
        claiming worker's name (see `abandoned`)."""
        token = f"{worker}/{uuid.uuid4().hex}"
        return ["attempts"], {
            "status": cls.Status.RUNNING,
            "started_at": timezone.now(),
            "claim_token": token,
        }

    @classmethod
    def abandoned(cls, worker: str) -> list["Classification"]:
        """The jobs still running under claims of `worker` (a Celery worker's unique name): as
        it starts, those are what an earlier process of it held when it died."""
        found = connection.database[cls._meta.db_table].find(
            {"status": cls.Status.RUNNING, "claim_token": {"$regex": f"^{re.escape(worker)}/"}},
            {"_id": 1},
        )
        return cls.by_pks([each["_id"] for each in found])

    @classmethod
    def queued_ids(cls) -> list[str]:
        """The ids of every queued job, oldest first (the (status, queued_at) index's order)."""
        found = connection.database[cls._meta.db_table].find(
            {"status": cls.Status.QUEUED}, {"_id": 1}, sort=[("queued_at", 1)]
        )
        return [str(each["_id"]) for each in found]

    @classmethod
    def claim_announced(cls, pks, worker: str = "") -> list["Classification"]:
        """The queued jobs among `pks` (announced ones, oldest first), each claimed as `claim`
        does, by one update of them all; the read after it tells the jobs this claim won by
        their token. The worker runs them in one batch with its own. One update_many, where
        an update per job cost the embedded engine 2.5 ms each (1.4 ms a job this way) and
        under load kept a batch of 16 waiting 99 ms for its claims."""
        increment, changes = cls.claiming(worker)
        ids = [cls._meta.pk.to_python(pk) for pk in pks]
        connection.database[cls._meta.db_table].update_many(
            {"_id": {"$in": ids}, "status": cls.Status.QUEUED}, cls._update(increment, changes)
        )
        won = {job.pk: job for job in cls.by_pks(ids) if job.claim_token == changes["claim_token"]}
        return [won[pk] for pk in ids if pk in won]

    @classmethod
    def stuck(cls, time_limit: timedelta) -> list["Classification"]:
        """Jobs running for longer than `time_limit`, or queued for twice as long. Both queries
        ride the (status, queued_at) index: the queued by its range, the running by their
        status alone (a few batches' worth at any time), their start checked here. Written by
        hand: the ORM spells `__lt` as an $and with $exists and $ne guards, which the embedded
        engine answers by scanning every job (the sweep each minute took 1,656 ms at 20,000
        jobs; 1.8 ms this way)."""
        now = timezone.now()
        collection = connection.database[cls._meta.db_table]
        queued = collection.find(
            {"status": cls.Status.QUEUED, "queued_at": {"$lt": now - 2 * time_limit}}, {"_id": 1}
        )
        running = collection.find({"status": cls.Status.RUNNING}, {"_id": 1, "started_at": 1})
        ids = [found["_id"] for found in queued]
        stale_before = (now - time_limit).replace(tzinfo=None)  # pymongo reads naive UTC datetimes
        ids += [
            found["_id"]
            for found in running
            if found["started_at"] is None or found["started_at"] < stale_before
        ]
        return cls.by_pks(ids) if ids else []

    def can_view(self, request) -> bool:
        """The owner, a user the owner shares their history with, or for an anonymous
        result the session that sent it."""
        if self.owner_id is None:
            return bool(self.session_key) and self.session_key == request.session.session_key
        if not request.user.is_authenticated:
            return False
        return self.owner_id == request.user.pk or Share.allows(self.owner, request.user)

    def can_delete(self, request) -> bool:
        return self.owner_id is not None and self.owner_id == request.user.pk

    can_correct = can_delete  # feedback is the owner's, like deletion

    def correct(self, label: str):
        """Record the right label for a finished result (None clears it). Raises ValueError
        saying why a label is refused."""
        if label is None:
            self.corrected_label, self.corrected_at = "", None
        else:
            label = " ".join(label.split())
            if self.status != self.Status.DONE:
                raise ValueError("Only a finished classification can be corrected.")
            from classifier.validation import CLASS_NAME

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

    @classmethod
    def write_corrections_dataset(cls, corrections, target):
        """Write the corrected images into the zip file object `target` as an image-folder
        dataset (<right label>/<id>.<ext>), ready to upload as training data. Returns how
        many images it holds; those whose file is gone are left out."""
        written = 0
        with zipfile.ZipFile(
            target, "w", zipfile.ZIP_STORED
        ) as archive:  # images are compressed already
            for correction in corrections.exclude(corrected_label="").iterator():
                try:
                    data = correction.read_image()
                except (FileNotFoundError, *STORAGE_ERRORS) as exc:
                    log.warning("correction %s left out of the export: %s", correction.pk, exc)
                    continue
                extension = correction.image_key.rsplit(".", 1)[-1]
                archive.writestr(f"{correction.corrected_label}/{correction.pk}.{extension}", data)
                written += 1
        return written

    @property
    def duration_ms(self):
        return self.timings.get("total_ms")

    def all_predictions(self) -> list[dict]:
        ranked = sorted(zip(self.class_names, self.probabilities), key=lambda pair: -pair[1])
        return [{"label": label, "probability": probability} for label, probability in ranked]

    def status_payload(self) -> dict:
        """What the result page polls for."""
        return {
            "id": str(self.pk),
            "status": self.status,
            "finished": self.is_finished,
            "error": self.error,
            "top_label": self.top_label,
            "top_probability": self.top_probability,
            "uncertain": self.is_uncertain,
            "predictions": self.predictions,
            "all_predictions": self.all_predictions() if self.status == self.Status.DONE else [],
            "model_version": self.model_name,
            "duration_ms": self.duration_ms,
        }

    def requeue(self) -> bool:
        """Send a stuck job again (True), or fail it once it has been sent or started too
        often (False). Conditional on the status it was found in, so a job that moved on
        meanwhile is left alone."""
        now = timezone.now()
        found = {"status": self.status}
        if (
            self.requeues >= settings.SWEEP_MAX_REQUEUES
            or self.attempts >= settings.CLASSIFY_MAX_ATTEMPTS
        ):
            if self.transition(
                found,
                status=self.Status.FAILED,
                finished_at=now,
                error="The job did not finish in time and was abandoned.",
            ):
                signal_ended([self.pk])
            return False
        return self.transition(
            found, increment=["requeues"], status=self.Status.QUEUED, queued_at=now
        )

    def release(self) -> bool:
        """Give a running job back to the queue (a retry, or a batch companion's second chance)."""
        return self.transition(
            {"status": self.Status.RUNNING}, status=self.Status.QUEUED, queued_at=timezone.now()
        )

    def finishing(
        self, version: ModelVersion, probabilities, predictions, timings, thumbnail_key: str
    ) -> tuple:
        """The end of this job with its result, for `end_many`."""
        top = predictions[0]
        return self, dict(
            thumbnail_key=thumbnail_key,
            status=self.Status.DONE,
            model_version=version,
            model_name=str(version),
            class_names=list(version.class_names),
            probabilities=[float(p) for p in probabilities],
            predictions=predictions,
            top_label=top["label"],
            top_probability=top["probability"],
            timings=timings,
            error="",
        )

    def fail(self, reason: str) -> bool:
        return self.end_many([(self, {"status": self.Status.FAILED, "error": reason[:1000]})])[0]

    @classmethod
    def end_many(cls, endings: list) -> list[bool]:
        """Record the outcomes, (job, fields) pairs, but each only over a job that is still
        running (never twice); wake whoever waits for the jobs that ended here."""
        now = timezone.now()
        moves = [
            (job, {"status": cls.Status.RUNNING}, (), {**fields, "finished_at": now})
            for job, fields in endings
        ]
        ended = cls.transition_many(moves)
        signal_ended([job.pk for (job, _), done in zip(endings, ended) if done])
        return ended

    def read_image(self) -> bytes:
        with storages["default"].open(self.image_key, "rb") as f:
            return f.read()

    def store_thumbnail(self, image) -> str:
        """Save a small JPEG of the decoded `image` next to the original; returns its key. A
        JPEG original no larger than a thumbnail is its own (0.6 ms of a worker's CPU saved
        for each such image, about a fifth of its work on a 32x32 one)."""
        if self.format == "JPEG" and max(self.width, self.height) <= THUMBNAIL_SIZE:
            return self.image_key
        thumbnail = image.copy()
        thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumbnail.save(buffer, "JPEG", quality=85)
        key = self.image_key.replace("images/", "thumbnails/", 1).rsplit(".", 1)[0] + ".jpg"
        return storages["default"].save(key, ContentFile(buffer.getvalue()))

    class Heatmap(models.TextChoices):
        READY = "ready"
        PENDING = "pending"
        UNAVAILABLE = "unavailable"

    def request_heatmap(self) -> str:
        """READY when the overlay is stored; PENDING while a worker makes it (asked for here
        when nobody asked within HEATMAP_RETRY_AFTER seconds: a lost message is asked again);
        UNAVAILABLE for an unfinished or failed job, or when it could not be made
        (heatmap_error says why)."""
        from classifier.tasks import explain

        if self.heatmap_key:
            return self.Heatmap.READY
        if self.status != self.Status.DONE or self.heatmap_error:
            return self.Heatmap.UNAVAILABLE
        now = timezone.now()
        stale = now - timedelta(seconds=settings.HEATMAP_RETRY_AFTER)
        asked = self.transition(
            {"heatmap_key": "", "heatmap_requested_at": None}, heatmap_requested_at=now
        ) or (
            self.transition(
                {"heatmap_key": "", "heatmap_requested_at": {"$lt": stale}},
                heatmap_requested_at=now,
            )
        )
        if asked:
            try:
                explain.delay(str(self.pk))
            except Exception as exc:  # kombu raises many kinds when the broker is away
                self.transition(
                    {"heatmap_key": ""}, heatmap_requested_at=None
                )  # the next request asks again
                raise BrokerUnavailable(
                    "The classification queue is unavailable; please try again shortly."
                ) from exc
        return self.Heatmap.PENDING

    def store_heatmap(self, overlay) -> bool:
        """Save the overlay (a PIL image) and record it, unless one was recorded meanwhile."""
        buffer = io.BytesIO()
        overlay.save(buffer, "JPEG", quality=85)
        key = self.image_key.replace("images/", "heatmaps/", 1).rsplit(".", 1)[0] + ".jpg"
        key = storages["default"].save(key, ContentFile(buffer.getvalue()))
        if self.transition({"heatmap_key": ""}, heatmap_key=key):
            return True
        storages["default"].delete(key)
        return False

    def delete(self, *args, **kwargs):
        """Delete the record, then its files (an orphaned file is harmless; a record whose
        image is gone is not)."""
        keys, pk = (
            [
                key
                for key in dict.fromkeys((self.image_key, self.thumbnail_key, self.heatmap_key))
                if key
            ],
            self.pk,
        )
        result = super().delete(*args, **kwargs)
        for key in keys:
            try:
                storages["default"].delete(key)
            except STORAGE_ERRORS as exc:
                log.warning("classification %s deleted; its file %s was not: %s", pk, key, exc)
        return result


class Correction(Classification):
    """A result its owner corrected: the admin lists these and exports them as a dataset."""

    class Meta:
        proxy = True
