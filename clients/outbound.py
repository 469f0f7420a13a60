"""Where Abri may send requests to: the feeds it polls and the webhooks it calls are URLs an
admin registered, so a mistyped or malicious one must not turn Abri into a way in to what
only the server can reach.

Refused: link-local addresses (169.254.0.0/16, fe80::/10: where cloud metadata services
answer, with the machine's credentials), unspecified (0.0.0.0, ::) and multicast ones, also
behind an IPv4-mapped IPv6 address. Private and loopback addresses stay allowed: CPAS and
hotel systems often sit on the same private network as Abri, and a webhook receiver may run
on the same host.

Checked twice: when the URL is registered (an address written in the URL; a 422), and right
before every request (what the host name resolves to now, so a name pointed at a metadata
address later is refused too). httpx resolves the name again when it connects; a DNS answer
that changes between the two lookups is not covered (that needs a resolving proxy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

REFUSED = "a link-local, multicast or unspecified address"


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
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return None
    for info in infos:
        try:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            continue
        if _refused(ip):
            return f"{host} resolves to {REFUSED}"
    return None
