import hashlib

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Publish and activate the model shipped in the repository (SHIPPED_MODEL_DIR) when the "
        "registry has no version yet; once it has, bring the shipped model's registered version "
        "up to date with its metrics.json. With GENERAL_MODEL, also register the general "
        "ImageNet-1k model (inactive) if it is not yet. Safe to run on every start."
    )

    def handle(self, *args, **options):
        shipped = settings.SHIPPED_MODEL_DIR
        if ModelVersion.objects.exists():
            self.refresh_shipped_metrics(shipped)
        elif (shipped / "model.keras").exists():
            version = ModelVersion.publish(shipped, shipped.name, activate=True)
            self.stdout.write(
                self.style.SUCCESS(f"published and activated the shipped model {version}")
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"no shipped model in {shipped}: train one (`train`) and `publish RUN --activate`"
                )
            )
        if settings.GENERAL_MODEL:
            self.register_general_model()
        self.stdout.write(f"active: {ModelVersion.active() or 'none'}")

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

    def refresh_shipped_metrics(self, shipped):
        """A version of the shipped artifact registered before its report recorded what it has
        now (the int8 verdict that lets workers serve int8) gets the current figures."""
        if not (shipped / "model.keras").exists():
            return
        digest = hashlib.sha256((shipped / "model.keras").read_bytes()).hexdigest()
        metrics = ModelVersion.run_metrics(shipped)
        for version in ModelVersion.objects.filter(artifact_sha256=digest):
            if version.metrics != metrics:
                ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
                self.stdout.write(f"{version}: metrics refreshed from {shipped}")
