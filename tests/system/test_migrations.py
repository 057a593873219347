import os
import subprocess
import sys

from django.conf import settings

from imageclass.embedded import EmbeddedMongo


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_fresh_database_migrates_from_zero_and_no_migration_is_missing():
    server = EmbeddedMongo(":memory:").start()
    try:
        env = {**os.environ, "MONGODB_URI": server.uri, "MONGODB_NAME": "fresh"}
        migrate = manage("migrate", "--noinput", env=env)
        assert migrate.returncode == 0, migrate.stderr
        assert "Applying accounts.0001_initial... OK" in migrate.stdout
        check = manage("makemigrations", "--check", "--dry-run", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        system_check = manage("check", env=env)
        assert system_check.returncode == 0, system_check.stderr
    finally:
        server.stop()
