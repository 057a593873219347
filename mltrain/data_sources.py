"""Resolve a `--data` argument of the training commands into a loaded Dataset."""

from pathlib import Path

from django.conf import settings

from mltrain.datasets import load_image_folder, load_keras_cifar10, unpack_shared_cifar10

SHARED_CIFAR10 = "shared-cifar10"
KERAS_CIFAR10 = "keras-cifar10"


def shared_cifar10_folder() -> Path:
    return unpack_shared_cifar10(settings.SHARED_CIFAR10_ARCHIVE, Path(settings.VAR_DIR) / "datasets")


def load_dataset(source: str, image_size: tuple[int, int], stdout=None):
    if source == KERAS_CIFAR10:
        return load_keras_cifar10("train")
    folder = shared_cifar10_folder() if source == SHARED_CIFAR10 else Path(source)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of class folders")
    if stdout:
        stdout.write(f"decoding images under {folder} ...")
    return load_image_folder(folder, image_size)
