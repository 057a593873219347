"""Celery tasks of the `training` queue: transfer learning on an uploaded dataset, and the
exported (TFLite, ONNX) copies of a model version. They run on their own worker, so a run
that takes an hour never holds up classification."""

import logging
import shutil
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone

from classifier.models import ModelVersion
from mltrain.archive import unpack
from mltrain.models import TrainingJob

log = logging.getLogger(__name__)


def job_folder(job: TrainingJob) -> Path:
    return Path(settings.VAR_DIR) / "training-jobs" / str(job.pk)


def progress_callback(job: TrainingJob, config):
    # The training stack loads in the training worker only: the inference worker imports this
    # module too (Celery finds every app's tasks), and the web process sends by name.
    import keras

    from mltrain.keras.transfer import HEAD_LAYERS

    total = config.head_epochs + config.fine_tune_epochs

    class Progress(keras.callbacks.Callback):
        """Records every finished epoch on the job, which the admin page shows live, and each
        phase's start as a sign of life (an epoch can take long)."""

        def on_train_begin(self, logs=None):
            job.beat()

        def on_epoch_end(self, epoch, logs=None):
            backbone_trains = any(
                layer.trainable and layer.weights and layer.name not in HEAD_LAYERS
                for layer in self.model.layers
            )
            job.record_epoch(
                "fine-tune" if backbone_trains else "head", epoch + 1, total, logs or {}
            )

    return Progress()


def fetch_dataset(job: TrainingJob, folder: Path) -> Path:
    """The job's zip, copied from storage and unpacked (each image checked) into `folder`."""

    archive = folder / "dataset.zip"
    with storages["models"].open(job.dataset_key, "rb") as source, archive.open("wb") as target:
        shutil.copyfileobj(source, target)
    images = folder / "images"
    shutil.rmtree(images, ignore_errors=True)
    images, refused = unpack(archive, images)
    if refused:
        log.warning(
            "training job %s: %d images refused: %s", job.pk, len(refused), "; ".join(refused[:20])
        )
    return images


@shared_task(
    acks_late=False, ignore_result=True
)  # acked on receipt: a run outlasts any visibility timeout
def train_model(job_id: str):
    # Lazy, as in progress_callback.
    from mltrain.data_sources import backbone_weights
    from mltrain.keras.datasets import load_image_folder
    from mltrain.keras.transfer import TransferConfig, run

    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or not job.claim():
        return  # gone, or taken by another delivery
    folder = job_folder(job)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        options = dict(job.config)
        options["weights"] = backbone_weights(options["backbone"], options.get("weights"))
        config = TransferConfig(**options)
        images = fetch_dataset(job, folder)
        dataset = load_image_folder(images, (config.input_size(),) * 2)
        run(config, dataset, folder / "run", callbacks=[progress_callback(job, config)])
        version = ModelVersion.publish(
            folder / "run", job.name, user=job.created_by, activate=job.activate_when_done
        )
    except Exception as exc:  # whatever stopped the run, the admin sees why
        log.exception("training job %s failed", job.pk)
        job.fail(f"{type(exc).__name__}: {exc}")
        return
    job.succeed(version)
    shutil.rmtree(folder / "images", ignore_errors=True)


@shared_task(acks_late=True, ignore_result=True)
def export_model(version_id: str, fmt: str):
    """Build, check and store one export of a model version. Safe to run twice: a ready export
    is left as it is."""
    from mltrain.export import export_version  # lazy, as in progress_callback

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.exports.get(fmt, {}).get("status") == "ready":
        return
    try:
        record = export_version(version, fmt)
    except Exception as exc:  # a converter's failure is the admin's to read, not a crash loop
        log.exception("export of %s to %s failed", version, fmt)
        version.set_export(
            fmt, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:1000]}
        )
        return
    version.set_export(fmt, {**record, "status": "ready", "built_at": timezone.now().isoformat()})


@shared_task(ignore_result=True)
def sweep_abandoned_jobs():
    """Fail training jobs whose worker died mid-run (the admin can then retry them)."""
    return TrainingJob.fail_abandoned()
