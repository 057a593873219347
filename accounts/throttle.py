"""Login throttling: count failed attempts per username and per client address in the cache.

After settings.LOGIN_FAILURE_LIMIT failures on either key within LOGIN_LOCKOUT_SECONDS, further
attempts are refused until the window expires. A successful login clears the username's count
(not the address's: one address guessing many usernames stays throttled).
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, address: str) -> list[str]:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{digest}", f"login-fail:addr:{address}"]


def client_address(request) -> str:
    # REMOTE_ADDR only: a forwarded-for header is client-controlled unless a trusted proxy
    # sets it, and the production proxy configuration rewrites REMOTE_ADDR itself.
    return request.META.get("REMOTE_ADDR", "unknown")


def seconds_locked(username: str, address: str) -> int:
    """Seconds until another attempt is allowed; 0 when attempts are allowed now."""
    now = time.time()
    waits = []
    for key in _keys(username, address):
        record = cache.get(key)
        if record and record["count"] >= settings.LOGIN_FAILURE_LIMIT:
            waits.append(record["first"] + settings.LOGIN_LOCKOUT_SECONDS - now)
    return max(0, int(max(waits, default=0)) + (1 if waits else 0))


def record_failure(username: str, address: str) -> None:
    now = time.time()
    for key in _keys(username, address):
        record = cache.get(key) or {"count": 0, "first": now}
        record["count"] += 1
        remaining = max(1, int(record["first"] + settings.LOGIN_LOCKOUT_SECONDS - now))
        cache.set(key, record, timeout=remaining)


def clear_user(username: str, address: str) -> None:
    cache.delete(_keys(username, address)[0])


class LockedOut(Exception):
    def __init__(self, seconds: int):
        super().__init__(f"locked out for {seconds} s")
        self.seconds = seconds


def attempt(username: str, address: str, check):
    """Run the credential check `check()` under the lockout rules: refuse (LockedOut) while
    locked; count a failure when it returns None or raises; clear the username on success."""
    wait = seconds_locked(username, address)
    if wait:
        raise LockedOut(wait)
    try:
        result = check()
    except Exception:
        record_failure(username, address)
        raise
    if result is None:
        record_failure(username, address)
    else:
        clear_user(username, address)
    return result
