from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Publish and activate the model shipped in the repository (SHIPPED_MODEL_DIR) when the "
        "registry has no version yet. Safe to run on every start: it does nothing afterwards."
    )

    def handle(self, *args, **options):
        shipped = settings.SHIPPED_MODEL_DIR
        if ModelVersion.objects.exists():
            self.stdout.write(f"registry has models; active: {ModelVersion.active() or 'none'}")
            return
        if not (shipped / "model.keras").exists():
            self.stdout.write(self.style.WARNING(
                f"no shipped model in {shipped}: train one (`train`) and `publish RUN --activate`"
            ))  # fmt: skip
            return
        version = ModelVersion.publish(shipped, shipped.name, activate=True)
        self.stdout.write(self.style.SUCCESS(f"published and activated the shipped model {version}"))
