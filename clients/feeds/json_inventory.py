"""A hotel partner's room-inventory API (JSON).

Expected document (unknown extra fields are ignored, missing or mistyped ones reject it)::

    {"generatedAt": "2026-01-15T01:00:00Z",
     "rooms": [{"roomType": "DBL", "total": 12, "occupied": 7, "outOfOrder": 1}]}

``roomType`` is the feed identifier mapped to an Abri pool. ``total`` is the hotel's room
count of that type, out-of-order rooms included (as in a property-management system; hence
``outOfOrder`` can never exceed it); ``outOfOrder`` (optional) is reported as blocked units and
taken out of the units in service, which are Abri's ``unitsTotal`` (DESIGN: blocked units are
out of service), so a room out of order is never counted free.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from clients.feeds.base import FeedRejected, Reading, check_counts, check_id, parse_time, unique

FORMAT = "json_inventory"
ACCEPT = "application/json"


class _Room(msgspec.Struct, kw_only=True, rename="camel"):
    room_type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    total: int
    occupied: int
    out_of_order: int | None = None


class _Inventory(msgspec.Struct, kw_only=True, rename="camel"):
    rooms: list[_Room]
    generated_at: str | None = None


def parse(body: bytes) -> list[Reading]:
    # RFC 8259 lets a parser ignore a UTF-8 byte order mark, and Windows tools (PowerShell 5,
    # .NET's UTF8 writer) put one in front of what they write: read it, as the CSV adapter does.
    body = body.removeprefix(b"\xef\xbb\xbf")
    try:
        doc = msgspec.json.decode(body, type=_Inventory)
    except msgspec.ValidationError as exc:
        raise FeedRejected(f"JSON does not match the inventory schema: {exc}") from None
    except msgspec.DecodeError:
        raise FeedRejected("body is not valid JSON (garbage or truncated)") from None
    at = parse_time(doc.generated_at)
    out = []
    for room in doc.rooms:
        fid = check_id(room.room_type)
        check_counts(fid, room.total, room.occupied, room.out_of_order)
        out.append(
            Reading(
                feed_id=fid,
                units_total=room.total - (room.out_of_order or 0),
                units_occupied=room.occupied,
                # total counts every room: without outOfOrder all are in service, none
                # blocked (not "unknown", which would keep an old out-of-order figure)
                units_blocked=room.out_of_order or 0,
                reported_at=at,
            )
        )
    return unique(out)
