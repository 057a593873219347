import hashlib

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Publish and activate the model shipped in the repository (SHIPPED_MODEL_DIR) when the "
        "registry has no version yet; once it has, give the shipped model's registered version "
        "the report files it lacks. Safe to run on every start."
    )

    def handle(self, *args, **options):
        shipped = settings.SHIPPED_MODEL_DIR
        if ModelVersion.objects.exists():
            self.complete_shipped_reports(shipped)
            self.stdout.write(f"registry has models; active: {ModelVersion.active() or 'none'}")
            return
        if not (shipped / "model.keras").exists():
            self.stdout.write(self.style.WARNING(
                f"no shipped model in {shipped}: train one (`train`) and `publish RUN --activate`"
            ))  # fmt: skip
            return
        version = ModelVersion.publish(shipped, shipped.name, activate=True)
        self.stdout.write(self.style.SUCCESS(f"published and activated the shipped model {version}"))

    def complete_shipped_reports(self, shipped):
        """Versions of the shipped artifact published before its report kept examples and
        calibration images get them now (the quality page and int8 serving need them)."""
        if not (shipped / "model.keras").exists():
            return
        digest = hashlib.sha256((shipped / "model.keras").read_bytes()).hexdigest()
        for version in ModelVersion.objects.filter(artifact_sha256=digest):
            added = version.complete_report(shipped)
            if added:
                self.stdout.write(f"{version}: stored {', '.join(added)} from {shipped}")
