import json
from pathlib import Path

import keras
from django.core.management.base import BaseCommand, CommandError

from mltrain.data_sources import held_out_by, load_dataset
from mltrain.keras import hardware
from mltrain.keras.ensemble import build_ensemble, has_own_views, input_side
from mltrain.keras.report import write_report


class Command(BaseCommand):
    help = (
        "Join finished runs into one model that averages their probabilities, and write its "
        "report like `train`. The runs must share their classes and validation split; the one "
        "with the largest input comes first and sets the ensemble's input; a run whose report "
        "fitted a temperature is averaged calibrated. Publish it with `publish`."
    )

    def add_arguments(self, parser):
        parser.add_argument("runs", type=Path, nargs="+", help="finished run folders (two or more)")
        parser.add_argument("--output", type=Path, required=True, help="the ensemble's run folder")
        parser.add_argument(
            "--weights",
            type=float,
            nargs="+",
            help="one weight per run, in the order given (default: equal)",
        )
        parser.add_argument(
            "--mirror",
            action="store_true",
            help="members that do not already average views answer for the image and its "
            "mirror image, averaged (twice their cost)",
        )
        parser.add_argument(
            "--data", default="shared-cifar10", help="the dataset the runs were trained on"
        )

    def handle(self, *args, runs, output, weights, mirror, data, **options):
        if len(runs) < 2:
            raise CommandError("give two or more run folders")
        if weights and len(weights) != len(runs):
            raise CommandError("give one --weights value per run")
        trained = [self.finished_run(folder) for folder in runs]
        first = trained[0][1]
        for folder, run, _ in trained[1:]:
            if run["class_names"] != first["class_names"]:
                raise CommandError(f"{folder} knows other classes than {runs[0]}")
            if (run["config"]["seed"], run["config"]["validation_fraction"]) != (
                first["config"]["seed"],
                first["config"]["validation_fraction"],
            ):
                raise CommandError(f"{folder} used another validation split")
        order = sorted(range(len(trained)), key=lambda i: -input_side(trained[i][2]))
        members = [trained[i][2] for i in order]
        shares = [weights[i] / sum(weights) for i in order] if weights else None
        try:
            model = build_ensemble(
                members, shares, mirror, [temperature(trained[i][0]) for i in order]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        output.mkdir(parents=True, exist_ok=True)
        model.save(output / "model.keras")
        side = input_side(model)
        (output / "training.json").write_text(
            json.dumps(
                self.describe(
                    trained, order, shares or [1 / len(members)] * len(members), mirror, model
                ),
                indent=2,
            )
        )
        validation = held_out_by(load_dataset(data, (side, side), self.stderr), output)
        report = write_report(output, model, validation)
        self.stdout.write(
            self.style.SUCCESS(
                f"validation accuracy {report['validation']['accuracy']:.4f}; model and report in {output}"
            )
        )

    def finished_run(self, folder: Path):
        for name in ("model.keras", "training.json", "metrics.json"):
            if not (folder / name).exists():
                raise CommandError(f"{folder / name} is missing: is {folder} a finished run?")
        run = json.loads((folder / "training.json").read_text())
        return folder, run, keras.saving.load_model(folder / "model.keras", compile=False)

    @staticmethod
    def describe(trained, order, shares, mirror, model) -> dict:
        first = trained[order[0]][1]
        members = []
        for i, share in zip(order, shares, strict=True):
            folder, run, member = trained[i]
            metrics = json.loads((folder / "metrics.json").read_text())
            members.append(
                {
                    "run": str(folder),
                    "architecture": run["config"]["architecture"],
                    "input": input_side(member),
                    "weight": share,
                    "temperature": temperature(folder),
                    "mirrored": mirror and not has_own_views(member),
                    "validation_accuracy": metrics["validation"]["accuracy"],
                }
            )
        listed = "; ".join(
            f"`{m['architecture']}` at {m['input']} px ({m['validation_accuracy']:.2%} alone, "
            f"weight {m['weight']:.2f}"
            + (f", calibrated at T {m['temperature']:.3f}" if m["temperature"] else "")
            + (", with its mirror image" if m["mirrored"] else "")
            + ")"
            for m in members
        )
        return {
            "config": {
                "architecture": "ensemble",
                "validation_fraction": first["config"]["validation_fraction"],
                "seed": first["config"]["seed"],
            },
            "class_names": first["class_names"],
            "input_shape": list(model.input_shape[1:]),
            "train_size": first["train_size"],
            "validation_size": first["validation_size"],
            "device": "CPU",
            "hardware": hardware.hardware(),
            "parameters": model.count_params(),
            "members": members,
            "recipe": f"The weighted mean of the (calibrated) probabilities of {len(members)} trained runs, "
            f"in one Keras model: {listed}. Smaller inputs are reduced inside the model by "
            "average pooling. No training of its own: the members' cards give theirs.",
        }


def temperature(folder: Path) -> float | None:
    """The temperature a run's report fitted on its validation images, if it has one."""
    metrics = json.loads((folder / "metrics.json").read_text())
    return (metrics.get("calibration") or {}).get("temperature")
