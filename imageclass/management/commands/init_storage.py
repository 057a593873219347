import os

from django.core.files.storage import FileSystemStorage, storages
from django.core.management.base import BaseCommand

from imageclass.storage import ensure_private_bucket

STORAGE_NAMES = ("default", "models")


class Command(BaseCommand):
    help = (
        "Prepare the file storages: create the private S3/MinIO buckets when missing (and remove "
        "any bucket policy), or the local folders. Safe to run on every start."
    )

    def handle(self, *args, **options):
        for name in STORAGE_NAMES:
            storage = storages[name]
            if isinstance(storage, FileSystemStorage):
                os.makedirs(storage.location, exist_ok=True)
                self.stdout.write(f"{name}: folder {storage.location}")
            else:
                self.stdout.write(f"{name}: {ensure_private_bucket(storage)}")
