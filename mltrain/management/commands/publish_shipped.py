import hashlib

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Publish and activate the model shipped in the repository (SHIPPED_MODEL_DIR) when the "
        "registry has no version yet; once it has, bring the shipped model's registered version "
        "up to date with its metrics.json. Safe to run on every start."
    )

    def handle(self, *args, **options):
        shipped = settings.SHIPPED_MODEL_DIR
        if ModelVersion.objects.exists():
            self.refresh_shipped_metrics(shipped)
            self.stdout.write(f"registry has models; active: {ModelVersion.active() or 'none'}")
            return
        if not (shipped / "model.keras").exists():
            self.stdout.write(self.style.WARNING(
                f"no shipped model in {shipped}: train one (`train`) and `publish RUN --activate`"
            ))  # fmt: skip
            return
        version = ModelVersion.publish(shipped, shipped.name, activate=True)
        self.stdout.write(self.style.SUCCESS(f"published and activated the shipped model {version}"))

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
