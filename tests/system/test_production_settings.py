"""DJANGO_ENV=production: `check --deploy` passes with a complete environment, missing secrets
fail loudly, and logs are JSON lines on stdout."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "imageclass.example.com",
    "MONGODB_URI": "mongodb://mongodb:27017/?replicaSet=rs0",
    "REDIS_URL": "redis://redis:6379/0",
    "S3_ENDPOINT_URL": "http://minio:9000",
    "S3_ACCESS_KEY": "imageclass",
    "S3_SECRET_KEY": secrets.token_urlsafe(30),
}


def manage(*args, **env):
    """manage.py in a clean environment: only the variables given (and what Python needs)."""
    environment = {"PATH": os.environ["PATH"], "VAR_DIR": os.environ["VAR_DIR"], **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_without_object_storage_is_warned_about():
    environment = {k: v for k, v in PRODUCTION.items() if k != "S3_ENDPOINT_URL"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **environment)
    assert result.returncode != 0
    assert "imageclass.W002" in result.stderr


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "ALLOWED_HOSTS", "MONGODB_URI", "REDIS_URL", "S3_SECRET_KEY"]
)
def test_a_missing_secret_or_address_fails_loudly(missing):
    environment = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **environment)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_debug_is_refused_in_production():
    result = manage("check", DEBUG="true", **PRODUCTION)
    assert result.returncode != 0 and "DEBUG=true is not allowed" in result.stderr


def test_production_serves_https_only_except_health_probes_and_logs_json_to_stdout():
    probe = (
        "import logging, django; django.setup(); from django.conf import settings as s; "
        "from django.test import Client; client = Client(HTTP_HOST='imageclass.example.com'); "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.DEBUG, "
        "client.get('/').status_code, client.get('/healthz').status_code); "
        "logging.getLogger('imageclass.probe').warning('hello %s', 'world')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": os.environ["PATH"],
            "VAR_DIR": os.environ["VAR_DIR"],
            "DJANGO_SETTINGS_MODULE": "imageclass.settings",
            **PRODUCTION,
        },
    )
    assert result.returncode == 0, result.stderr
    flags, log_line = result.stdout.strip().splitlines()
    # Plain HTTP is redirected to HTTPS, except the health probe containers use.
    assert flags == "True True 31536000 False 301 200"
    entry = json.loads(log_line)
    assert (
        entry["level"] == "WARNING"
        and entry["logger"] == "imageclass.probe"
        and entry["message"] == "hello world"
    )
