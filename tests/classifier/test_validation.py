import pytest

from classifier.validation import InvalidImage, inspect_image
from tests import badimages


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The file is empty."),
        (b"just some text, renamed to photo.jpg\n", "not an image in a supported format"),
        (badimages.svg(), "not an image in a supported format"),
        (badimages.tiff(), "not an image in a supported format"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image in a supported format"),
        (badimages.truncated_jpeg(), "truncated or corrupt"),
        (badimages.jpeg()[:20], "not an image in a supported format"),
        (badimages.png_bomb(), "megapixels are accepted"),
        (badimages.gif_bomb(), "megapixels are accepted"),
    ],
    ids=["empty", "text", "svg", "tiff", "pdf", "truncated", "header-only", "png-bomb", "gif-bomb"],
)
def test_bad_bytes_are_refused_with_a_clear_reason(data, message):
    with pytest.raises(InvalidImage, match=message):
        inspect_image(data)


def test_size_cap(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    with pytest.raises(InvalidImage, match="larger than"):
        inspect_image(badimages.jpeg((256, 256)))


@pytest.mark.parametrize(
    "data, format, size",
    [
        (badimages.jpeg(), "JPEG", (64, 48)),
        (badimages.exif_rotated_jpeg(), "JPEG", (80, 40)),
        (badimages.cmyk_jpeg(), "JPEG", (32, 32)),
        (badimages.sixteen_bit_png(), "PNG", (32, 32)),
        (badimages.palette_png_with_transparency(), "PNG", (16, 16)),
        (badimages.animated_gif(), "GIF", (32, 32)),
        (badimages.encode(badimages.photo(), "WEBP"), "WEBP", (64, 48)),
        (badimages.encode(badimages.photo(), "BMP"), "BMP", (64, 48)),
    ],
    ids=[
        "jpeg",
        "exif-rotated",
        "cmyk",
        "16-bit-png",
        "palette-alpha",
        "animated-gif",
        "webp",
        "bmp",
    ],
)
def test_accepted_images_report_format_size_and_digest(data, format, size):
    info = inspect_image(data)
    assert (info.format, (info.width, info.height), info.size) == (format, size, len(data))
    assert len(info.sha256) == 64
    assert info.content_type.startswith("image/")
