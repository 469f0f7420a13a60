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
through. TLS still verifies the certificate against the host name. Behind an outbound proxy
(``HTTP(S)_PROXY`` set), the proxy resolves and connects: the last check is then the proxy's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

REFUSED = "a link-local, multicast or unspecified address"
REFUSED_PREFIX = "refused: "  # how a refusal at connection time reads (httpx.ConnectError)


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified


def literal_refusal(host: str) -> str | None:
    """Why a URL's host, if it is an IP address, may not be called; None if it may (or if
    it is a name: see :func:`resolved_refusal`)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
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
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        if not ips:
            raise httpcore.ConnectError(f"{host} does not resolve")
        if any(_refused(ip) for ip in ips):
            raise httpcore.ConnectError(f"{REFUSED_PREFIX}{host} resolves to {REFUSED}")
        failure: Exception | None = None
        for ip in ips:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # the next address, as a resolver would
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


_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def guarded_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose connections go only to addresses checked at connection
    time (``PinnedBackend``); with an outbound proxy configured, a plain client (the proxy
    connects)."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return httpx.AsyncClient(**kwargs)
    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(  # what httpx builds, with our backend
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PinnedBackend(),
    )
    return httpx.AsyncClient(transport=transport, **kwargs)
