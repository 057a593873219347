"""Validation of untrusted image bytes: the format is what Pillow decodes, never the name or
the declared content type.

Checks, in order: not empty, at most settings.MAX_UPLOAD_BYTES, decodable as one of the
allowed formats, at most settings.MAX_IMAGE_PIXELS (read from the header, before any pixel is
decoded), and the first frame decodes completely (truncated or corrupt files fail here).
"""

import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

# Pillow format name -> (file extension, content type)
ALLOWED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
}
FORMAT_NAMES = "JPEG, PNG, GIF, WebP or BMP"


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
                image.load()  # decodes the first frame: truncated data fails here
                image_format = image.format
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(f"The image has too many pixels; {pixel_cap()}") from None
    except UnidentifiedImageError:
        raise InvalidImage(f"This is not an image in a supported format ({FORMAT_NAMES}).") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
        raise InvalidImage("The image is truncated or corrupt.") from None
    return ImageInfo(image_format, width, height, len(data), hashlib.sha256(data).hexdigest())

