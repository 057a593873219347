"""Resolve a `--data` argument of the training commands into a loaded Dataset."""

import json
from pathlib import Path

from django.conf import settings

from classifier.models import ModelVersion
from classifier.serving.inference import local_artifact
from mltrain.keras.datasets import (
    load_image_folder,
    load_keras_cifar10,
    stratified_split,
    unpack_shared_cifar10,
)

SHARED_CIFAR10 = "shared-cifar10"
KERAS_CIFAR10 = "keras-cifar10"


def shared_cifar10_folder() -> Path:
    return unpack_shared_cifar10(
        settings.SHARED_CIFAR10_ARCHIVE, Path(settings.VAR_DIR) / "datasets"
    )


def load_dataset(source: str, image_size: tuple[int, int], stdout=None):
    if source == KERAS_CIFAR10:
        return load_keras_cifar10("train")
    folder = shared_cifar10_folder() if source == SHARED_CIFAR10 else Path(source)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of class folders")
    if stdout:
        stdout.write(f"decoding images under {folder} ...")
    return load_image_folder(folder, image_size)


def backbone_weights(backbone: str, weights: str | None) -> str:
    """The --weights of train_transfer, with its defaults resolved: ImageNet for Keras
    backbones, the shipped model for ours ('active': a local copy of the active version)."""
    if backbone != "imageclass":
        return weights or "imagenet"
    if weights == "active":
        active = ModelVersion.active()
        if active is None:
            raise ValueError("no model is active")
        return str(local_artifact(active))
    path = Path(weights) if weights else Path(settings.SHIPPED_MODEL_DIR) / "model.keras"
    if not path.is_file():
        raise ValueError(f"{path} is not a model file")
    return str(path)


def held_out_by(dataset, run_dir: Path):
    """The images a finished `train` run held out for validation (its split, recomputed)."""
    config = json.loads((Path(run_dir) / "training.json").read_text())["config"]
    _, validation = stratified_split(dataset.labels, config["validation_fraction"], config["seed"])
    return dataset.subset(validation)
