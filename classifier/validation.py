"""Validation of untrusted image bytes: the format is what Pillow decodes, never the name or
the declared content type.

Checks, in order: not empty, at most settings.MAX_UPLOAD_BYTES, decodable as one of the
allowed formats, at most settings.MAX_IMAGE_PIXELS (read from the header, before any pixel is
decoded), and the first frame decodes (truncated or corrupt files fail here; see check_decodes
for large images).
"""

import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from classifier.preprocessing import LARGE_DECODES

# Pillow format name -> (file extension, content type)
ALLOWED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
}
FORMAT_LIST = "JPEG, PNG, GIF, WebP, BMP"
FORMAT_NAMES = "JPEG, PNG, GIF, WebP or BMP"
# Images up to this size are checked by decoding them in full (at most 16 MB of RGBA).
FULL_DECODE_PIXELS = 4_000_000


# A class name that is also a safe folder name in image-folder datasets (letters, digits,
# spaces and . _ + -, starting with a letter or digit).
CLASS_NAME = re.compile(r"^[\w][\w .+-]{0,99}$")


class InvalidImage(ValueError):
    """The bytes are not an acceptable image; the message is meant for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    size: int
    sha256: str

    @property
    def extension(self) -> str:
        return ALLOWED_FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return ALLOWED_FORMATS[self.format][1]


def megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB"


def pixel_cap() -> str:
    return f"at most {settings.MAX_IMAGE_PIXELS / 1e6:g} megapixels are accepted."


def check_decodes(image: Image.Image) -> None:
    """Decode the first frame (truncated or corrupt data fails here) without holding more
    pixels than needed: a large JPEG decodes at 1/8 scale (the whole stream is still read), a
    large PNG has every chunk's checksum verified instead, and any other large image decodes
    in full, one at a time per process (preprocessing.LARGE_DECODES)."""
    if image.width * image.height <= FULL_DECODE_PIXELS:
        image.load()
    elif image.format == "JPEG":
        image.draft(image.mode, (image.width // 8, image.height // 8))
        image.load()
    elif image.format == "PNG":
        image.verify()
    else:
        with LARGE_DECODES:
            image.load()


def inspect_image(data: bytes) -> ImageInfo:
    """Return what the bytes are, or raise InvalidImage saying why they are refused."""
    if not data:
        raise InvalidImage("The file is empty.")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise InvalidImage(f"The file is larger than {megabytes(settings.MAX_UPLOAD_BYTES)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as image:
                width, height = image.size
                if width * height > settings.MAX_IMAGE_PIXELS:
                    raise InvalidImage(f"The image is {width}x{height} pixels; {pixel_cap()}")
                image.seek(0)
                check_decodes(image)
                image_format = image.format
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(f"The image has too many pixels; {pixel_cap()}") from None
    except UnidentifiedImageError:
        raise InvalidImage(
            f"This is not an image in a supported format ({FORMAT_NAMES})."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
        raise InvalidImage("The image is truncated or corrupt.") from None
    return ImageInfo(image_format, width, height, len(data), hashlib.sha256(data).hexdigest())
