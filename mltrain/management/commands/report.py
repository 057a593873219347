import json
from pathlib import Path

import keras
from django.core.management.base import BaseCommand, CommandError

from mltrain.data_sources import held_out_by, load_dataset
from mltrain.keras.report import write_report


class Command(BaseCommand):
    help = (
        "Rewrite a training run's report (metrics.json, curves, confusion matrix, MODEL_CARD.md), "
        "optionally with other runs on the same validation split beside it in the model card."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_dir", type=Path)
        parser.add_argument(
            "--compare", type=Path, nargs="*", default=[], help="other finished run folders"
        )
        parser.add_argument(
            "--data", default="shared-cifar10", help="the dataset the run was trained on"
        )

    def handle(self, *args, run_dir, compare, data, **options):
        run = json.loads((run_dir / "training.json").read_text())
        comparisons = {}
        for other in [run_dir, *compare] if compare else []:
            metrics_file = other / "metrics.json"
            if not metrics_file.exists():
                raise CommandError(f"{metrics_file} is missing: is {other} a finished run?")
            other_run = json.loads((other / "training.json").read_text())
            if (other_run["config"]["seed"], other_run["config"]["validation_fraction"]) != (
                run["config"]["seed"],
                run["config"]["validation_fraction"],
            ):
                raise CommandError(
                    f"{other} used another validation split; figures would not compare"
                )
            report = json.loads(metrics_file.read_text())
            label = f"{other_run['config']['architecture']} ({other.name})"
            comparisons[label] = {
                "epochs": report["epochs"],
                "accuracy": report["validation"]["accuracy"],
            }
        height, width = run["input_shape"][:2]
        validation = held_out_by(load_dataset(data, (height, width), self.stderr), run_dir)
        model = keras.saving.load_model(run_dir / "model.keras", compile=False)
        report = write_report(run_dir, model, validation, comparisons)
        self.stdout.write(
            self.style.SUCCESS(
                f"validation accuracy {report['validation']['accuracy']:.4f}; report rewritten in {run_dir}"
            )
        )
