"""API rate limits counted in Redis, checked and recorded in one atomic step.

DRF's throttles keep each client's request times as a pickled list in the cache: a read, then
a write of the whole list. Concurrent requests overwrite each other's entries (so a client
gets more than its rate), and every request moves the list both ways: thousands of entries
for a busy address. Here each window is a Redis sorted set of request times, trimmed, counted
and appended to by one Lua script: one round trip per throttle, exact under concurrency.
"""

import functools
import os

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from imageclass.cache import redis_client

# KEYS[1]: the window; ARGV: window seconds, request limit, a unique member for this request.
# Returns 0 when the request is allowed (and recorded), else the seconds until it would be.
SLIDING_WINDOW = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(window))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(math.max(tonumber(oldest[2]) + window - now, 0.001))
"""
KEY_PREFIX = "imageclass:throttle:"


@functools.cache
def sliding_window(url: str):
    return redis_client(url).register_script(SLIDING_WINDOW)


class RedisWindowThrottle(SimpleRateThrottle):
    """SimpleRateThrottle's rule (at most num_requests in any `duration` seconds), kept in Redis."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        member = os.urandom(8).hex()  # two requests in one microsecond are still two
        script = sliding_window(settings.REDIS_URL)
        self.retry_after = float(script(keys=[KEY_PREFIX + key], args=[self.duration, self.num_requests, member]))
        return self.retry_after == 0

    def wait(self):
        return self.retry_after


class UserRateThrottle(ScopedRateThrottle, RedisWindowThrottle):
    """The view's throttle scope, per user (per address when anonymous)."""


class AddressRateThrottle(UserRateThrottle):
    """The view's throttle scope counted per client address as well, whoever is logged in:
    one address cannot multiply its rate with many accounts. Rates: "<scope>_address"."""

    def get_rate(self):
        return self.THROTTLE_RATES.get(f"{self.scope}_address")

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": f"{self.scope}_address", "ident": self.get_ident(request)}
