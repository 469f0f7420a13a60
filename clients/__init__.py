"""Outbound: webhooks to requester systems, feed adapters, and the SDK."""

from __future__ import annotations

from typing import Any

#: The SDK's public names, imported lazily (``from clients import AbriClient``) so that the
#: server-side modules of this package do not pull the SDK in.
_SDK_EXPORTS = (
    "AbriClient",
    "AbriError",
    "AsyncAbriClient",
    "Conflict",
    "Exclusion",
    "Forbidden",
    "Hold",
    "Invalid",
    "NoLongerFree",
    "NotFound",
    "Notice",
    "Pool",
    "SearchResult",
    "ServerError",
    "StaffHold",
    "StandingRequest",
    "Unauthenticated",
    "Unavailable",
    "VersionMismatch",
)

__all__ = list(_SDK_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SDK_EXPORTS:
        from clients import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'clients' has no attribute {name!r}")
