"""Large images (a 116 KB PNG of 6300x6300 decodes to 120 MB): validation holds no full decode
it does not need, and the worker keeps a reduced copy. Peak memory is read from real processes
(a fresh interpreter's VmHWM, reset just before), since Pillow's buffers are invisible to tracemalloc."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from classifier.preprocessing import WORKING_SIDE, decode_image, prepare_image
from classifier.validation import InvalidImage, inspect_image

SIDE = 6300
PEAK = """
import io, json, sys
import django
django.setup()
from classifier.preprocessing import decode_image
from classifier.validation import inspect_image

def status_kb(field):
    return int(next(line for line in open("/proc/self/status") if line.startswith(field)).split()[1])

data = sys.stdin.buffer.read()
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
before = status_kb("VmRSS:")
{call}
print(json.dumps((status_kb("VmHWM:") - before) / 1024))
"""


def large(format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (200, 120, 40)).save(buffer, format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def large_png():
    return large("PNG", optimize=True)


@pytest.fixture(scope="module")
def large_jpeg():
    return large("JPEG", quality=75)


def peak_mb(data: bytes, call: str) -> float:
    """Megabytes a fresh interpreter's peak RSS grew by while running `call` on `data`."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK.format(call=call)],
        input=data,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["large_png", "large_jpeg"])
def test_validation_holds_no_full_decode(kind, request):
    data = request.getfixturevalue(kind)
    assert len(data) < 1_000_000
    info = inspect_image(data)
    assert (info.width, info.height) == (SIDE, SIDE)
    assert peak_mb(data, "inspect_image(data)") < 30  # a full decode is 119 MB


def test_a_large_image_still_fails_when_corrupt(large_png, large_jpeg):
    for data in (large_png, large_jpeg):
        with pytest.raises(InvalidImage, match="truncated or corrupt"):
            inspect_image(data[: len(data) * 3 // 4])
    damaged = bytearray(large_png)
    damaged[len(damaged) // 2] ^= 0xFF  # inside the pixel data: its chunk's checksum fails
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        inspect_image(bytes(damaged))


def test_the_worker_decodes_a_large_jpeg_reduced(large_jpeg):
    image = decode_image(io.BytesIO(large_jpeg))
    assert max(image.size) == WORKING_SIDE and image.mode == "RGB"
    assert peak_mb(large_jpeg, "decode_image(io.BytesIO(data))") < 40


def test_a_reduced_decode_gives_the_model_what_a_full_one_would(large_png):
    reduced = prepare_image(decode_image(io.BytesIO(large_png)), (32, 32)).astype(int)
    with Image.open(io.BytesIO(large_png)) as full:
        direct = prepare_image(full.convert("RGB"), (32, 32)).astype(int)
    assert abs(reduced - direct).max() <= 1


def test_a_large_rotated_photo_reaches_the_model_alike_by_training_classify_and_the_worker(
    tmp_path, alice
):
    """A real photo at 13 megapixels, stored sideways with an EXIF orientation: every path
    turns it upright first, then reduces it with an antialiasing filter, to the same pixels."""
    from classifier.models import Classification
    from classifier.preprocessing import load_image_array
    from classifier.tasks import read_and_decode
    from mltrain.keras.datasets import load_image_folder
    from mltrain.keras.package_photos import load

    upright = load("chelsea").resize(
        (3000, 4500), Image.Resampling.BICUBIC
    )  # portrait, as it is shown
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # as the camera stored it
    exif = sideways.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    path = tmp_path / "photos" / "cat" / "chelsea.jpg"
    path.parent.mkdir(parents=True)
    sideways.save(path, "JPEG", quality=90, exif=exif)
    (tmp_path / "photos" / "cup").mkdir()
    load("coffee").save(
        tmp_path / "photos" / "cup" / "coffee.jpg"
    )  # a dataset has two classes at least
    size = (32, 32)

    training = load_image_folder(tmp_path / "photos", size).images[
        0
    ]  # `train` and `evaluate` read folders so
    classify = load_image_array(path, size)  # `classify` and `classify_files`
    job = Classification.store(path.read_bytes(), owner=alice, filename="chelsea.jpg")
    job.started_at = job.created_at
    _, worker, _ = read_and_decode(job, size)
    np.testing.assert_array_equal(training, classify)
    np.testing.assert_array_equal(training, worker)

    def difference(image):
        return np.abs(training.astype(int) - np.asarray(image, dtype=int)).mean()

    antialiased = upright.resize((32, 32), Image.Resampling.LANCZOS)
    assert (
        difference(antialiased) < 1
    )  # upright and filtered: what a single full-size reduction gives
    assert difference(upright.resize((32, 32), Image.Resampling.NEAREST)) > 2 * difference(
        antialiased
    )
    assert difference(sideways.resize((32, 32), Image.Resampling.LANCZOS)) > 10
