"""Telling a waiting request that a job ended, so clients can ask for a result with `?wait=N`
instead of polling: a poll costs a whole request, a wait costs nothing until the job ends.

The worker pushes onto a short-lived Redis list per job that the web process blocks on; every
machine sees it.
"""

from django.conf import settings

from imageclass.cache import redis_client

SIGNAL_LIFETIME = 600  # seconds a job's "ended" signal is kept for late waiters
MAX_WAIT = 10.0  # seconds; longer requests would tie up the web server's threads


def connection():
    # A blocking read may take the whole wait, then up to the usual timeout.
    return redis_client(settings.REDIS_URL, read_timeout=MAX_WAIT + settings.REDIS_TIMEOUT)


def signal_key(pk) -> str:
    return f"imageclass:ended:{pk}"


def jobs_ended(pks):
    """Signal the end of the jobs `pks` (called by the worker after their outcomes are
    stored), in one round trip."""
    with connection().pipeline() as pipe:
        for pk in pks:
            pipe.lpush(signal_key(pk), 1).expire(signal_key(pk), SIGNAL_LIFETIME)
        pipe.execute()


def wait_for_end(pk, timeout: float) -> bool:
    """Block up to `timeout` seconds until job `pk` has ended; True when it has."""
    # Pop and push back in one step: the signal stays for any other waiter.
    return connection().blmove(signal_key(pk), signal_key(pk), timeout, "RIGHT", "LEFT") is not None
