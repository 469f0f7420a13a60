"""A CPAS spreadsheet exported as CSV and served over HTTP.

Header row required, comma, semicolon or tab separated (Belgian Excel uses ``;``, many export
jobs a tab): the separator the header line uses most; UTF-8 with or without BOM, or UTF-16 with
its BOM (Excel's "Unicode Text" export)::

    place_id;places_total;places_occupied;places_blocked;updated_at
    URG-1;6;4;0;2026-01-15T01:00:00+01:00

``places_blocked`` and ``updated_at`` columns are optional; the other three are required, and
a row with a missing or non-numeric cell rejects the whole document.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

from clients.feeds.base import (
    FeedRejected,
    Reading,
    check_counts,
    check_id,
    parse_time,
    unique,
    whole_number,
)

FORMAT = "csv_export"
ACCEPT = "text/csv"

REQUIRED = ("place_id", "places_total", "places_occupied")
OPTIONAL = ("places_blocked", "updated_at")
#: What a column name looks like. Anything else in the first line means it is no CSV header at
#: all (a login or error page served with 200, which may echo the polled URL and its key): it
#: is not quoted in the reason, which every admin sees and the log keeps.
_COLUMN_NAME = re.compile(r"[\w .()#%-]{0,40}")


def _int(raw: str | None, column: str, line: int) -> int:
    value = whole_number(raw or "")
    if value is None:
        raise FeedRejected(f"line {line}: {column} is not a whole number")
    return value


def _text(body: bytes) -> str:
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return body.decode("utf-16")  # the BOM says which byte order; it is dropped
        except UnicodeDecodeError:
            raise FeedRejected("CSV starts as UTF-16 but is not UTF-16") from None
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FeedRejected(
            'CSV is not UTF-8 (in Excel: save as "CSV UTF-8" or "Unicode Text")'
        ) from None


def parse(body: bytes) -> list[Reading]:
    text = _text(body)
    lines = text.splitlines()
    if not lines:
        raise FeedRejected("CSV is empty")
    # The header names the exact columns whatever the separator, so a wrong guess cannot slip
    # through: it fails the column check. On a tie, the comma.
    delimiter = max((",", ";", "\t"), key=lines[0].count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        rows = list(reader)
    except csv.Error:
        raise FeedRejected("CSV is malformed") from None
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if any(not _COLUMN_NAME.fullmatch(c) for c in unknown):
        raise FeedRejected(
            "the first line is not a CSV header (an HTML page, an error message or another "
            "document?)"
        )
    if missing or unknown or len(set(header)) != len(header):
        raise FeedRejected(
            f"CSV columns changed: missing {missing or 'none'}, unexpected {unknown or 'none'}"
        )
    col = {name: i for i, name in enumerate(header)}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(header):
            raise FeedRejected(f"line {n}: {len(row)} cells, expected {len(header)}")
        fid = check_id(row[col["place_id"]])
        total = _int(row[col["places_total"]], "places_total", n)
        occupied = _int(row[col["places_occupied"]], "places_occupied", n)
        blocked = None
        if "places_blocked" in col and row[col["places_blocked"]].strip():
            blocked = _int(row[col["places_blocked"]], "places_blocked", n)
        check_counts(fid, total, occupied, blocked)
        at = parse_time(row[col["updated_at"]]) if "updated_at" in col else None
        out.append(
            Reading(
                feed_id=fid,
                units_total=total,
                units_occupied=occupied,
                units_blocked=blocked,
                reported_at=at,
            )
        )
    return unique(out)
