"""A Redis that stops answering (SIGSTOP: it accepts connections and never replies) costs a
request one timeout, not the stall: uploads, logins and /readyz answer 503 with Retry-After
within 3 s, reads that need nothing from Redis are served, nothing is half-written, and all
works again once Redis continues. Each request runs in a fresh Django process whose Redis
(cache, throttles, lockouts, announcements, broker) is a real server of the test's own."""

import os
import signal
import time

import pytest
from django.test import Client

from accounts.models import ApiToken
from classifier.models import Classification
from imageclass.embedded import EmbeddedRedis
from tests.conftest import make_result
from tests.system.test_faults import run_django, stored_files

REQUESTS = """
import io, json, time, django; django.setup()
from django.test import Client
from tests import badimages

def upload():
    image = io.BytesIO(badimages.jpeg()); image.name = "cat.jpg"
    return image

token = {"HTTP_AUTHORIZATION": "Token %s"}
web = Client(HTTP_HOST="localhost", raise_request_exception=False)
web.cookies["sessionid"] = "%s"
requests = {
    "api upload": lambda c: c.post("/api/v1/classifications/?wait=5", {"image": upload()}, **token),
    "api me": lambda c: c.get("/api/v1/me/", **token),
    "api history": lambda c: c.get("/api/v1/classifications/", **token),
    "api token": lambda c: c.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}),
    "web login": lambda c: c.post("/accounts/login/", {"username": "alice", "password": "wrong"}),
    "web upload": lambda c: web.post("/", {"images": [upload()]}),
    "web history": lambda c: web.get("/history/"),
    "readyz": lambda c: c.get("/readyz"),
}
answers = {}
for name, send in requests.items():
    started = time.monotonic()
    response = send(Client(HTTP_HOST="localhost", raise_request_exception=False))
    answers[name] = [response.status_code, response.get("Retry-After"), round(time.monotonic() - started, 2),
                     response.content.decode()[:300]]
print(json.dumps(answers))
"""


@pytest.fixture
def stalled_redis(alice, active_model):
    redis = EmbeddedRedis(":memory:").start()
    token = ApiToken.issue(alice)
    web = Client()
    web.force_login(
        alice
    )  # (a login writes the user, which drops its cached tokens: before the stall)
    session = web.cookies["sessionid"].value
    env = {"REDIS_URL": redis.uri, "REDIS_TIMEOUT": "0.5", "REDIS_RETRY_AFTER": "5"}
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        yield (token, session), env, redis
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
        redis.stop()


def test_a_stalled_redis_costs_a_request_one_timeout(stalled_redis, alice):
    credentials, env, redis = stalled_redis
    make_result(alice)
    files_before, results_before = stored_files(), Classification.objects.count()
    started = time.monotonic()
    answers = run_django(REQUESTS % credentials, **env)
    for name, (status, retry_after, seconds, body) in answers.items():
        assert seconds < 3, (name, seconds)
        if name in ("api me", "api history", "web history"):
            assert status == 200, (name, status, body)  # served without Redis
        else:
            assert status == 503 and retry_after, (name, status, retry_after, body)
    assert '"broker"' in answers["readyz"][3]
    assert "detail" in answers["api upload"][3]
    assert (
        Classification.objects.count() == results_before and stored_files() == files_before
    )  # nothing half-written
    assert time.monotonic() - started < 60

    os.kill(redis.process.pid, signal.SIGCONT)
    answers = run_django(REQUESTS % credentials, **env)
    assert (
        answers["api upload"][0] == 202
        and answers["web upload"][0] == 302
        and answers["readyz"][0] == 200
    )
    assert (
        answers["api token"][0] == 401 and answers["web login"][0] == 200
    )  # wrong passwords, counted again
