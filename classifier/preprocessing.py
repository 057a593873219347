"""The one image preprocessing path shared by training, evaluation and serving.

Only Pillow and NumPy: the web process imports this module too, and it must not pull in
TensorFlow. Rescaling and normalisation live inside the Keras model, so what leaves here is
raw uint8 RGB pixels at the model's input size.
"""

import contextlib
import threading

import numpy as np
from PIL import Image, ImageOps

HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
# Model inputs, thumbnails and heatmap overlays are all far smaller than this, and a photo of 40
# megapixels is 120 MB decoded: decoded images are kept at most this large on their longer side.
WORKING_SIDE = 1024
# Full decodes of images larger than that, one at a time in each process (web or worker thread).
LARGE_DECODES = threading.BoundedSemaphore(1)


def prepare_image(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Orient, convert and resize a decoded image into a (height, width, 3) uint8 array.

    `size` is (height, width), the order Keras input shapes use.
    """
    image = to_rgb(ImageOps.exif_transpose(image))
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in HIGH_BIT_DEPTH_MODES:
        # Pillow's convert() clips 16-bit values at 255 (a washed-out white image); keep the
        # top 8 bits instead.
        pixels = np.clip(np.asarray(image, dtype=np.float64), 0, 65535).astype(np.uint16)
        image = Image.fromarray((pixels >> 8).astype(np.uint8), "L")
    if image.mode != "RGB":
        # Composite transparency onto white: a transparent background is "nothing", and black
        # would read as a dark object to the model.
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = image.convert("RGB")
    return image


def decode_image(path_or_file) -> Image.Image:
    """Decode an image file (the first frame of an animation), upright, in RGB and at most
    WORKING_SIDE on its longer side (reduced with an antialiasing filter). A large JPEG decodes
    at the smallest of 1/2, 1/4 or 1/8 scale that stays above that size; any other large image
    decodes in full, one at a time per process."""
    with Image.open(path_or_file) as image:
        image.seek(0)
        image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))
        with (
            LARGE_DECODES
            if image.width * image.height > WORKING_SIDE**2
            else contextlib.nullcontext()
        ):
            image = to_rgb(ImageOps.exif_transpose(image))
            image.thumbnail(
                (WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS, reducing_gap=None
            )
        return image


def load_image_array(path_or_file, size: tuple[int, int]) -> np.ndarray:
    """Decode an image file and prepare it for the model."""
    return prepare_image(decode_image(path_or_file), size)
