import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mltrain.data_sources import load_dataset
from mltrain.keras.datasets import stratified_sample, stratified_split
from mltrain.keras.training import ARCHITECTURES, STRATEGIES, TrainingConfig
from mltrain.keras.tuning import TUNERS, tune


class Command(BaseCommand):
    help = (
        "Search hyperparameters with Keras Tuner (Hyperband, Bayesian optimisation or random "
        "search) and write best_hyperparameters.json for `train --hyperparameters`. A rerun "
        "with the same --output resumes the search."
    )

    def add_arguments(self, parser):
        defaults = TrainingConfig()
        parser.add_argument("--tuner", choices=TUNERS, default="hyperband")
        parser.add_argument("--architecture", choices=ARCHITECTURES, default="thesis_cnn")
        parser.add_argument(
            "--data",
            default="shared-cifar10",
            help="image folder, 'shared-cifar10' or 'keras-cifar10'",
        )
        parser.add_argument("--image-size", type=int, default=32)
        parser.add_argument(
            "--max-epochs", type=int, default=10, help="epochs of the longest trial"
        )
        parser.add_argument("--trials", type=int, default=10, help="trials for bayesian/random")
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--limit", type=int, help="use only this many training images")
        parser.add_argument(
            "--validation-fraction", type=float, default=defaults.validation_fraction
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--strategy",
            choices=STRATEGIES,
            default=defaults.strategy,
            help="tf.distribute strategy for each trial (see `train --help`)",
        )
        parser.add_argument(
            "--output", type=Path, help="results folder (default var/tuning/<tuner>-<architecture>)"
        )

    def handle(self, *args, **options):
        config = TrainingConfig(
            architecture=options["architecture"],
            batch_size=options["batch_size"],
            validation_fraction=options["validation_fraction"],
            seed=options["seed"],
            strategy=options["strategy"],
        )
        output = (
            options["output"]
            or Path(settings.VAR_DIR) / "tuning" / f"{options['tuner']}-{config.architecture}"
        )
        size = options["image_size"]
        try:
            dataset = load_dataset(options["data"], (size, size), self.stderr)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        train_index, validation_index = stratified_split(
            dataset.labels, config.validation_fraction, config.seed
        )
        if options["limit"]:
            train_index = stratified_sample(
                train_index, dataset.labels, options["limit"], config.seed
            )
        self.stdout.write(
            f"{options['tuner']} search over {config.architecture}, results in {output}"
        )
        if os.environ.get("KERASTUNER_TUNER_ID"):
            self.stdout.write(
                f"distributed tuning: this process is {os.environ['KERASTUNER_TUNER_ID']}, oracle at "
                f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
            )
        best = tune(
            options["tuner"],
            config,
            dataset.subset(train_index),
            dataset.subset(validation_index),
            output,
            options["max_epochs"],
            options["trials"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"best hyperparameters {best} -> {output / 'best_hyperparameters.json'}"
            )
        )
