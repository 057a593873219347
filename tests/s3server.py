"""moto's S3-compatible server as a separate process on loopback, for the object-storage tests."""

import subprocess
import sys
import time
import urllib.request

import pytest

from imageclass.embedded import free_port, terminate


class S3Server:
    access_key, secret_key = "test-access-key", "test-secret-key"

    def __init__(self, log_path):
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"moto's S3 server did not start (see {log_path})")
                time.sleep(0.1)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def environment(self, media_bucket, models_bucket) -> dict:
        """The settings' environment variables, for processes (workers) the tests start."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_MEDIA_BUCKET": media_bucket,
            "S3_MODELS_BUCKET": models_bucket,
        }

    def stop(self):
        terminate(self.process)
        self.log.close()
