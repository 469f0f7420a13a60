"""Query parameters shared by the audit routes (admin: everything; staff: one facility)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from litestar.params import QueryParameter

from capacity.commands import check_instant
from capacity.errors import InvalidInput
from placement.holds_service import parse_ref

# ISO 8601 with a timezone: Z or an offset (Belgian local time is +01:00 in winter, +02:00 in
# summer). A "+" typed in a URL arrives as a space: it is read as the "+" it was.
_INSTANT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+ -]\d{2}:\d{2})$"
_TIME_DOC = (
    "ISO 8601 with `Z` or an offset, e.g. `2026-01-17T02:00:00+01:00` (Belgian winter time; "
    "+02:00 in summer; in a URL write `+` as `%2B`)"
)

SinceParam = Annotated[
    str | None,
    QueryParameter(
        name="from", pattern=_INSTANT, description=f"entries at or after this instant: {_TIME_DOC}"
    ),
]
UntilParam = Annotated[
    str | None,
    QueryParameter(
        name="to", pattern=_INSTANT, description=f"entries before this instant: {_TIME_DOC}"
    ),
]
HoldRefParam = Annotated[
    str | None,
    QueryParameter(
        name="holdRef",
        max_length=20,
        description="everything about one hold, by its reference code (e.g. `KM4T-9RC7`): its "
        "creation, extensions and end, and the night-worker link that marked it",
    ),
]
ObjectTypeParam = Annotated[
    str | None,
    QueryParameter(
        name="objectType", max_length=32, description="e.g. `hold`, `facility`, `token`"
    ),
]
ObjectIdParam = Annotated[
    str | None,
    QueryParameter(name="objectId", max_length=64, description="the `objectId` of the entries"),
]


def instant(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    if re.search(r" \d{2}:\d{2}$", raw):
        raw = raw[:-6] + "+" + raw[-5:]
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(
            f"`{name}` is not a valid date-time (e.g. 2026-01-17T02:00:00+01:00).", field=name
        ) from exc
    check_instant(at, name)  # a mistyped year (1, 9999) would overflow in the query: a 500
    return at


def window(raw_since: str | None, raw_until: str | None) -> tuple[datetime | None, datetime | None]:
    since, until = instant(raw_since, "from"), instant(raw_until, "to")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("`from` must be before `to`.", field="from")
    return since, until


def hold_ref(raw: str | None) -> str | None:
    return None if raw is None else parse_ref(raw, field="holdRef")
