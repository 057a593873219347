import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Publish the models shipped in the repository (SHIPPED_MODEL_DIRS, oldest first) under "
        "SHIPPED_MODEL_NAME and activate the newest when the registry has no version yet; once "
        "it has, register a shipped model it lacks (inactive: an operator switches) and bring "
        "registered ones up to date with their metrics.json. With GENERAL_MODEL, also register "
        "the general ImageNet-1k model (inactive) if it is not yet. Safe to run on every start."
    )

    def handle(self, *args, **options):
        shipped = [
            folder for folder in settings.SHIPPED_MODEL_DIRS if (folder / "model.keras").exists()
        ]
        fresh = not ModelVersion.objects.exists()
        for folder in shipped:
            self.register(folder, activate=fresh and folder == shipped[-1])
        if not shipped:
            self.stdout.write(
                self.style.WARNING(
                    "no shipped model in SHIPPED_MODEL_DIRS: train one (`train`) and "
                    "`publish RUN --activate`"
                )
            )
        if settings.GENERAL_MODEL:
            self.register_general_model()
        self.stdout.write(f"active: {ModelVersion.active() or 'none'}")

    def register(self, folder, activate: bool):
        """Publish the shipped model in `folder` unless a version of it is registered; a
        registered one gets the figures its report has now (the int8 verdict that lets workers
        serve int8 grew after some were registered)."""
        digest = hashlib.sha256((folder / "model.keras").read_bytes()).hexdigest()
        registered = ModelVersion.objects.filter(artifact_sha256=digest)
        if not registered.exists():
            with tempfile.TemporaryDirectory() as scratch:
                source = with_report_images(folder, Path(scratch))
                version = ModelVersion.publish(
                    source, settings.SHIPPED_MODEL_NAME, activate=activate
                )
            state = "published and activated" if activate else "registered (inactive)"
            self.stdout.write(
                self.style.SUCCESS(f"{state} the shipped model {version} ({folder.name})")
            )
            return
        metrics = ModelVersion.run_metrics(folder)
        for version in registered:
            if version.metrics != metrics:
                ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
                self.stdout.write(f"{version}: metrics refreshed from {folder}")

    def register_general_model(self):
        # Lazy: every `make run` start runs this command, and with GENERAL_MODEL off it never
        # loads TensorFlow.
        from mltrain import general_model

        if ModelVersion.objects.filter(name=general_model.NAME).exists():
            return
        self.stdout.write(f"building the general model {general_model.NAME} (once per machine) ...")
        version = ModelVersion.publish(
            general_model.run_folder(), general_model.NAME, activate=not ModelVersion.active_pk()
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"registered the general model {version} ({len(version.class_names)} classes)"
            )
        )


def with_report_images(folder: Path, scratch: Path) -> Path:
    """The shipped run folder with its curves and confusion matrix drawn (git keeps no
    binaries but the model: they are drawn from the committed history.csv and metrics.json),
    as a copy under `scratch`; the folder itself when it has them."""
    missing = [
        name for name in ("curves.png", "confusion_matrix.png") if not (folder / name).exists()
    ]
    if not missing:
        return folder
    # Lazy: every `make run` start runs this command; only a first publication draws.
    from mltrain.keras.report import plot_confusion, plot_curves, read_history

    copy = scratch / folder.name
    shutil.copytree(folder, copy)
    if "curves.png" in missing and (folder / "history.csv").exists():
        plot_curves(read_history(folder / "history.csv"), copy / "curves.png")
    validation = json.loads((folder / "metrics.json").read_text()).get("validation", {})
    if "confusion_matrix.png" in missing and "confusion_matrix" in validation:
        plot_confusion(validation, copy / "confusion_matrix.png")
    return copy
