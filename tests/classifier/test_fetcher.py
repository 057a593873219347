"""The URL fetcher refuses every internal destination and bounds what it downloads.

Destinations are checked against a listener on loopback: a refused fetch must never have
connected to it."""

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from classifier.fetcher import FetchError, FetchPolicy, fetch_image_bytes, is_public_address
from tests import badimages

IMAGE = badimages.jpeg()


class Handler(BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):
        self.server.hits.append(self.path)
        self.routes[self.path](self)

    def log_message(self, *args):
        pass


def send(status, body=b"", headers=()):
    def respond(handler):
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        if not any(name == "Content-Length" for name, _ in headers):
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def stream_without_length(total):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(total // 65536):
            handler.wfile.write(b"\0" * 65536)

    return respond


def trickle(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(20):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.2)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the fetcher hanging up on an oversize or slow response is the point


@pytest.fixture
def server(settings):
    settings.FETCH_CONNECT_TIMEOUT = 1
    settings.FETCH_READ_TIMEOUT = 1.5
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    Handler.routes = {
        "/cat.jpg": send(200, IMAGE, [("Content-Type", "image/jpeg")]),
        "/to-cat": send(302, headers=[("Location", "/cat.jpg")]),
        "/to-metadata": send(
            302, headers=[("Location", "http://169.254.169.254/latest/meta-data/")]
        ),
        "/to-loopback-v6": send(301, headers=[("Location", f"http://[::1]:{port}/cat.jpg")]),
        "/loop": send(302, headers=[("Location", "/loop")]),
        "/huge-declared": send(200, b"", [("Content-Length", str(50 * 1024 * 1024))]),
        "/huge-streamed": stream_without_length(12 * 1024 * 1024),
        "/slow": trickle,
        "/missing": send(404, b"no"),
    }
    yield httpd, port
    httpd.shutdown()
    httpd.server_close()


def only_this_server(port):
    """A policy that lets the tests reach their own server on 127.0.0.1 (nothing else)."""
    return FetchPolicy(
        ports=frozenset({80, 443, port}), address_allowed=lambda a: str(a) == "127.0.0.1"
    )


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "0177.0.0.1",
    "0x7f000001",
    "2130706433",
    "0x7f.0.0.1",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "127.127.127.127",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_every_spelling_is_refused_without_connecting(server, host):
    httpd, port = server
    # Even with our test port allowed, the default address rule refuses loopback.
    policy = FetchPolicy(ports=frozenset({80, 443, port}))
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_image_bytes(f"http://{host}:{port}/cat.jpg", policy)
    assert httpd.hits == []


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "[fe80::1]",
        "[fc00::1]",
        "[::]",
        "[::ffff:10.0.0.1]",
        "[2002:7f00:1::]",
        "[ff02::1]",
    ],
)
def test_private_link_local_and_special_ranges_are_refused(host):
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_image_bytes(f"http://{host}/image.jpg")


@pytest.mark.parametrize(
    "url, message",
    [
        ("file:///etc/passwd", "Only http:// and https://"),
        ("ftp://example.com/a.jpg", "Only http:// and https://"),
        ("gopher://example.com:70/", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("http://example.com:8080/a.jpg", "standard ports"),
        ("https://example.com:22/a.jpg", "standard ports"),
        ("http://user:secret@example.com/a.jpg", "user name or password"),
        ("http:///nohost", "no host name"),
        ("http://[::1/", "not a valid URL"),
        ("http://no-such-host.invalid/a.jpg", "could not be found"),
    ],
)
def test_schemes_ports_and_malformed_urls_are_refused(url, message):
    with pytest.raises(FetchError, match=message):
        fetch_image_bytes(url)


def test_public_addresses_are_allowed():
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert is_public_address(ipaddress.ip_address(address))


def test_fetches_an_image_and_follows_a_safe_redirect(server):
    httpd, port = server
    fetched = fetch_image_bytes(f"http://127.0.0.1:{port}/to-cat", only_this_server(port))
    assert fetched.data == IMAGE
    assert fetched.url == f"http://127.0.0.1:{port}/cat.jpg"
    assert httpd.hits == ["/to-cat", "/cat.jpg"]


@pytest.mark.parametrize("path", ["/to-metadata", "/to-loopback-v6"])
def test_redirects_to_internal_hosts_are_refused(server, path):
    httpd, port = server
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_image_bytes(f"http://127.0.0.1:{port}{path}", only_this_server(port))
    assert httpd.hits == [path]


def test_redirect_loops_stop(server, settings):
    httpd, port = server
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch_image_bytes(f"http://127.0.0.1:{port}/loop", only_this_server(port))
    assert len(httpd.hits) == 4


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-streamed"])
def test_oversize_responses_are_cut_off(server, path):
    _, port = server
    with pytest.raises(FetchError, match="larger than 10 MB"):
        fetch_image_bytes(f"http://127.0.0.1:{port}{path}", only_this_server(port))


def test_slow_responses_time_out(server):
    _, port = server
    started = time.monotonic()
    with pytest.raises(FetchError, match="too long"):
        fetch_image_bytes(f"http://127.0.0.1:{port}/slow", only_this_server(port))
    assert time.monotonic() - started < 4


def test_error_statuses_are_reported(server):
    _, port = server
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_image_bytes(f"http://127.0.0.1:{port}/missing", only_this_server(port))


def test_a_silent_server_times_out(settings):
    settings.FETCH_CONNECT_TIMEOUT = 0.5
    settings.FETCH_READ_TIMEOUT = 0.5
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(FetchError, match="too long"):
            fetch_image_bytes(f"http://127.0.0.1:{port}/", only_this_server(port))
    finally:
        listener.close()
