import json
from pathlib import Path

import keras
import numpy as np
from django.core.management.base import BaseCommand, CommandError

from classifier.models import ModelVersion
from classifier.serving.inference import local_artifact
from mltrain.data_sources import SHARED_CIFAR10, load_dataset
from mltrain.keras.datasets import stratified_split
from mltrain.keras.report import evaluate, plot_confusion


class Command(BaseCommand):
    help = (
        "Evaluate a model file (or the active version) on an image-folder dataset: accuracy, "
        "loss, per-class precision/recall/F1 and the confusion matrix."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data", default="shared-cifar10", help="image folder, or 'shared-cifar10'"
        )
        parser.add_argument(
            "--model", type=Path, help="a model.keras file (default: the active version)"
        )
        parser.add_argument(
            "--split",
            choices=("all", "validation"),
            help="'validation': only the held-out part of the training split (same seed and "
            "fraction); default: validation for shared-cifar10 (the rest was trained on), else all",
        )
        parser.add_argument("--validation-fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--output", type=Path, help="folder for metrics.json and confusion_matrix.png"
        )

    def handle(self, *args, **options):
        model, class_names = self.model_and_classes(options["model"], keras)
        size = tuple(model.input_shape[1:3])
        try:
            dataset = load_dataset(options["data"], size, self.stderr)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if class_names and sorted(class_names) != sorted(dataset.class_names):
            raise CommandError(
                f"the model knows {class_names}, the dataset has {dataset.class_names}"
            )
        if class_names:
            # Map the dataset's folder order onto the model's output order.
            remap = [class_names.index(name) for name in dataset.class_names]
            dataset.labels = np.asarray(remap, dtype=np.int32)[dataset.labels]
            dataset.class_names = list(class_names)
        split = options["split"] or ("validation" if options["data"] == SHARED_CIFAR10 else "all")
        if split == "validation":
            _, validation = stratified_split(
                dataset.labels, options["validation_fraction"], options["seed"]
            )
            dataset = dataset.subset(validation)
        metrics = evaluate(model, dataset)
        self.print_table(metrics)
        if options["output"]:
            options["output"].mkdir(parents=True, exist_ok=True)
            (options["output"] / "metrics.json").write_text(json.dumps(metrics, indent=2))
            plot_confusion(metrics, options["output"] / "confusion_matrix.png")
            self.stdout.write(f"written to {options['output']}")

    def model_and_classes(self, path, keras):
        if path:
            if not path.is_file():
                raise CommandError(f"{path}: no such model file")
            run = path.parent / "training.json"
            class_names = json.loads(run.read_text())["class_names"] if run.exists() else None
            return keras.saving.load_model(path, compile=False), class_names

        version = ModelVersion.active()
        if version is None:
            raise CommandError("no active model version; pass --model or publish one")
        # The Keras artifact itself: evaluation measures the model, not a runtime's rendering of it.
        return keras.saving.load_model(local_artifact(version), compile=False), version.class_names

    def print_table(self, metrics):
        self.stdout.write(
            f"images {metrics['images']}  accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}"
        )
        self.stdout.write(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for name, row in metrics["per_class"].items():
            self.stdout.write(
                f"{name:<16}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>9}"
            )
        self.stdout.write("confusion matrix (rows: true, columns: predicted)")
        for row in metrics["confusion_matrix"]:
            self.stdout.write(" ".join(f"{count:>5}" for count in row))
