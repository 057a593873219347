"""Test-session set-up: a fresh in-memory embedded MongoDB server on a free port (unless
MONGODB_URI names a real server), and in CI (CI=true) any skipped test fails the run."""

import os

import pytest

from imageclass.embedded import EmbeddedMongo


def pytest_configure(config):
    from django.conf import settings

    if settings.MONGODB_URI or is_xdist_controller(config):
        return
    server = EmbeddedMongo(":memory:").start()
    config.embedded_mongo = server
    # Connections are created lazily, so changing the settings here, before any test touches
    # the database, points every connection at the throwaway server.
    settings.DATABASES["default"]["HOST"] = server.uri
    os.environ["MONGODB_URI"] = server.uri  # for subprocesses the tests start


def is_xdist_controller(config) -> bool:
    """Whether this process only hands tests to pytest-xdist's workers (each starts its own
    server: one shared server would be one database for tests that flush it)."""
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")


def pytest_unconfigure(config):
    server = getattr(config, "embedded_mongo", None)
    if server:
        server.stop()


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"CI: {len(skipped)} test(s) skipped; in CI nothing may be skipped.", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
