from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Register a trained run (model.keras + its report) as a new ModelVersion in the registry."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_dir", type=Path, help="a `train` output folder")
        parser.add_argument("--name", help="registry name (default: the run folder's name)")
        parser.add_argument("--activate", action="store_true", help="make it the active model")
        parser.add_argument("--user", help="username recorded as creator (and activator)")

    def handle(self, *args, run_dir, name, activate, user, **options):
        for required in ("model.keras", "training.json"):
            if not (run_dir / required).exists():
                raise CommandError(
                    f"{run_dir / required} is missing: is {run_dir} a finished training run?"
                )
        creator = None
        if user:
            creator = get_user_model().objects.filter(username=user).first()
            if creator is None:
                raise CommandError(f"no user named {user!r}")
        version = ModelVersion.publish(
            run_dir, name or run_dir.resolve().name, user=creator, activate=activate
        )
        accuracy = version.validation_accuracy
        self.stdout.write(
            self.style.SUCCESS(
                f"published {version} ({len(version.class_names)} classes"
                + (f", validation accuracy {accuracy:.2%}" if accuracy is not None else "")
                + (", active" if version.is_active else "")
                + ")"
            )
        )
