import pytest
from django.core.cache import cache

from accounts.models import User

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Login throttling counts live in the cache: start every test with none."""
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
