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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

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


T = TypeVar("T")

#: what a client refused a stream is told to wait (an open stream ends within its ``seconds``)
STREAM_RETRY_SECONDS = 30


class StreamSlots:
    """Live streams open at once per key (a token, a one-time link) in this API process.

    Each open stream polls the database twice a second: a client that opens a new stream
    without closing the old one (a shelter's system reconnecting in a loop, a page opened in
    fifty tabs, a leaked token) would otherwise load the database without bound."""

    def __init__(self) -> None:
        self._open: dict[Hashable, int] = {}

    def count(self, key: Hashable) -> int:
        return self._open.get(key, 0)

    def total(self) -> int:
        """Streams open in this process, all keys together."""
        return sum(self._open.values())

    def take(self, key: Hashable, limit: int) -> Callable[[], None] | None:
        """One slot for ``key``, or None when ``limit`` (> 0) are open. The function returned
        frees it; calling it again does nothing."""
        n = self._open.get(key, 0)
        if limit > 0 and n >= limit:
            return None
        self._open[key] = n + 1
        freed = False

        def free() -> None:
            nonlocal freed
            if freed:
                return
            freed = True
            left = self._open.get(key, 1) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)

        return free


class _HeldStream(Generic[T]):
    """``events`` holding a stream slot, given back (once) when the stream ends, fails, is
    cancelled or closed by the server when the client leaves, or is dropped unstarted."""

    def __init__(self, events: AsyncGenerator[T, None], free: Callable[[], None]) -> None:
        self._events = events
        self._free = free

    def __aiter__(self) -> _HeldStream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._events.__anext__()
        except BaseException:  # the last message, an error, a cancellation
            self._free()
            raise

    async def aclose(self) -> None:
        self._free()
        await self._events.aclose()

    def __del__(self) -> None:
        self._free()


def open_stream(state: Any, key: Hashable, events: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """``events``, holding one of ``key``'s stream slots for as long as it runs; raise
    :class:`RateLimited` (429 + ``Retry-After``) when ``key`` has ``ABRI_STREAMS_PER_TOKEN``
    open already."""
    limit = state.settings.streams_per_token
    free = state.stream_slots.take(key, limit)
    if free is None:
        raise RateLimited(
            f"{limit} live streams are open with this token already; close one, or try again "
            f"in {STREAM_RETRY_SECONDS} s.",
            retry_after=STREAM_RETRY_SECONDS,
        )
    return _HeldStream(events, free)
