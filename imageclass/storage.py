"""Object storage: the S3 configuration of the two storages, the errors a storage can raise,
and bucket set-up.

Settings import this module, so it imports nothing from Django at module level.
"""

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# What a storage raises when it is unreachable or refuses: OSError for local folders, botocore's
# errors for S3 (a missing key is FileNotFoundError in both, an OSError).
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)

S3_BACKEND = "storages.backends.s3.S3Storage"
# Path-style addresses (MinIO serves buckets as paths, not subdomains), SigV4 signatures, and
# failing within seconds when the store is away (requests then answer 503) instead of
# botocore's minute-long default connect timeout.
S3_CLIENT_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    connect_timeout=3,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
)


def s3_storages(
    *, endpoint_url, access_key, secret_key, region_name, media_bucket, models_bucket, url_expire
):
    """STORAGES entries for uploaded images ("default") and model artifacts ("models")."""
    common = {
        "endpoint_url": endpoint_url,
        "access_key": access_key,
        "secret_key": secret_key,
        "region_name": region_name,
        "default_acl": None,  # objects inherit the private bucket's policy (MinIO has no ACLs)
        "file_overwrite": False,  # a taken key gets a new name; nothing is ever overwritten
        "querystring_auth": True,
        "querystring_expire": url_expire,
        "client_config": S3_CLIENT_CONFIG,  # overrides the backend's own addressing/signature options
    }
    return {
        "default": {"BACKEND": S3_BACKEND, "OPTIONS": {**common, "bucket_name": media_bucket}},
        "models": {"BACKEND": S3_BACKEND, "OPTIONS": {**common, "bucket_name": models_bucket}},
    }


def ensure_private_bucket(storage) -> str:
    """Create the storage's bucket when missing and remove any bucket policy, so nothing in it
    is readable without credentials. Returns what was done, for the command's output."""
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    try:
        client.head_bucket(Bucket=bucket)
        created = False
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
            raise
        client.create_bucket(Bucket=bucket)
        created = True
    client.delete_bucket_policy(Bucket=bucket)
    return f"bucket {bucket}: {'created' if created else 'exists'}, private"
