"""Liveness and readiness probes.

/healthz says the process answers. /readyz checks each dependency the service needs and
answers 503 when any of them fails, with what failed and why.
"""

import time

from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def check_database() -> None:
    connection = connections["default"]
    connection.ensure_connection()
    connection.connection.admin.command("ping")


READINESS_CHECKS = {"database": check_database}


def run_check(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a probe reports every failure, whatever its kind
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = {name: run_check(check) for name, check in READINESS_CHECKS.items()}
    ready = all(result["ok"] for result in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
