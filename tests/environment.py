"""Loaded before Django settings (`-p tests.environment` in pytest.ini): every local data path
(files, model cache, generated secret key) goes to a throwaway folder, and the broker, cache and
?wait signal to a throwaway in-memory Redis on a free port (never a developer's REDIS_URL: the
tests flush it), so the tests never touch a developer's data. Worker processes the tests start
inherit both, and no start builds the general model."""

import atexit
import os
import shutil
import tempfile

from imageclass.embedded import EmbeddedRedis

_var = tempfile.mkdtemp(prefix="imageclass-test-")
os.environ["VAR_DIR"] = _var
atexit.register(shutil.rmtree, _var, ignore_errors=True)
# Building the general model takes a minute: only the tests of it turn it on.
os.environ["GENERAL_MODEL"] = "false"

_redis = EmbeddedRedis(":memory:").start()
os.environ["REDIS_URL"] = _redis.uri
os.environ.pop("CELERY_BROKER_URL", None)
atexit.register(_redis.stop)
