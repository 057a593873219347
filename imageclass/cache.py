"""Redis clients: Django's cache with one client object per connection pool, and plain clients
for the rest (the ?wait= signal, the API throttles, login lockouts, announcements), all with
connect and read timeouts and one circuit breaker per process.

Django builds a new redis.Redis for every cache operation. Building one (its table of response
callbacks) costs more CPU than the GET it then sends. A client holds nothing but its pool, and
may be shared between threads.

A Redis that stops answering (a stalled process, a lost network) accepts connections and never
replies: without timeouts every request waits for as long as the stall lasts. With them each
use waits up to REDIS_TIMEOUT, and the first that times out opens its server's breaker: for
the next REDIS_RETRY_AFTER seconds every use of that server in this process fails at once, so
a request that would touch Redis several times answers (a 503, or without what Redis adds)
within one timeout."""

import functools
import threading
import time

import redis
from django.conf import settings
from django.core.cache.backends import redis as django_redis


class Breaker:
    """Per server: the moment until which nobody in this process asks it again."""

    def __init__(self):
        self.open_until = {}
        self.lock = threading.Lock()

    def check(self, server) -> None:
        if time.monotonic() < self.open_until.get(server, 0.0):
            raise redis.exceptions.ConnectionError(
                "Redis did not answer a moment ago; not asking again yet."
            )

    def trip(self, server) -> None:
        with self.lock:
            self.open_until[server] = time.monotonic() + settings.REDIS_RETRY_AFTER

    def reset(self) -> None:
        with self.lock:
            self.open_until.clear()


BREAKER = Breaker()
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Guarded:
    """A connection that fails at once while its server's breaker is open, and opens it when
    the server does not answer in time. A refused or reset connection does not: it fails fast
    by itself, and redis-py's own retry reconnects a pooled one to a restarted server."""

    def guarded(self, method, *args, **kwargs):
        server = (self.host, self.port)
        BREAKER.check(server)
        try:
            return method(*args, **kwargs)
        except redis.exceptions.TimeoutError:
            BREAKER.trip(server)
            raise

    def connect(self, *args, **kwargs):
        return self.guarded(super().connect, *args, **kwargs)

    def send_packed_command(self, *args, **kwargs):
        return self.guarded(super().send_packed_command, *args, **kwargs)

    def read_response(self, *args, **kwargs):
        return self.guarded(super().read_response, *args, **kwargs)


class GuardedConnection(Guarded, redis.Connection):
    pass


class GuardedSSLConnection(Guarded, redis.SSLConnection):
    pass


def connection_options(url: str, read_timeout: float | None = None) -> dict:
    timeout = settings.REDIS_TIMEOUT
    return {
        "connection_class": GuardedSSLConnection
        if url.startswith("rediss://")
        else GuardedConnection,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout if read_timeout is None else read_timeout,
    }


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **connection_options(servers[0]), **options)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        if pool not in self._clients:
            self._clients[pool] = self._client(connection_pool=pool)
        return self._clients[pool]


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient


@functools.cache
def redis_client(url: str, read_timeout: float | None = None):
    """One client (and connection pool) per process, URL and read timeout (REDIS_TIMEOUT unless
    a blocking command needs longer): a new client per call cost a new connection per request.
    redis-py starts a fresh pool in a forked child by itself."""
    return redis.Redis.from_url(url, **connection_options(url, read_timeout))
