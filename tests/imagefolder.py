"""Tiny generated image-folder datasets for the training tests."""

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def make_image_folder(root: Path, per_class: int = 8, size=(32, 32), seed: int = 0) -> Path:
    """One folder per class; each image a noisy field of the class colour with a random
    darker square, alternating PNG and JPEG, some of them not at the model's size."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            height, width = size if i % 3 else (size[0] + 9, size[1] + 17)
            pixels = np.clip(rng.normal(colour, 35, (height, width, 3)), 0, 255).astype(np.uint8)
            y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
            pixels[y : y + height // 3, x : x + width // 3] //= 2
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")
    return root
