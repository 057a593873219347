"""Liveness and readiness probes.

/healthz says the process answers. /readyz checks each dependency the service needs
(database, file storage, broker, an active model) and answers 503 when any of them fails,
with what failed and why.
"""

import time

from django.core.files.storage import storages
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classifier.models import ModelVersion
from imageclass.celery import app
from imageclass.middleware import RETRY_AFTER_SECONDS

MIN_WIRE_VERSION = 25  # MongoDB 8.0: its bulkWrite command is how a worker ends a batch


def check_database() -> None:
    connection = connections["default"]
    connection.ensure_connection()
    wire_version = connection.connection.admin.command("hello").get("maxWireVersion", 0)
    if wire_version < MIN_WIRE_VERSION:
        raise RuntimeError(
            f"MongoDB 8.0 or newer is required (the bulkWrite command); this server speaks wire version {wire_version}"
        )


def check_storage() -> None:
    for name in ("default", "models"):
        storages[name].exists("readyz-probe")  # a round trip; raises when unreachable


def check_broker() -> None:
    with app.connection_for_write() as connection:
        # One retry at once (each try waits up to REDIS_TIMEOUT), not after kombu's 2 s pause.
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)


def check_model() -> dict:
    active = ModelVersion.active()
    if active is None:
        raise LookupError("no model version is active")
    detail = {"version": str(active), "classes": len(active.class_names)}
    if active.load_error:
        detail["fallback"] = (
            f"workers cannot load it and serve an earlier version: {active.load_error}"
        )
    return detail


READINESS_CHECKS = {
    "database": check_database,
    "storage": check_storage,
    "broker": check_broker,
    "model": check_model,
}


def run_check(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
    except Exception as exc:  # a probe reports every failure, whatever its kind
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), **detail}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = {name: run_check(check) for name, check in READINESS_CHECKS.items()}
    ready = all(result["ok"] for result in checks.values())
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
    if not ready:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
