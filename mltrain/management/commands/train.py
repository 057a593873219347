import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mltrain.data_sources import load_dataset
from mltrain.keras.architectures import fixed
from mltrain.keras.datasets import stratified_sample, stratified_split
from mltrain.keras.hardware import worker_output
from mltrain.keras.report import write_report
from mltrain.keras.training import ARCHITECTURES, STRATEGIES, TrainingConfig, train


class Command(BaseCommand):
    help = (
        "Train a classifier on an image-folder dataset (default: the shared CIFAR-10 training "
        "images) or keras.datasets.cifar10. Checkpoints every epoch; rerunning the same command "
        "with the same --output resumes where it stopped. Uses every GPU when one is present "
        "(with KERAS_BACKEND=jax on GPU machines without TensorFlow)."
    )

    def add_arguments(self, parser):
        defaults = TrainingConfig()
        parser.add_argument("--architecture", choices=ARCHITECTURES, default=defaults.architecture)
        parser.add_argument("--epochs", type=int, default=defaults.epochs)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument(
            "--data",
            default="shared-cifar10",
            help="an image-folder path (<root>/<class>/<image>), 'shared-cifar10' (the shared "
            "JPEG archive, unpacked into var/datasets) or 'keras-cifar10' (downloads)",
        )
        parser.add_argument(
            "--image-size", type=int, default=32, help="square input size in pixels"
        )
        parser.add_argument(
            "--validation-fraction", type=float, default=defaults.validation_fraction
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--limit", type=int, help="use only this many training images (quick runs)"
        )
        parser.add_argument("--peak-learning-rate", type=float, default=defaults.peak_learning_rate)
        parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
        parser.add_argument(
            "--weight-decay",
            type=float,
            default=defaults.weight_decay,
            help="L2 penalty on the kernels",
        )
        parser.add_argument(
            "--translate",
            type=float,
            default=defaults.translate_fraction,
            help="random-crop augmentation: shift by up to this fraction of the side (0.0625: 2 px at 32)",
        )
        parser.add_argument(
            "--cutout",
            type=float,
            default=defaults.cutout_fraction,
            help="cutout augmentation: blank a random square of this fraction of the side (0: none)",
        )
        parser.add_argument(
            "--tta-shifts",
            action="store_true",
            help="the served prediction averages 6 views (mirror x 1-pixel shifts) instead of 2",
        )
        parser.add_argument(
            "--teacher",
            type=Path,
            nargs="+",
            default=[],
            help="trained model.keras files (each with its training.json) to distil from: the student learns "
            "their probabilities (their mean, for several) on the same augmented images as well as the labels",
        )
        parser.add_argument(
            "--distillation-weight",
            type=float,
            default=defaults.distillation_weight,
            help="with --teacher: the teachers' share of the targets (the labels get the rest)",
        )
        parser.add_argument(
            "--mixed-precision",
            choices=("auto", "on", "off"),
            default="auto",
            help="bfloat16 compute; auto turns it on for GPUs and CPUs with native bfloat16",
        )
        parser.add_argument(
            "--strategy",
            choices=STRATEGIES,
            default=defaults.strategy,
            help="tf.distribute strategy: auto (all local GPUs when several), mirrored, or "
            "multi-worker (every machine runs this command with its own TF_CONFIG)",
        )
        parser.add_argument(
            "--hyperparameters",
            type=Path,
            help="best_hyperparameters.json written by `tune`; its values override the defaults",
        )
        parser.add_argument(
            "--output",
            type=Path,
            help="run folder (default var/runs/<architecture>); an unfinished run there resumes",
        )

    def handle(self, *args, **options):
        hyperparameters = {}
        if options["hyperparameters"]:
            hyperparameters = json.loads(options["hyperparameters"].read_text())
        hp = fixed(hyperparameters)
        config = TrainingConfig(
            architecture=options["architecture"],
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            validation_fraction=options["validation_fraction"],
            seed=options["seed"],
            peak_learning_rate=options["peak_learning_rate"],
            label_smoothing=options["label_smoothing"],
            weight_decay=options["weight_decay"],
            translate_fraction=options["translate"],
            cutout_fraction=options["cutout"],
            translate_tta=options["tta_shifts"],
            teachers=[str(path) for path in options["teacher"]],
            distillation_weight=options["distillation_weight"],
            mixed_precision={"auto": None, "on": True, "off": False}[options["mixed_precision"]],
            strategy=options["strategy"],
            hyperparameters=hyperparameters,
        )
        output = options["output"] or Path(settings.VAR_DIR) / "runs" / config.architecture
        if config.strategy == "multi-worker":
            output = worker_output(output)
        size = options["image_size"]
        try:
            dataset = load_dataset(options["data"], (size, size), self.stdout)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        train_index, validation_index = stratified_split(
            dataset.labels, config.validation_fraction, config.seed
        )
        if options["limit"]:
            train_index = stratified_sample(
                train_index, dataset.labels, options["limit"], config.seed
            )
        training_set, validation_set = dataset.subset(train_index), dataset.subset(validation_index)
        self.stdout.write(
            f"{config.architecture}: {len(training_set)} training / {len(validation_set)} "
            f"validation images, {len(dataset.class_names)} classes, {config.epochs} epochs -> {output}"
        )
        try:
            model = train(config, training_set, validation_set, output, hp)
        except ValueError as exc:  # a teacher that does not fit, a strategy the backend lacks
            raise CommandError(str(exc)) from exc
        report = write_report(output, model, validation_set)
        self.stdout.write(
            self.style.SUCCESS(
                f"validation accuracy {report['validation']['accuracy']:.4f}; model and report in {output}"
            )
        )
