"""Training datasets uploaded as a zip of class folders: checked like any upload, unpacked safely.

The archive is untrusted. `inspect_archive` refuses it, with the reason, when it is too large,
holds too many files, would expand too far (a zip bomb), names a path outside its folder
(zip-slip: absolute paths, `..`, drive letters, backslashes), holds links, nested archives or
files that are not images, or does not have the `<class>/<image>` shape (optionally inside one
top folder). `unpack` writes every image under a name of our own making and decodes it with
the upload validation, so nothing the archive names reaches the filesystem.
"""

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from classifier.validation import CLASS_NAME, InvalidImage, inspect_image

# The first bytes of the formats uploads accept (decoding later decides, this refuses early).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
ARCHIVE_SIGNATURES = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh", b"\xfd7zXZ")
MAX_EXPANSION = 200  # a member over 1 MiB that expands more than this many times is a zip bomb
# Below this, a whole archive may expand as far as it likes: a few small solid-colour images
# compress very well and harm nothing.
SMALL_UNPACKED_BYTES = 16 * 2**20
MIN_IMAGES_PER_CLASS = 2


class InvalidArchive(ValueError):
    """The archive is refused; the message says why."""


@dataclass
class ArchiveSummary:
    class_counts: dict[str, int]  # class name -> images
    members: list[tuple[str, str]]  # (member name, class name) of every image

    @property
    def images(self) -> int:
        return len(self.members)


def is_image_signature(head: bytes) -> bool:
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def member_class(info: zipfile.ZipInfo, wrapper: str | None) -> tuple[str, str] | None:
    """(class, file name) of a member, None for folders and hidden files; raises for paths
    that leave the archive or do not fit `<class>/<image>`."""
    name = info.filename
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise InvalidArchive(f"{name!r}: absolute or Windows paths are not allowed.")
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in parts):
        raise InvalidArchive(f"{name!r}: paths may not contain '..'.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidArchive(f"{name!r}: links are not allowed.")
    if info.is_dir() or any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return None
    if wrapper is not None:
        parts = parts[1:]
    if len(parts) != 2:
        raise InvalidArchive(
            f"{name!r}: expected <class folder>/<image>; nested folders are not allowed."
        )
    if not CLASS_NAME.match(parts[0]):
        raise InvalidArchive(
            f"{name!r}: class folder names are letters, digits, spaces and . _ + - (at most 100)."
        )
    return parts[0], parts[1]


def single_top_folder(infos) -> str | None:
    """The one folder everything sits in when someone zipped the dataset's folder itself."""
    files = [
        PurePosixPath(i.filename).parts
        for i in infos
        if not i.is_dir() and not i.filename.startswith(("__MACOSX", "."))
    ]
    tops = {parts[0] for parts in files}
    return files[0][0] if len(tops) == 1 and all(len(parts) >= 3 for parts in files) else None


def inspect_archive(upload) -> ArchiveSummary:
    """Check an uploaded zip (a file object) without unpacking it; raises InvalidArchive."""
    upload.seek(0, 2)
    size = upload.tell()
    upload.seek(0)
    if size > settings.TRAINING_ZIP_MAX_BYTES:
        raise InvalidArchive(
            f"The archive is larger than {settings.TRAINING_ZIP_MAX_BYTES // 2**20} MB."
        )
    if not zipfile.is_zipfile(upload):
        raise InvalidArchive("This is not a zip archive.")
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            return summarise(archive)
    # RuntimeError: an encrypted member; zlib.error: corrupt compressed data.
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        OSError,
        RuntimeError,
        zlib.error,
    ) as exc:
        raise InvalidArchive(
            f"The archive is corrupt or uses an unsupported feature: {exc}"
        ) from None


def summarise(archive: zipfile.ZipFile) -> ArchiveSummary:
    infos = archive.infolist()
    if len(infos) > settings.TRAINING_ZIP_MAX_FILES:
        raise InvalidArchive(
            f"The archive holds {len(infos)} entries; at most {settings.TRAINING_ZIP_MAX_FILES} are allowed."
        )
    unpacked, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
    if unpacked > settings.TRAINING_ZIP_MAX_UNPACKED_BYTES:
        raise InvalidArchive(
            f"The archive expands beyond {settings.TRAINING_ZIP_MAX_UNPACKED_BYTES // 2**20} MB."
        )
    # The members' own check spares small ones, so many small members could still add up to a
    # bomb (300 zero-filled BMPs: 348 KB to 339 MB): the whole archive is held to a ratio too.
    if unpacked > SMALL_UNPACKED_BYTES and unpacked > settings.TRAINING_ZIP_MAX_EXPANSION * max(
        packed, 1
    ):
        raise InvalidArchive(
            f"The archive expands {unpacked // max(packed, 1)} times (at most {settings.TRAINING_ZIP_MAX_EXPANSION}): a zip bomb?"
        )
    wrapper = single_top_folder(infos)
    counts, members = {}, []
    for info in infos:
        placed = member_class(info, wrapper)
        if placed is None:
            continue
        if info.file_size > settings.MAX_UPLOAD_BYTES:
            raise InvalidArchive(f"{info.filename!r} is larger than an upload may be.")
        if info.file_size > MAX_EXPANSION * max(info.compress_size, 1) and info.file_size > 2**20:
            raise InvalidArchive(f"{info.filename!r} expands suspiciously far (a zip bomb?).")
        with archive.open(info) as member:
            head = member.read(16)
        if head.startswith(ARCHIVE_SIGNATURES) or info.filename.lower().endswith(
            (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar")
        ):
            raise InvalidArchive(f"{info.filename!r}: nested archives are not allowed.")
        if not is_image_signature(head):
            raise InvalidArchive(
                f"{info.filename!r} is not an image (JPEG, PNG, GIF, WebP or BMP)."
            )
        counts[placed[0]] = counts.get(placed[0], 0) + 1
        members.append((info.filename, placed[0]))
    if len(counts) < 2:
        raise InvalidArchive("The archive needs at least two class folders of images.")
    few = sorted(name for name, count in counts.items() if count < MIN_IMAGES_PER_CLASS)
    if few:
        raise InvalidArchive(
            f"Every class needs at least {MIN_IMAGES_PER_CLASS} images; too few in: {', '.join(few)}."
        )
    return ArchiveSummary(dict(sorted(counts.items())), members)


def unpack(path: Path, destination: Path) -> tuple[Path, list[str]]:
    """Unpack a checked archive into `destination/<class>/<n>.<ext>`, decoding every image with
    the upload validation. Returns the folder and the images refused (with their reasons)."""
    destination = Path(destination)
    refused = []
    with zipfile.ZipFile(path) as archive:
        summary = summarise(archive)
        for index, (name, class_name) in enumerate(summary.members):
            data = archive.read(name)
            try:
                info = inspect_image(data)
            except InvalidImage as exc:
                refused.append(f"{name}: {exc}")
                continue
            folder = destination / class_name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:06d}.{info.extension}").write_bytes(data)
    return destination, refused
