"""Where Abri may connect to: the checks of ``clients/outbound.py`` on address spellings and
on the connections ``guarded_client`` makes (proxies from the environment included)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import httpx
import pytest

from clients import outbound


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[fe80::1]",
        "[ff02::1]",
        "0.0.0.0",
        "[::]",
        "[::ffff:169.254.169.254]",  # IPv4-mapped
        "[64:ff9b::a9fe:a9fe]",  # NAT64
        "[2002:a9fe:a9fe::]",  # 6to4
        "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, client 169.254.169.254... (below)
        "2852039166",  # 169.254.169.254 as one number, as resolvers still read it
        "0xa9fea9fe",
        "169.254.43518",
    ],
)
def test_forbidden_spellings_are_refused(host: str) -> None:
    if host.startswith("[2001:0:"):  # a Teredo address carrying 169.254.169.254 as client
        client = int(ipaddress.IPv4Address("169.254.169.254")) ^ 0xFFFFFFFF
        host = f"[2001:0:4136:e378:8000:63bf:{client >> 16:x}:{client & 0xFFFF:x}]"
    assert outbound.literal_refusal(host) is not None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "[fd00::1]", "[2001:db8::1]", "hotel.be"]
)
def test_private_loopback_and_names_pass_the_literal_check(host: str) -> None:
    assert outbound.literal_refusal(host) is None


async def test_requests_a_proxy_does_not_carry_are_still_pinned(monkeypatch: Any) -> None:
    """With HTTPS_PROXY set, https goes to the proxy (which connects), plain http is still
    connected by Abri, to a checked address only: a rebound name is refused."""
    seen: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[Any]:
        seen.append((host, port))
        if host == "rebind.abri.test":
            return [ipaddress.ip_address("169.254.169.254")]
        return [ipaddress.ip_address(host)]

    monkeypatch.setattr(outbound, "resolve", resolve)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    for var in ("HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    async with outbound.guarded_client(timeout=2) as client:
        with pytest.raises(httpx.ConnectError, match=r"^refused: rebind\.abri\.test"):
            await client.get("http://rebind.abri.test/feed")
        with pytest.raises(httpx.ConnectError) as proxied:
            await client.get("https://rebind.abri.test/feed")
        assert not str(proxied.value).startswith("refused")  # the proxy's connection failed
    assert seen == [("rebind.abri.test", 80)]  # https went to the proxy, unresolved by Abri


async def test_a_silent_first_address_leaves_time_for_the_next(monkeypatch: Any) -> None:
    """One deadline shared by the addresses: a dropped first one (an IPv6 route that eats
    packets) does not use it all."""
    server = await asyncio.start_server(
        lambda r, w: (w.write(b"HTTP/1.1 204 No Content\r\n\r\n"), w.close()), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]

    async def resolve(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(outbound, "resolve", resolve)
    async with server, outbound.guarded_client(timeout=2) as client:
        r = await client.get(f"http://hotel.abri.test:{port}/")
    assert r.status_code == 204
