"""Real photos that installed packages ship in their wheels (scikit-image's `skimage.data`,
matplotlib's sample data, scikit-learn's sample images, PyWavelets' `pywt.data`, mahotas'
demo data): no download, the same on every machine. They check models where no labelled data
is at hand, such as the general model's int8 copy and the "none of these classes" verdict.
Each photo carries what it shows. Left out: what is drawn or rendered rather than photographed
(mahotas' department-store crowd, matplotlib's gift box), images of a few pixels, and scans."""

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pywt.data
import skimage.data
import sklearn.datasets
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
    Photo("cell", "a cell under a microscope"),
    Photo("microaneurysms", "the blood vessels of a retina"),
    Photo("china", "a pagoda above a lake"),
    Photo("flower", "a dahlia in bloom"),
    Photo("aero", "an aerial view of fields"),
    Photo("ascent", "people climbing an outdoor stairway"),
    Photo("luispedro", "a man's portrait"),
    Photo("nuclear", "stained cell nuclei"),
)


def load(name: str) -> Image.Image:
    """The photo as an RGB image."""
    if name == "grace_hopper":
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return Image.open(Path(path)).convert("RGB")
    if name in ("china", "flower"):
        pixels = sklearn.datasets.load_sample_image(f"{name}.jpg")
    elif name in ("aero", "ascent"):
        pixels = getattr(pywt.data, name)()
    elif name in ("luispedro", "nuclear"):
        suffix = "jpg" if name == "luispedro" else "png"
        path = importlib.resources.files("mahotas.demos").joinpath("data", f"{name}.{suffix}")
        return Image.open(path).convert("RGB")
    elif name == "motorcycle":
        pixels = skimage.data.stereo_motorcycle()[0]
    else:
        pixels = getattr(skimage.data, name)()
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
