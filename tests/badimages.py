"""Generated bad and unusual image files for the validation tests (no binary blobs in git)."""

import io

import numpy as np
from PIL import Image


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def photo(size=(64, 48)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def jpeg(size=(64, 48)) -> bytes:
    return encode(photo(size), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    data = jpeg((256, 256))
    return data[: len(data) // 2]


def png_bomb(side=20_000) -> bytes:
    """A tiny PNG that claims side x side pixels (a 1-bit image compresses to almost nothing)."""
    return encode(Image.new("1", (side, side)), "PNG")


def gif_bomb(side=20_000) -> bytes:
    return encode(Image.new("P", (side, side)), "GIF")


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def animated_gif() -> bytes:
    frames = [
        Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    ]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    image = photo((80, 40))
    exif = image.getexif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif)


def palette_png_with_transparency() -> bytes:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return encode(image, "PNG", transparency=0)


def sixteen_bit_png() -> bytes:
    return encode(Image.fromarray((np.arange(1024).reshape(32, 32) * 64).astype(np.uint16)), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (32, 32), (0, 255, 0, 0)), "JPEG")


def tiff() -> bytes:
    return encode(photo(), "TIFF")
