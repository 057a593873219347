"""Django's Redis cache, with one client object per connection pool.

Django builds a new redis.Redis for every cache operation. Building one (its table of response
callbacks) costs more CPU than the GET it then sends, and every API request makes four (the
throttles). A client holds nothing but its pool, and may be shared between threads."""

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
