import io

import numpy as np
from PIL import Image

from classifier.preprocessing import load_image_array


def encoded(image: Image.Image, format: str, **params) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    buffer.seek(0)
    return buffer


def test_exif_orientation_is_applied():
    # A 40x20 landscape image stored with "rotate 90" (orientation 6) is shown as portrait.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    array = load_image_array(encoded(image, "JPEG", exif=exif, quality=95), (40, 20))
    assert array.shape == (40, 20, 3)
    # After rotating 90 degrees clockwise the red half is on top.
    assert array[:20, :, 0].mean() > 200 and array[20:, :, 0].mean() < 60


def test_transparency_is_composited_on_white_and_output_is_rgb():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    array = load_image_array(encoded(image, "PNG"), (8, 8))
    assert array.shape == (8, 8, 3) and (array == 255).all()


def test_palette_and_greyscale_images_become_rgb_at_the_requested_size():
    for image in (Image.new("P", (50, 30), 3), Image.new("L", (50, 30), 128)):
        array = load_image_array(encoded(image, "PNG"), (32, 32))
        assert array.shape == (32, 32, 3) and array.dtype == np.uint8


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    buffer.seek(0)
    array = load_image_array(buffer, (10, 10))
    assert array[..., 0].mean() > 200 and array[..., 2].mean() < 50


def test_sixteen_bit_greyscale_keeps_its_tones():
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    array = load_image_array(encoded(Image.fromarray(ramp), "PNG"), (64, 64))
    np.testing.assert_array_equal(array[..., 0], (ramp >> 8).astype(np.uint8))
    assert array.min() == 0 and array.max() == 255


def test_cmyk_jpeg_becomes_rgb():
    array = load_image_array(encoded(Image.new("CMYK", (20, 20), (0, 255, 0, 0)), "JPEG"), (8, 8))
    assert array.shape == (8, 8, 3)
    assert array[0, 0, 1] < 30 and array[0, 0, 0] > 220  # magenta
