"""The stored files of a classification: the uploaded image, the worker's thumbnail and the
Grad-CAM overlay, under keys of the default storage that are never reused."""

import io
import logging
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone
from PIL import Image

from imageclass.middleware import ServiceUnavailable
from imageclass.storage import STORAGE_ERRORS

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256


class StorageUnavailable(ServiceUnavailable):
    """The image could not be stored."""


def image_key(owner, extension: str) -> str:
    now = timezone.now()
    folder = str(owner.pk) if owner else "anon"
    return f"images/{folder}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}.{extension}"


def save_image(data: bytes, owner, extension: str) -> str:
    """Store an upload under a new key; StorageUnavailable when the storage refuses."""
    try:
        return storages["default"].save(image_key(owner, extension), ContentFile(data))
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable("Image storage is unavailable; please try again shortly.") from exc


def read_image(classification) -> bytes:
    with storages["default"].open(classification.image_key, "rb") as f:
        return f.read()


def derived_key(classification, folder: str) -> str:
    """The key of a JPEG made from the image, in `folder` instead of images/."""
    return classification.image_key.replace("images/", f"{folder}/", 1).rsplit(".", 1)[0] + ".jpg"


def save_jpeg(image, key: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return storages["default"].save(key, ContentFile(buffer.getvalue()))


def store_thumbnail(classification, image) -> str:
    """Save a small JPEG of the decoded `image` next to the original; returns its key. A JPEG
    original no larger than a thumbnail is its own (a worker saves most of its work on a small
    image that way)."""
    if classification.format == "JPEG" and (
        max(classification.width, classification.height) <= THUMBNAIL_SIZE
    ):
        return classification.image_key
    thumbnail = image.copy()
    thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    return save_jpeg(thumbnail, derived_key(classification, "thumbnails"))


def store_heatmap(classification, overlay) -> bool:
    """Save the overlay (a PIL image) and record it, unless one was recorded meanwhile."""
    key = save_jpeg(overlay, derived_key(classification, "heatmaps"))
    if classification.transition({"heatmap_key": ""}, heatmap_key=key):
        return True
    storages["default"].delete(key)
    return False


def stored_keys(classification) -> list[str]:
    keys = (classification.image_key, classification.thumbnail_key, classification.heatmap_key)
    return [key for key in dict.fromkeys(keys) if key]


def delete_files(keys: list[str], pk):
    """Delete a deleted record's files: an orphaned file is harmless, so a failure is logged."""
    for key in keys:
        try:
            storages["default"].delete(key)
        except STORAGE_ERRORS as exc:
            log.warning("classification %s deleted; its file %s was not: %s", pk, key, exc)
