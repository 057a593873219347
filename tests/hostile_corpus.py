"""The bad-input corpus: malformed, hostile and unusual uploads, generated (no binary blobs in
git). Each case says whether the service must accept it (a correct result) or refuse it (a
clear 4xx, nothing stored).

    python -m tests.hostile_corpus OUTDIR    # writes every file (name-safe) and a manifest.json
"""

import io
import json
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tests import badimages

ACCEPT, REFUSE = "accept", "refuse"


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    make: callable
    expect: str

    @property
    def data(self) -> bytes:
        return self.make()


def encode(image, format, **params):
    return badimages.encode(image, format, **params)


def small(mode="RGB", size=(48, 32), colour=(200, 30, 30)):
    return Image.new(mode, size, colour)


def oversized_upload() -> bytes:
    from django.conf import settings

    return badimages.jpeg() + b"\0" * settings.MAX_UPLOAD_BYTES


def jpeg_claiming(width, height) -> bytes:
    """A small JPEG whose frame header (SOF0) claims width x height."""
    data = bytearray(encode(small(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width, height) -> bytes:
    data = bytearray(encode(small(), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def extended_webp() -> bytes:
    """A still WebP in the extended (VP8X) layout, which has a canvas size header."""
    image = small()
    exif = image.getexif()
    exif[0x010E] = "canvas"
    return encode(image, "WEBP", exif=exif)


def webp_claiming(width, height, webp: bytes) -> bytes:
    """The extended WebP `webp` with its canvas header claiming width x height."""
    data = bytearray(webp)
    vp8x = data.index(b"VP8X")
    data[vp8x + 12 : vp8x + 18] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(
        3, "little"
    )
    return bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width, height) -> bytes:
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def animated(format, frames, size=(16, 16)) -> bytes:
    images = [
        Image.new("RGB", size, (i * 7 % 256, i * 13 % 256, i * 29 % 256)) for i in range(frames)
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format, save_all=True, append_images=images[1:], duration=20, loop=0)
    return buffer.getvalue()


def oriented(orientation: int) -> bytes:
    image = badimages.photo((60, 30))
    exif = image.getexif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif)


def jpeg_with_zip_appended() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return badimages.jpeg() + buffer.getvalue()


def gif_with_html_comment() -> bytes:
    return encode(small("P", colour=1), "GIF", comment=b"<script>alert(document.cookie)</script>")


def html_prefixed_png() -> bytes:
    return b"<html><script>alert(1)</script></html>" + encode(small(), "PNG")


def pdf() -> bytes:
    buffer = io.BytesIO()
    small().save(buffer, "PDF")
    return buffer.getvalue()


CASES = [
    # Empty, huge, truncated, not images at all
    Case("empty", "empty.jpg", lambda: b"", REFUSE),
    Case("over the size cap", "huge.jpg", oversized_upload, REFUSE),
    Case("truncated JPEG", "truncated.jpg", badimages.truncated_jpeg, REFUSE),
    Case(
        "truncated PNG",
        "truncated.png",
        lambda: encode(badimages.photo((64, 64)), "PNG")[:300],
        REFUSE,
    ),
    Case("text named .jpg", "notes.jpg", lambda: b"just some text, not an image\n" * 10, REFUSE),
    Case("random bytes", "noise.png", lambda: bytes(range(256)) * 40, REFUSE),
    Case("wrong magic", "magic.jpg", lambda: b"\x89PNX" + encode(small(), "PNG")[4:], REFUSE),
    Case("SVG with script", "vector.svg", badimages.svg, REFUSE),
    Case("SVG named .png", "vector.png", badimages.svg, REFUSE),
    Case("HTML page", "page.html", lambda: b"<!doctype html><script>alert(1)</script>", REFUSE),
    Case(
        "HTML named .jpg", "page.jpg", lambda: b"<html><body onload=alert(1)></body></html>", REFUSE
    ),
    Case("HTML before a PNG", "polyglot.png", html_prefixed_png, REFUSE),
    Case("PDF", "document.pdf", pdf, REFUSE),
    Case("PDF named .jpg", "document.jpg", pdf, REFUSE),
    Case("TIFF (not accepted)", "scan.tiff", badimages.tiff, REFUSE),
    Case(
        "ZIP archive",
        "archive.jpg",
        lambda: jpeg_with_zip_appended()[len(badimages.jpeg()) :],
        REFUSE,
    ),
    # Decompression bombs of every accepted format
    Case("PNG bomb", "bomb.png", badimages.png_bomb, REFUSE),
    Case("PNG header bomb", "header-bomb.png", lambda: png_claiming(60_000, 60_000), REFUSE),
    Case("GIF bomb", "bomb.gif", badimages.gif_bomb, REFUSE),
    Case("JPEG header bomb", "bomb.jpg", lambda: jpeg_claiming(65_000, 65_000), REFUSE),
    Case(
        "WebP canvas bomb",
        "bomb.webp",
        lambda: webp_claiming(16_000, 16_000, extended_webp()),
        REFUSE,
    ),
    Case("BMP header bomb", "bomb.bmp", lambda: bmp_claiming(50_000, 50_000), REFUSE),
    Case(
        "animated WebP, huge canvas",
        "huge-anim.webp",
        lambda: webp_claiming(16_383, 16_383, animated("WEBP", 5)),
        REFUSE,
    ),
    # Unusual but valid: a correct result
    Case("JPEG with a ZIP appended", "polyglot.jpg", jpeg_with_zip_appended, ACCEPT),
    Case("GIF with HTML in a comment", "comment.gif", gif_with_html_comment, ACCEPT),
    Case("PNG named .jpg", "actually-png.jpg", lambda: encode(small(), "PNG"), ACCEPT),
    Case("animated GIF, 300 frames", "many.gif", lambda: animated("GIF", 300), ACCEPT),
    Case("animated WebP, 100 frames", "many.webp", lambda: animated("WEBP", 100), ACCEPT),
    Case(
        "animated GIF, large frames", "large.gif", lambda: animated("GIF", 3, (2000, 1500)), ACCEPT
    ),
    Case("CMYK JPEG", "cmyk.jpg", badimages.cmyk_jpeg, ACCEPT),
    Case("16-bit PNG", "sixteen.png", badimages.sixteen_bit_png, ACCEPT),
    Case("palette PNG with alpha", "palette.png", badimages.palette_png_with_transparency, ACCEPT),
    Case(
        "RGBA WebP",
        "alpha.webp",
        lambda: encode(small("RGBA", colour=(0, 0, 255, 90)), "WEBP"),
        ACCEPT,
    ),
    Case("greyscale BMP", "grey.bmp", lambda: encode(small("L", colour=128), "BMP"), ACCEPT),
    Case("1x1 pixel", "dot.png", lambda: encode(small(size=(1, 1)), "PNG"), ACCEPT),
    Case("10000x1 pixels", "line.png", lambda: encode(small(size=(10_000, 1)), "PNG"), ACCEPT),
    Case("1x10000 pixels", "column.jpg", lambda: encode(small(size=(1, 10_000)), "JPEG"), ACCEPT),
    *[
        Case(f"EXIF orientation {n}", f"orientation-{n}.jpg", lambda n=n: oriented(n), ACCEPT)
        for n in range(1, 9)
    ],
    # Hostile file names on a valid image: stored without paths, shown escaped
    Case("path traversal name", "../../../etc/passwd.jpg", badimages.jpeg, ACCEPT),
    Case("Windows path name", "C:\\Windows\\System32\\evil.jpg", badimages.jpeg, ACCEPT),
    Case("300-character name", "n" * 296 + ".jpg", badimages.jpeg, ACCEPT),
    Case("right-to-left mark name", "photo\u202egpj.exe", badimages.jpeg, ACCEPT),
    Case("HTML in the name", "<img src=x onerror=alert(1)>\"'.jpg", badimages.jpeg, ACCEPT),
    Case(
        "script in the name",
        "<script>alert(document.cookie)</script>.png",
        lambda: encode(small(), "PNG"),
        ACCEPT,
    ),
    Case("NUL byte in the name", "cat\x00.php.jpg", badimages.jpeg, ACCEPT),
    Case("name of dots", "...", badimages.jpeg, ACCEPT),
]


def write(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for index, case in enumerate(CASES):
        stored_as = (
            f"{index:02d}-{Path(case.filename.replace(chr(0), '')).suffix.lstrip('.') or 'bin'}"
        )
        (folder / stored_as).write_bytes(case.data)
        manifest.append(
            {
                "file": stored_as,
                "name": case.name,
                "upload_filename": case.filename,
                "expect": case.expect,
            }
        )
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    django.setup()
    written = write(Path(sys.argv[1] if len(sys.argv) > 1 else "var/hostile-corpus"))
    print(f"{len(written)} files")
