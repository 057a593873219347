"""Redis clients: Django's cache with one client object per connection pool, and plain clients
for the rest (the ?wait= signal, the API throttles).

Django builds a new redis.Redis for every cache operation. Building one (its table of response
callbacks) costs more CPU than the GET it then sends. A client holds nothing but its pool, and
may be shared between threads."""

import functools

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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
def redis_client(url: str, socket_timeout: float = 5):
    """One client (and connection pool) per process, URL and timeout: a new client per call
    cost a new connection per request. redis-py starts a fresh pool in a forked child by itself."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=socket_timeout)
