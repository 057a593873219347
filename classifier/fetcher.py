"""Fetching an image from a user-given URL without letting the URL reach inside our network.

- http and https only, on ports 80 and 443, no credentials in the URL;
- the host name is resolved once and every address must be public (not loopback, private,
  link-local, CGNAT, multicast, reserved or unspecified, also when written as an IPv4-mapped
  IPv6 address); the connection goes to that checked address, so DNS cannot change it later;
- each redirect (at most settings.FETCH_MAX_REDIRECTS) is checked the same way;
- connect and read timeouts, a total deadline, and the size cap enforced while streaming.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from django.conf import settings

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
USER_AGENT = "ImageClass/1.0 (+image fetcher)"


class FetchError(ValueError):
    """The URL cannot be fetched; the message is meant for the user."""


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped or address.sixtofour or (address.teredo and address.teredo[1])
        )
        if embedded:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True)
class FetchPolicy:
    """Which destinations a fetch may connect to. Production uses the default; tests widen
    it to reach their own loopback server."""

    ports: frozenset = field(default_factory=lambda: frozenset({80, 443}))
    address_allowed: object = is_public_address


@dataclass
class Fetched:
    data: bytes
    url: str
    content_type: str


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand, whatever the host name resolves to now."""

    def __init__(self, host, port, address, connect_timeout, read_timeout):
        super().__init__(host, port, timeout=connect_timeout)
        self.address, self.read_timeout = address, read_timeout

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.settimeout(self.read_timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, connect_timeout, read_timeout):
        super().__init__(host, port, timeout=connect_timeout, context=ssl.create_default_context())
        self.address, self.read_timeout = address, read_timeout

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.settimeout(self.read_timeout)
        # Certificate and SNI for the host name, connection to the checked address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def checked_address(url: str, policy: FetchPolicy) -> tuple:
    """(scheme, host, port, address) for `url`, or FetchError if it may not be fetched."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise FetchError("This is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError("Only http:// and https:// URLs can be fetched.")
    if not parts.hostname:
        raise FetchError("The URL has no host name.")
    if parts.username or parts.password:
        raise FetchError("URLs with a user name or password are not fetched.")
    port = port or (443 if parts.scheme == "https" else 80)
    if port not in policy.ports:
        raise FetchError("Only the standard ports (80 and 443) can be fetched.")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"The host {parts.hostname!r} could not be found.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(policy.address_allowed(a) for a in addresses):
        raise FetchError(
            "The URL points to a private or local network address, which is not allowed."
        )
    return parts.scheme, parts.hostname, port, str(addresses[0])


def fetch_image_bytes(url: str, policy: FetchPolicy = FetchPolicy()) -> Fetched:
    max_bytes = settings.MAX_UPLOAD_BYTES
    deadline = time.monotonic() + settings.FETCH_READ_TIMEOUT + settings.FETCH_CONNECT_TIMEOUT
    for _ in range(settings.FETCH_MAX_REDIRECTS + 1):
        scheme, host, port, address = checked_address(url, policy)
        connection_class = PinnedHTTPSConnection if scheme == "https" else PinnedHTTPConnection
        connection = connection_class(
            host, port, address, settings.FETCH_CONNECT_TIMEOUT, settings.FETCH_READ_TIMEOUT
        )
        try:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
            response = connection.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise FetchError("The server redirected without saying where to.")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchError(f"The server answered HTTP {response.status} instead of an image.")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
            data = read_capped(response, max_bytes, deadline)
            return Fetched(data, url, response.getheader("Content-Type", ""))
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                raise FetchError("The server took too long to answer.") from None
            raise FetchError(f"The URL could not be fetched ({type(exc).__name__}).") from None
        finally:
            connection.close()
    raise FetchError(f"The URL redirected more than {settings.FETCH_MAX_REDIRECTS} times.")


def read_capped(response, max_bytes: int, deadline: float) -> bytes:
    chunks, total = [], 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError("The server took too long to send the image.")
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
        chunks.append(chunk)
