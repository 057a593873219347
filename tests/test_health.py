import json
import os
import subprocess
import sys

from django.conf import settings

from imageclass.embedded import free_port


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True


def test_readyz_answers_503_when_the_database_is_unreachable():
    # A separate process, so its settings point at a port where nothing listens.
    script = (
        "import django, json; django.setup();"
        "from django.test import Client; r = Client(HTTP_HOST='localhost').get('/readyz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imageclass.settings",
        "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        "MONGODB_TIMEOUT_MS": "300",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["status"] == "unavailable"
    assert answer["body"]["checks"]["database"]["ok"] is False
    assert "ServerSelectionTimeoutError" in answer["body"]["checks"]["database"]["error"]
