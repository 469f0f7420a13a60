"""Where Abri may send requests to: the feeds it polls and the webhooks it calls are URLs an
admin registered, so a mistyped or malicious one must not turn Abri into a way in to what
only the server can reach.

Refused: link-local addresses (169.254.0.0/16, fe80::/10: where cloud metadata services
answer, with the machine's credentials), unspecified (0.0.0.0, ::) and multicast ones, also
behind an IPv4-mapped IPv6 address. Private and loopback addresses stay allowed: CPAS and
hotel systems often sit on the same private network as Abri, and a webhook receiver may run
on the same host.

Checked three times: when the URL is registered (an address written in the URL; a 422),
right before every request (what the host name resolves to now, so a name pointed at a
metadata address later is refused too, with a clear reason), and when the connection is made:
``guarded_client`` connects to the very address it has just checked (``PinnedBackend``), so a
DNS answer that changes between a check and the connection ("DNS rebinding") cannot slip
through. TLS still verifies the certificate against the host name. A request sent through an
outbound proxy (``HTTP(S)_PROXY``, ``ALL_PROXY``) is connected by the proxy: the last check
is then the proxy's; requests it does not carry (``NO_PROXY``) are pinned as above. An IPv4
address carried in an IPv6 one (mapped, 6to4, Teredo, NAT64) is judged as that IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from httpx._utils import get_environment_proxies  # how httpx itself reads them

REFUSED = "a link-local, multicast or unspecified address"
REFUSED_PREFIX = "refused: "  # how a refusal at connection time reads (httpx.ConnectError)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one (mapped, 6to4, Teredo, NAT64) is
        # judged as that IPv4 address: a translator on the way would deliver it there.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and _refused(embedded):
            return True
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified


def literal_refusal(host: str) -> str | None:
    """Why a URL's host, if it is an IP address, may not be called; None if it may (or if
    it is a name: see :func:`resolved_refusal`)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # The legacy IPv4 spellings resolvers still accept: 2852039166, 0xa9fea9fe,
        # 169.254.43518 (socket.inet_aton reads them as the resolver will).
        if not re.fullmatch(r"[0-9a-fA-FxX.]+", host):
            return None
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return f"points at {REFUSED}" if _refused(ip) else None


async def resolved_refusal(url: str) -> str | None:
    """Why ``url`` may not be called now: its host resolves to a refused address. None if it
    may be called, or if the name does not resolve (the request then fails on its own)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    why = literal_refusal(host)
    if why is not None:
        return why
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ips = await resolve(host, port)
    except (OSError, ValueError):
        return None
    if any(_refused(ip) for ip in ips):
        return f"{host} resolves to {REFUSED}"
    return None


async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses ``host`` resolves to now (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, refuse a forbidden address, and connect to the address just checked."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            ips = await resolve(host, port)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label idna refuses
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        if not ips:
            raise httpcore.ConnectError(f"{host} does not resolve")
        if any(_refused(ip) for ip in ips):
            raise httpcore.ConnectError(f"{REFUSED_PREFIX}{host} resolves to {REFUSED}")
        # One deadline shared by the addresses, tried in turn: a silent first address (an
        # IPv6 route that drops packets) must leave time for the next.
        each = None if timeout is None else timeout / len(ips)
        failure: Exception | None = None
        for ip in ips:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=each,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Abri does not call Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every outbound client (building one costs ~15 ms)."""
    return httpx.create_ssl_context()


def _pinned_transport() -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(verify=_tls())
    transport._pool = httpcore.AsyncConnectionPool(  # what httpx builds, with our backend
        ssl_context=_tls(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PinnedBackend(),
    )
    return transport


def guarded_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose direct connections go only to addresses checked as they
    are made (``PinnedBackend``). Outbound proxies from the environment (``HTTP(S)_PROXY``,
    ``ALL_PROXY``) are honoured as httpx would (the proxy then connects); every request
    they do not carry (``NO_PROXY``, a scheme without a proxy) is still pinned."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        pattern: _pinned_transport()
        if url is None
        else httpx.AsyncHTTPTransport(proxy=url, verify=_tls())
        for pattern, url in get_environment_proxies().items()
    }
    return httpx.AsyncClient(transport=_pinned_transport(), mounts=mounts, **kwargs)
