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
