"""API rate limits counted in Redis, checked and recorded in one atomic step.

DRF's throttles keep each client's request times as a pickled list in the cache: a read, then
a write of the whole list. Concurrent requests overwrite each other's entries (so a client
gets more than its rate), and every request moves the list both ways: thousands of entries
for a busy address. Here each window is a Redis sorted set of request times, and one Lua
script trims and counts every window a request falls in, then records it in all of them or in
none: one round trip per request, exact under concurrency, and a request refused by one
window (the address's, say) does not use up the caller's allowance in another.
"""

import functools
import logging
import os
from types import SimpleNamespace

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle

from imageclass.cache import UNREACHABLE, redis_client

# KEYS: the windows; ARGV[1]: a unique member for this request, then each window's seconds and
# request limit. Returns 0 when the request is allowed (and recorded in every window), else the
# seconds until every window would have room (and records nothing).
SLIDING_WINDOWS = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local wait = 0
for i, key in ipairs(KEYS) do
  local window, limit = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local since = oldest[2] and tonumber(oldest[2]) or now
    wait = math.max(wait, since + window - now, 0.001)
  end
end
if wait > 0 then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[2 * i])))
end
return 0
"""
KEY_PREFIX = "imageclass:throttle:"
# Scopes whose requests are served uncounted while Redis is unreachable: reads need nothing else
# from it. Uploads, sign-ups and token requests are refused (503) instead.
UNCOUNTED_WITHOUT_REDIS = ("read",)
log = logging.getLogger(__name__)


@functools.cache
def sliding_windows(url: str):
    return redis_client(url).register_script(SLIDING_WINDOWS)


def hit(windows: list[tuple[str, int, int]]) -> float:
    """Record one request in every (key, seconds, limit) window, or in none when one is full:
    0, or the seconds until every window would have room."""
    keys, args = [], [os.urandom(8).hex()]  # two requests in one microsecond are still two
    for key, seconds, limit in windows:
        keys.append(KEY_PREFIX + key)
        args += [seconds, limit]
    return float(sliding_windows(settings.REDIS_URL)(keys=keys, args=args)) if keys else 0.0


def parse_rate(rate: str) -> tuple[int, int]:
    """(seconds, limit) of a rate written as DRF writes them: "N/second|minute|hour|day"."""
    limit, period = rate.split("/")
    return {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]], int(limit)


class WindowThrottle(ScopedRateThrottle):
    """The view's throttle scope, counted per user (per address when anonymous) at the rate
    "<scope>", and per client address whoever is logged in at "<scope>_address" (optional): one
    address cannot multiply its rate with many accounts. SimpleRateThrottle's rule for each: at
    most num_requests in any `duration` seconds."""

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        address = self.get_ident(request)
        caller = request.user.pk if request.user and request.user.is_authenticated else address
        windows = [
            (self.scope, caller, self.get_rate()),  # required: ImproperlyConfigured when missing
            (f"{self.scope}_address", address, self.THROTTLE_RATES.get(f"{self.scope}_address")),
        ]
        try:
            self.retry_after = hit(
                [
                    (self.cache_format % {"scope": scope, "ident": ident}, *parse_rate(rate))
                    for scope, ident, rate in windows
                    if rate
                ]
            )
        except UNREACHABLE:
            if self.scope in UNCOUNTED_WITHOUT_REDIS:
                log.warning("throttle %s not counted: Redis is unreachable", self.scope)
                return True
            raise  # a 503 (imageclass.middleware)
        return self.retry_after == 0

    def wait(self):
        return self.retry_after


def web_wait(request, scope: str) -> float:
    """The API's throttle of `scope` on a web view's request: 0, or the seconds to wait."""
    throttle = WindowThrottle()
    return (
        0.0
        if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope))
        else throttle.wait()
    )
