import contextlib

import pytest
from django.core.cache import cache

from accounts.models import User
from imageclass.cache import BREAKER

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Login throttling counts live in the cache: start every test with none, and with no Redis
    taken for unreachable by an earlier test that stopped one."""
    BREAKER.reset()
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def admin_client(client, django_user_model):
    """A superuser's client (the admin pages, training jobs, model downloads)."""
    client.force_login(
        django_user_model.objects.create_superuser(
            "root", "root@example.com", "a long admin passphrase"
        )
    )
    return client


def api_client_for(user):
    """An API client with a token of `user` (none for None)."""
    from rest_framework.test import APIClient

    from accounts.models import ApiToken

    api = APIClient()
    if user:
        api.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)}")
    return api


@pytest.fixture
def bob(db):
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def charlie(db):
    return User.objects.create_user("charlie", "charlie@example.com", PASSWORD)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from tests.tinymodel import make_run_dir

    return make_run_dir(tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture
def active_model(db, tiny_run):
    from classifier.models import ModelVersion

    return ModelVersion.publish(tiny_run, "tiny", activate=True)


def make_result(
    owner, label="cat", probability=0.9, status="done", filename="photo.jpg", created_at=None
):
    """A stored classification with a finished result, without running a model."""
    from django.utils import timezone

    from classifier.models import Classification
    from tests import badimages

    job = Classification.store(badimages.jpeg((16, 16)), owner=owner, filename=filename)
    Classification.objects.filter(pk=job.pk).update(
        status=status,
        top_label=label if status == "done" else "",
        top_probability=probability if status == "done" else None,
        predictions=[{"label": label, "probability": probability}] if status == "done" else [],
        created_at=created_at or timezone.now(),
    )
    job.refresh_from_db()
    return job


@contextlib.contextmanager
def broker_down():
    """The project's Celery app pointed at a port where nothing listens, its pools dropped: every
    publish fails, as when the broker is down. Restored afterwards."""
    from imageclass.celery import app
    from imageclass.embedded import free_port

    def drop_pools():  # (closing them would close kombu's shared pools for the real broker too)
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    drop_pools()
    try:
        yield
    finally:
        app.conf.broker_url = previous
        drop_pools()


# Whole-system and training tests take the longest: collected first, xdist hands them out first
# (a file at a time), and the two workers end together instead of one running a long file alone.
SCHEDULE = ("system", "mltrain", "classifier", "accounts")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item, so a fixture's teardown knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_collection_modifyitems(items):
    def group(item) -> int:
        parts = item.path.relative_to(item.config.rootpath).parts
        return SCHEDULE.index(parts[1]) if parts[1] in SCHEDULE else len(SCHEDULE)

    items.sort(key=group)
