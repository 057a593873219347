"""The training data pipeline: batches shuffled each epoch and augmented (random crop from a
reflect-padded image, mirror, cutout) in plain NumPy, so every Keras backend trains from it."""

import keras
import numpy as np

from mltrain.keras.datasets import Dataset

LOADER_THREADS = 4  # batches are augmented ahead of the step that needs them
TRANSLATE_FRACTION = 1 / 16  # random crop: shift by up to this much of the side (2 px at 32)


def augmentation_pixels(
    side: int, translate_fraction: float, cutout_fraction: float
) -> tuple[int, int]:
    """The largest shift and the cutout side, in pixels, for images of `side` pixels."""
    translate = max(1, round(side * translate_fraction)) if translate_fraction else 0
    return translate, round(side * cutout_fraction)


def augment(
    images: np.ndarray, rng: np.random.Generator, translate: int, cutout: int, fill
) -> np.ndarray:
    """A new array of `images`, each randomly shifted by up to `translate` pixels (a crop of the
    reflect-padded image), mirrored with probability 1/2, and with a random `cutout`-pixel
    square set to `fill` (the mean pixel, which the model normalises to zero)."""
    count, height, width = images.shape[:3]
    if translate:
        pad = ((0, 0), (translate, translate), (translate, translate), (0, 0))
        padded = np.pad(images, pad, mode="reflect")
        down, right = rng.integers(0, 2 * translate + 1, size=(2, count))
        rows = down[:, None, None] + np.arange(height)[None, :, None]
        cols = right[:, None, None] + np.arange(width)[None, None, :]
        images = padded[np.arange(count)[:, None, None], rows, cols]
    else:
        images = images.copy()
    mirrored = rng.random(count) < 0.5
    images[mirrored] = images[mirrored, :, ::-1]
    if cutout:
        top = rng.integers(0, height - cutout + 1, count)[:, None]
        left = rng.integers(0, width - cutout + 1, count)[:, None]
        in_rows = (np.arange(height) >= top) & (np.arange(height) < top + cutout)
        in_cols = (np.arange(width) >= left) & (np.arange(width) < left + cutout)
        images[in_rows[:, :, None] & in_cols[:, None, :]] = fill
    return images


class Batches(keras.utils.PyDataset):
    """A dataset in batches for `fit`. For training (`training=True`): shuffled anew every epoch,
    the last partial batch dropped, every image augmented (`augment`). Otherwise: in order, as
    is. Plain NumPy, so every Keras backend trains from the same pipeline."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int = 0,
        training: bool = False,
        translate_fraction: float = TRANSLATE_FRACTION,
        cutout_fraction: float = 0.0,
    ):
        super().__init__(workers=LOADER_THREADS if training else 1)
        self.images, self.labels = dataset.images, dataset.labels
        self.batch_size, self.seed, self.training = batch_size, seed, training
        self.translate, self.cutout = augmentation_pixels(
            min(self.images.shape[1:3]), translate_fraction, cutout_fraction
        )
        self.fill = (
            self.images.reshape(-1, self.images.shape[-1]).mean(axis=0).round().astype(np.uint8)
            if self.cutout
            else 0
        )
        self.epoch = 0
        self.order = self.shuffled()

    def shuffled(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.images))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))

    def __len__(self):
        if self.training:
            return max(1, len(self.images) // self.batch_size)
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images, labels = self.images[chosen], self.labels[chosen]
        if self.training:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            images = augment(images, rng, self.translate, self.cutout, self.fill)
        return images, labels

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.shuffled()


def training_pipeline(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    translate_fraction: float = TRANSLATE_FRACTION,
    cutout_fraction: float = 0.0,
) -> Batches:
    return Batches(
        dataset,
        batch_size,
        seed,
        training=True,
        translate_fraction=translate_fraction,
        cutout_fraction=cutout_fraction,
    )


def evaluation_pipeline(dataset: Dataset, batch_size: int) -> Batches:
    return Batches(dataset, batch_size)
