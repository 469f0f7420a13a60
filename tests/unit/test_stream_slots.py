"""Live streams per token: a slot is taken when a stream is answered and given back however
the stream ends — its last message, an error, the client leaving, or a response dropped
before its first message."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator
from types import SimpleNamespace

import pytest

from api.ratelimit import StreamSlots, open_stream
from capacity.errors import RateLimited


def _state(limit: int) -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(streams_per_token=limit), stream_slots=StreamSlots()
    )


async def _events(n: int, fail: bool = False) -> AsyncGenerator[int, None]:
    for i in range(n):
        yield i
    if fail:
        raise RuntimeError("database gone")


async def test_the_limit_refuses_the_next_stream_and_a_finished_one_gives_its_slot_back() -> None:
    state = _state(2)
    a, b = open_stream(state, "t1", _events(2)), open_stream(state, "t1", _events(2))
    with pytest.raises(RateLimited) as refused:
        open_stream(state, "t1", _events(2))
    assert refused.value.extra["retry_after"] == 30 and "2 live streams" in refused.value.detail
    assert open_stream(state, "t2", _events(1)) is not None  # another token is not affected
    assert [m async for m in a] == [0, 1]  # ends: its slot is free again
    assert state.stream_slots.count("t1") == 1
    c = open_stream(state, "t1", _events(1))
    await b.aclose()  # the client left after no message
    await c.aclose()
    assert state.stream_slots.count("t1") == 0


async def test_a_failing_stream_gives_its_slot_back() -> None:
    state = _state(1)
    stream = open_stream(state, "t", _events(1, fail=True))
    with pytest.raises(RuntimeError):
        _ = [m async for m in stream]
    assert state.stream_slots.count("t") == 0


async def test_a_stream_dropped_before_its_first_message_gives_its_slot_back() -> None:
    state = _state(1)
    stream = open_stream(state, "t", _events(1))
    assert state.stream_slots.count("t") == 1
    del stream
    gc.collect()
    assert state.stream_slots.count("t") == 0
    assert open_stream(state, "t", _events(1)) is not None


async def test_zero_means_no_limit() -> None:
    state = _state(0)
    streams = [open_stream(state, "t", _events(1)) for _ in range(100)]
    assert state.stream_slots.total() == 100
    for s in streams:
        await s.aclose()
    assert state.stream_slots.total() == 0
