"""What every feed adapter produces, and how it says no.

An adapter is one small module with ``FORMAT`` (its registry name), ``ACCEPT`` (the media types
it asks for) and ``parse(body: bytes) -> list[Reading]``. ``parse`` is pure: it either returns
every reading of the document or raises :class:`FeedRejected` with a short reason (no secrets,
no document content beyond an identifier), and then nothing of the document is used.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

#: Largest document Abri accepts from a feed (bytes); a bigger body is rejected, not truncated.
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Largest count a feed may report for one pool (same bound as staff reports).
MAX_COUNT = 100_000


class FeedRejected(Exception):
    """The whole document is refused; ``reason`` is safe to show admins and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:480]


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One pool's figures as the feed reports them, before mapping to an Abri pool.

    ``units_occupied`` is the feed's own occupancy; whether it includes places held by Abri
    is a property of the mapping (``countsHoldsAsOccupied``), applied at ingest.
    """

    feed_id: str
    units_total: int
    units_occupied: int
    units_blocked: int | None = None
    reported_at: datetime | None = None


def check_counts(feed_id: str, total: int, occupied: int, blocked: int | None) -> None:
    for name, value in (("total", total), ("occupied", occupied), ("blocked", blocked)):
        if value is None:
            continue
        if value < 0:
            raise FeedRejected(f"negative {name} count for {feed_id!r}")
        if value > MAX_COUNT:
            raise FeedRejected(f"implausible {name} count for {feed_id!r}")
    if blocked is not None and blocked > total:
        raise FeedRejected(f"blocked exceeds total for {feed_id!r}")


def check_id(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 100:
        raise FeedRejected("an identifier is missing, empty or too long")
    return raw.strip()


def parse_time(raw: str | None) -> datetime | None:
    """ISO 8601 with a zone; naive times are refused (a feed must say which zone it means)."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FeedRejected("a timestamp is not ISO 8601") from None
    if value.tzinfo is None:
        raise FeedRejected("a timestamp has no time zone")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. year 1 at +01:00: before the first instant Python knows
        raise FeedRejected("a timestamp is out of range") from None


def whole_number(raw: str) -> int | None:
    """A count as written in a document: ASCII digits with an optional minus sign (a negative
    count is refused later, with its own reason); None for anything else (``--5``, ``²``,
    which ``str.isdigit`` lets through to an ``int()`` that fails)."""
    text = raw.strip()
    return int(text) if re.fullmatch(r"-?[0-9]{1,12}", text) else None


def unique(readings: list[Reading]) -> list[Reading]:
    seen: set[str] = set()
    for r in readings:
        if r.feed_id in seen:
            raise FeedRejected(f"identifier {r.feed_id!r} appears twice")
        seen.add(r.feed_id)
    if not readings:
        raise FeedRejected("the document holds no availability")
    return readings
