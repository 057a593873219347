"""Datasets for training and evaluation: image folders and keras.datasets.cifar10.

Every loader returns `Dataset(images, labels, class_names)` with images as raw uint8 pixels
decoded by `classifier.preprocessing`, the function the workers use when serving.
"""

import hashlib
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.preprocessing import load_image_array

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
SHARED_CIFAR10_ARCHIVE_SHA256 = "78475cac8b938c2eb71b159976de4afa325ca4512679f568db6dc1972dea10de"


@dataclass
class Dataset:
    images: np.ndarray  # (n, height, width, 3) uint8
    labels: np.ndarray  # (n,) int32, indexes into class_names
    class_names: list[str]

    def __len__(self):
        return len(self.labels)

    def subset(self, indexes):
        return Dataset(self.images[indexes], self.labels[indexes], self.class_names)

    def only_classes(self, names: list[str]) -> "Dataset":
        """The images of these classes, labelled in the order given."""
        unknown = sorted(set(names) - set(self.class_names))
        if unknown or len(names) < 2:
            raise ValueError(
                f"choose at least two of {', '.join(self.class_names)} (unknown: {', '.join(unknown)})"
            )
        old = [self.class_names.index(name) for name in names]
        keep = np.isin(self.labels, old)
        relabel = np.zeros(len(self.class_names), np.int32)
        relabel[old] = np.arange(len(names))
        return Dataset(self.images[keep], relabel[self.labels[keep]], list(names))


def image_folder_files(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """List `<root>/<class>/<image>` files; classes are the sorted subfolder names."""
    root = Path(root)
    class_names = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if len(class_names) < 2:
        raise ValueError(f"{root} needs at least two class folders, found {class_names}")
    files, labels = [], []
    for index, name in enumerate(class_names):
        class_files = sorted(
            p
            for p in (root / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not class_files:
            raise ValueError(f"class folder {root / name} holds no images")
        files += class_files
        labels += [index] * len(class_files)
    return files, np.asarray(labels, dtype=np.int32), class_names


def load_image_folder(root: Path, image_size: tuple[int, int], workers: int = 4) -> Dataset:
    files, labels, class_names = image_folder_files(root)
    images = np.empty((len(files), *image_size, 3), dtype=np.uint8)

    def decode(i):
        images[i] = load_image_array(files[i], image_size)

    # Pillow releases the GIL while decoding, so threads do overlap.
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, range(len(files))))
    return Dataset(images, labels, class_names)


def load_keras_cifar10(split: str = "train") -> Dataset:
    """The original lossless CIFAR-10 through Keras (downloads once; needs internet)."""
    from keras.datasets import cifar10  # Keras loads only for this download

    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return Dataset(x.astype(np.uint8), y.reshape(-1).astype(np.int32), list(CIFAR10_CLASSES))


def stratified_split(labels: np.ndarray, validation_fraction: float, seed: int):
    """Index arrays (train, validation) with every class split in the same proportion."""
    if not 0 < validation_fraction < 1:
        raise ValueError("validation_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_validation = max(1, round(len(members) * validation_fraction))
        validation.append(members[:n_validation])
        train.append(members[n_validation:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))


def stratified_sample(index: np.ndarray, labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """About `count` of `index`, every class in the same proportion (image folders list their
    files class by class, so the first `count` would hold only the first classes)."""
    if count >= len(index):
        return index
    _, chosen = stratified_split(labels[index], count / len(index), seed)
    return index[chosen]


def unpack_shared_cifar10(archive: Path, destination: Path) -> Path:
    """Unpack the shared CIFAR-10 JPEG archive (checked by sha256) and return its train folder."""
    folder = Path(destination) / "cifar10" / "train"
    if folder.is_dir():
        return folder
    if not Path(archive).is_file():
        raise FileNotFoundError(
            f"no CIFAR-10 archive at {archive}: set SHARED_CIFAR10_ARCHIVE to the shared cifar10-train-jpeg.tar.gz"
        )
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()
    if digest != SHARED_CIFAR10_ARCHIVE_SHA256:
        raise ValueError(f"{archive} has sha256 {digest}, expected {SHARED_CIFAR10_ARCHIVE_SHA256}")
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    return folder
