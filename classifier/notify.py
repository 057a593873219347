"""Telling a waiting request that a job ended, so clients can ask for a result with `?wait=N`
instead of polling: a poll costs a whole request, a wait costs nothing until the job ends.

With Redis (REDIS_URL) the worker pushes onto a short-lived list per job that the web process
blocks on; every machine sees it. Without Redis (`make run`, one machine) the worker writes an
empty marker file that the web process checks for.
"""

import functools
import time
from pathlib import Path

from django.conf import settings

MARKER_LIFETIME = 600  # seconds a job's "ended" signal is kept for late waiters
MAX_WAIT = 10.0  # seconds; longer requests would tie up the web server's threads
FILE_POLL_SECONDS = 0.01


def _redis():
    return _client(settings.REDIS_URL)


@functools.cache
def _client(url: str):
    """One client (and connection pool) per process and URL: a new client per call cost a new
    connection per request. redis-py starts a fresh pool in a forked child by itself."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=MAX_WAIT + 5)


def _key(pk) -> str:
    return f"imageclass:ended:{pk}"


def _marker(pk) -> Path:
    return Path(settings.VAR_DIR) / "ended" / str(pk)


def job_ended(pk):
    """Signal the end of job `pk` (called by the worker after its outcome is stored)."""
    if settings.REDIS_URL:
        with _redis().pipeline() as pipe:
            pipe.lpush(_key(pk), 1).expire(_key(pk), MARKER_LIFETIME).execute()
    else:
        _marker(pk).parent.mkdir(parents=True, exist_ok=True)
        _marker(pk).touch()


def wait_for_end(pk, timeout: float) -> bool:
    """Block up to `timeout` seconds until job `pk` has ended; True when it has."""
    if settings.REDIS_URL:
        # Pop and push back in one step: the signal stays for any other waiter.
        return _redis().blmove(_key(pk), _key(pk), timeout, "RIGHT", "LEFT") is not None
    deadline = time.monotonic() + timeout
    while not _marker(pk).exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(FILE_POLL_SECONDS)
    return True


def prune_markers(now=None):
    """Remove marker files older than MARKER_LIFETIME (Redis expires its keys itself)."""
    folder = Path(settings.VAR_DIR) / "ended"
    now = now or time.time()
    for marker in folder.glob("*") if folder.is_dir() else ():
        if now - marker.stat().st_mtime > MARKER_LIFETIME:
            marker.unlink(missing_ok=True)
