"""Time is a parameter: services read the clock once per command (CONVENTIONS §2.2)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

#: Belgian local time, with summer time: the task force's days, weeks and months.
BRUSSELS = ZoneInfo("Europe/Brussels")


class Clock(ABC):
    """A base class, not a ``Protocol``: litestar checks each injected dependency with
    ``isinstance``, and a runtime-checkable protocol made that check cost more than the rest
    of the request's parameters together."""

    @abstractmethod
    def now(self) -> datetime: ...


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock for tests: it moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> datetime:
        self._now = self._now + timedelta(**kwargs)
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value


def utc_iso(at: datetime) -> str:
    """``at`` as the API writes every time: ISO 8601 in UTC with ``Z`` (as msgspec encodes
    the response types), a naive time from SQLite taken as UTC."""
    at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.isoformat().replace("+00:00", "Z")


def brussels_date(at: datetime) -> date:
    """The Belgian calendar day of an instant (a naive one taken as UTC, as SQLite stores it)."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(BRUSSELS).date()
