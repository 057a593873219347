"""The owners' corrections as a training dataset: the images they corrected, filed under the
right labels, in a zip that the admin's training form takes as it is."""

import logging
import zipfile

from classifier import files
from imageclass.storage import STORAGE_ERRORS

log = logging.getLogger(__name__)


def write_dataset(corrections, target) -> int:
    """Write the corrected images into the zip file object `target` as an image-folder
    dataset (<right label>/<id>.<ext>), ready to upload as training data. Returns how
    many images it holds; those whose file is gone are left out."""
    written = 0
    # Stored, not deflated: the images are compressed already.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for correction in corrections.exclude(corrected_label="").iterator():
            try:
                data = files.read_image(correction)
            except (FileNotFoundError, *STORAGE_ERRORS) as exc:
                log.warning("correction %s left out of the export: %s", correction.pk, exc)
                continue
            extension = correction.image_key.rsplit(".", 1)[-1]
            archive.writestr(f"{correction.corrected_label}/{correction.pk}.{extension}", data)
            written += 1
    return written
