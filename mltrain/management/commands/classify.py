import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from PIL import UnidentifiedImageError

from classifier.models import ModelVersion
from classifier.serving.inference import classify_files
from mltrain.keras.datasets import IMAGE_SUFFIXES


def image_paths(arguments: list[str]) -> list[str]:
    """Files as given, and the images inside given folders (sorted), paths kept as typed."""
    paths = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            paths += sorted(
                str(p)
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.is_file():
            paths.append(argument)
        else:
            raise CommandError(f"{argument}: no such file or folder")
    return paths


class Command(BaseCommand):
    help = "Classify local image files or folders with the active model (or --model-version), in batches."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="image files or folders")
        parser.add_argument("--json", action="store_true", help="one JSON line per file")
        parser.add_argument(
            "--top", type=int, default=3, help="how many labels per file (default 3)"
        )
        parser.add_argument(
            "--model-version",
            help="a model version instead of the active one: its id, or a name (e.g. imagenet-1k) for that "
            "name's latest version",
        )

    def handle(self, *args, paths, top, model_version, **options):
        reference = model_version
        model_version = ModelVersion.find(reference) if reference else ModelVersion.active()
        if model_version is None:
            raise CommandError(
                f"no model version {reference!r}"
                if reference
                else "no model version: publish one with `manage.py publish RUN --activate`"
            )
        files = image_paths(paths)
        if not options["json"]:
            self.stderr.write(f"{model_version}: classifying {len(files)} file(s)")
        failures = 0
        threshold = model_version.out_of_distribution.get("threshold")
        for path, predictions, score in self.classify(model_version, files, top):
            if predictions is None:
                failures += 1
                continue
            best = predictions[0]
            outside = threshold is not None and score > threshold
            if options["json"]:
                line = {
                    "file": path,
                    "top_label": best["label"],
                    "top_probability": best["probability"],
                    "out_of_distribution": outside,
                    "ood_score": score,
                    "predictions": predictions,
                }
                self.stdout.write(json.dumps(line))
            else:
                others = ", ".join(f"{p['label']} {p['probability']:.1%}" for p in predictions[1:])
                self.stdout.write(
                    f"{path}: {'none of the known classes; closest ' if outside else ''}"
                    f"{best['label']} {best['probability']:.1%}"
                    + (f" ({others})" if others else "")
                )
        if failures:
            raise CommandError(f"{failures} file(s) could not be classified")

    def classify(self, model_version, files, top):
        """Batches for speed; a batch with an unreadable file is retried file by file so one
        bad image only fails itself."""
        batch_size = 256
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            try:
                yield from classify_files(model_version, chunk, top)
            except (OSError, UnidentifiedImageError, ValueError):
                for path in chunk:
                    try:
                        yield from classify_files(model_version, [path], top)
                    except (OSError, UnidentifiedImageError, ValueError) as exc:
                        self.stderr.write(f"{path}: cannot classify: {exc}")
                        yield path, None, None
