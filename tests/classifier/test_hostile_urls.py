"""URL uploads that point inside our network, through the web form and the API: every one is
refused with a 400, and a raw TCP listener on loopback proves that no connection reached it."""

import socket
import threading
import time

import pytest
from django.urls import reverse

from classifier.models import Classification
from tests.classifier.test_fetcher import LOOPBACK_SPELLINGS
from tests.conftest import api_client_for

INTERNAL_HOSTS = [
    *LOOPBACK_SPELLINGS,
    "0.0.0.0",
    "[::]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "[fd00::1]",
    "[fe80::1]",
    "[::ffff:10.0.0.1]",
    "224.0.0.1",
    "localhost.",
    "LOCALHOST",
]


class CountingListener:
    """Accepts TCP connections on 127.0.0.1 and counts them (and closes them at once)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port, self.accepted, self.running = self.sock.getsockname()[1], 0, True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    server = CountingListener()
    yield server
    server.close()


def urls(port):
    for host in INTERNAL_HOSTS:
        yield f"http://{host}:{port}/cat.jpg"
        yield f"http://{host}/cat.jpg"
    yield f"http://user:pass@127.0.0.1:{port}/cat.jpg"
    yield f"https://127.0.0.1:{port}/"
    yield f"ftp://127.0.0.1:{port}/cat.jpg"
    yield "file:///etc/passwd"
    yield f"gopher://127.0.0.1:{port}/_"


def test_internal_urls_are_refused_everywhere_and_never_connected(
    alice, alice_client, active_model, listener
):
    api = api_client_for(alice)
    for url in urls(listener.port):
        web = alice_client.post(reverse("home"), {"image_url": url})
        assert web.status_code == 400, url
        response = api.post("/api/v1/classifications/", {"image_url": url}, format="json")
        assert response.status_code == 400 and response.json()["image_url"], url
    assert Classification.objects.count() == 0
    assert listener.accepted == 0
    socket.create_connection(("127.0.0.1", listener.port)).close()  # the listener does count
    deadline = time.monotonic() + 5
    while listener.accepted == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.accepted == 1
