"""Real photos that installed packages ship (scikit-image's `skimage.data`, matplotlib's sample
data): no download, the same on every machine. They check models where no labelled data is at
hand, such as the general model's int8 copy. Each photo carries what it shows."""

from dataclasses import dataclass
from pathlib import Path

import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image


@dataclass(frozen=True)
class Photo:
    name: str
    shows: str


PHOTOS = (
    Photo("chelsea", "a tabby cat"),
    Photo("astronaut", "an astronaut's portrait"),
    Photo("coffee", "a cup of coffee"),
    Photo("rocket", "a rocket on its launch pad"),
    Photo("motorcycle", "a motorcycle in a workshop"),
    Photo("hubble_deep_field", "galaxies"),
    Photo("retina", "a retina"),
    Photo("immunohistochemistry", "stained tissue"),
    Photo("camera", "a cameraman"),
    Photo("coins", "coins"),
    Photo("moon", "the moon's surface"),
    Photo("page", "a printed page"),
    Photo("text", "painted text"),
    Photo("brick", "a brick wall"),
    Photo("grass", "grass"),
    Photo("gravel", "gravel"),
    Photo("clock", "a clock"),
    Photo("grace_hopper", "Grace Hopper's portrait"),
)


def load(name: str) -> Image.Image:
    """The photo as an RGB image."""
    if name == "grace_hopper":
        return Image.open(
            Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        ).convert("RGB")
    pixels = (
        skimage.data.stereo_motorcycle()[0]
        if name == "motorcycle"
        else getattr(skimage.data, name)()
    )
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
