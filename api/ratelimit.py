"""Per-token rate limits on search and hold: a stolen helpline token must not be able to
enumerate the country's places quickly (issue 8). 429 + ``Retry-After`` when exceeded.

A token bucket per (token, action) in each API process: ``burst`` requests at once, refilled
at ``per_minute``. With N API processes a token gets at most N times the rate; that still
turns "the whole country in a minute" into hours. Limits come from settings
(``ABRI_RATE_SEARCH_PER_MINUTE``, ``ABRI_RATE_HOLD_PER_MINUTE``; 0 switches a limit off).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from capacity.audit import Actor
from capacity.errors import RateLimited


class TokenBuckets:
    """Buckets keyed by (token id, action); monotonic time; bounded memory."""

    MAX_KEYS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[tuple[int | None, str], tuple[float, float]] = {}

    def take(self, key: tuple[int | None, str], *, per_minute: int, burst: int) -> float:
        """Take one request; return 0 if allowed, else the seconds to wait."""
        now = self._clock()
        rate = per_minute / 60.0
        tokens, last = self._state.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1.0:
            if len(self._state) >= self.MAX_KEYS and key not in self._state:
                self._state.clear()  # crude but bounded: everyone starts with a full bucket
            self._state[key] = (tokens - 1.0, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1.0 - tokens) / rate


def check(state: Any, actor: object, action: str) -> None:
    """Take one ``action`` (e.g. "search", "hold") from this token's bucket, or raise
    :class:`RateLimited`. The API's route guard and the web console both call it, so a token
    signed in on the web pages has the same budget as on the API (one bucket for both)."""
    settings = state.settings
    per_minute = {
        "search": settings.rate_search_per_minute,
        "hold": settings.rate_hold_per_minute,
    }[action]
    if per_minute <= 0:
        return
    key = (actor.token_id if isinstance(actor, Actor) else None, action)
    burst = max(1, per_minute // 3)
    wait = state.rate_buckets.take(key, per_minute=per_minute, burst=burst)
    if wait > 0:
        raise RateLimited(
            f"Too many {action} requests with this token; try again in {math.ceil(wait)} s.",
            retry_after=math.ceil(wait),
        )


def rate_limit(
    action: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A route guard limiting ``action`` (e.g. "search", "hold") per token.

    ``async def`` although nothing is awaited: litestar would run a plain function guard in
    a worker thread."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        check(connection.app.state, connection.user, action)

    guard.__name__ = f"rate_limit_{action}"
    return guard
