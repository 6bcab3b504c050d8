"""Outbound HTTP that cannot be pointed at the connector's own network (SSRF guard).

A watched feed, a Mastodon or Bluesky host and the alert webhook are URLs someone else may
control (or redirect): without a guard, a feed answering `302 → http://169.254.169.254/…` had
the cloud metadata stored as a post. `guarded_session()` refuses loopback, link-local,
private, reserved, multicast and unspecified addresses:

- redirects are followed here, one hop at a time (at most MAX_REDIRECTS), each hop's host
  checked before the request;
- the address is checked where the socket is opened: the host is resolved once, every
  address it resolves to is checked, and the connection goes to that checked address (the
  Host header, TLS SNI and certificate check keep the name) — so a DNS answer that changes
  between a check and the connect (rebinding) cannot slip through.

YORISOI_ALLOW_PRIVATE_FEEDS=1 turns the guard off (intranet feeds, a webhook inside the LAN).
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

MAX_REDIRECTS = 5
ALLOW_ENV = "YORISOI_ALLOW_PRIVATE_FEEDS"


class BlockedAddress(requests.ConnectionError):
    """The URL's host is (or resolves to) an address the connector must not reach."""


def allow_private(env: Mapping[str, str]) -> bool:
    return (env.get(ALLOW_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified or not ip.is_global)


def public_addresses(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) of `host` — all of them public — or BlockedAddress."""
    host = host.strip("[]").rstrip(".")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise requests.ConnectionError(f"cannot resolve {host}: {exc}") from None
    blocked = [info[4][0] for info in infos if not is_public(str(info[4][0]))]
    if blocked or not infos:
        raise BlockedAddress(f"{host} resolves to a non-public address ({', '.join(sorted(set(map(str, blocked))))}); "
                             f"set {ALLOW_ENV}=1 to allow intranet addresses")
    return [(info[0], info[4]) for info in infos]


def _connect(conn: HTTPConnection) -> socket.socket:
    try:
        addresses = public_addresses(conn.host, conn.port or 80)
    except requests.ConnectionError as exc:
        raise NewConnectionError(conn, str(exc)) from None
    last: OSError | None = None
    for _family, sockaddr in addresses:  # connect to the very address that was checked
        try:
            return urllib3_connection.create_connection((sockaddr[0], sockaddr[1]), conn.timeout,
                                                        source_address=conn.source_address,
                                                        socket_options=conn.socket_options)
        except OSError as exc:
            last = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def check_url(url: str) -> None:
    """Refuse a URL that is not http(s) or whose host is not public (before any request)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"not an http(s) URL: {parts.scheme}://…")
    public_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class GuardedSession(requests.Session):
    """A Session that follows redirects itself and reaches public addresses only."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # a proxy from the environment would hide the real address
        self.max_redirects = MAX_REDIRECTS
        adapter = _GuardedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        follow = kwargs.pop("allow_redirects", True)
        method, url = str(method if isinstance(method, str) else method.decode()), str(
            url if isinstance(url, str) else url.decode())
        headers = dict(kwargs.pop("headers", None) or {})
        for hop in range(MAX_REDIRECTS + 1):
            check_url(url)
            response = super().request(method, url, *args, headers=headers, allow_redirects=False, **kwargs)
            if not (follow and response.is_redirect):
                return response
            if hop == MAX_REDIRECTS:
                response.close()
                raise requests.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", response=response)
            target = urljoin(response.url, response.headers["Location"])
            response.close()
            if urlsplit(target).netloc != urlsplit(url).netloc:
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            if response.status_code in (301, 302, 303) and method.upper() not in ("GET", "HEAD"):
                method = "GET"
                for body in ("data", "json", "files"):
                    kwargs.pop(body, None)
            url = target
        raise AssertionError("unreachable")


def guarded_session(allow: bool = False) -> requests.Session:
    """The session for URLs others may control: guarded unless `allow` (the opt-in)."""
    return requests.Session() if allow else GuardedSession()
