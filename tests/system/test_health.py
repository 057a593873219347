import json
import os
import subprocess
import sys

from django.conf import settings

from imageclass.embedded import free_port
from tests.conftest import broker_down


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency(client, active_model):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "storage",
        "broker",
        "model",
    }
    assert body["checks"]["model"]["version"] == "tiny v1"


def test_readyz_is_503_without_an_active_model(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["model"] == {
        "ok": False,
        "error": "LookupError: no model version is active",
    }


def test_readyz_shows_a_model_fallback(client, active_model):
    active_model.record_load_error("sha256 mismatch")
    check = client.get("/readyz").json()["checks"]["model"]
    assert check["ok"] is True and "sha256 mismatch" in check["fallback"]


def test_readyz_is_503_for_a_mongodb_older_than_8(client, active_model, monkeypatch):
    from pymongo.database import Database

    command = Database.command

    def mongodb_7(self, name, *args, **kwargs):
        answer = command(self, name, *args, **kwargs)
        return {**answer, "maxWireVersion": 21} if name == "hello" else answer

    monkeypatch.setattr(Database, "command", mongodb_7)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "MongoDB 8.0 or newer is required" in response.json()["checks"]["database"]["error"]


def test_readyz_is_503_when_the_broker_is_down(client, active_model):
    with broker_down():
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


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
        [sys.executable, "-c", script],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["status"] == "unavailable"
    assert answer["body"]["checks"]["database"]["ok"] is False
    assert "ServerSelectionTimeoutError" in answer["body"]["checks"]["database"]["error"]
