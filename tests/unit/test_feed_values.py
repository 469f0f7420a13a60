"""Feeds: a malformed number or time in a feed document is rejected with a reason
an admin can act on, never as an "internal error" (the poller's answer to a bug)."""

from __future__ import annotations

import pytest

from clients.feeds import csv_export, edxl_have, json_inventory
from clients.feeds.base import FeedRejected

HAVE = b"""<?xml version="1.0" encoding="UTF-8"?>
<HospitalStatus><Hospital>
  <Organization><OrganizationInformation><OrganizationID>CPAS</OrganizationID>
  </OrganizationInformation></Organization>
  <HospitalBedCapacityStatus><BedCapacity><BedType>Beds</BedType><Capacity>
    <CapacityStatus>Open</CapacityStatus><AvailableCount>AVAIL</AvailableCount>
    <BaselineCount>10</BaselineCount></Capacity></BedCapacity></HospitalBedCapacityStatus>
  <LastUpdateTime>WHEN</LastUpdateTime>
</Hospital></HospitalStatus>"""


def have(avail: str = "3", when: str = "2026-01-15T01:00:00Z") -> bytes:
    return HAVE.replace(b"AVAIL", avail.encode()).replace(b"WHEN", when.encode())


@pytest.mark.parametrize(
    ("mod", "body"),
    [
        (csv_export, b"place_id;places_total;places_occupied\nA;--5;0\n"),
        (csv_export, "place_id;places_total;places_occupied\nA;5;²\n".encode()),
        (
            csv_export,
            b"place_id;places_total;places_occupied;updated_at\nA;5;1;0001-01-01T00:00:00+01:00\n",
        ),
        (edxl_have, have(avail="--3")),
        (edxl_have, have(avail="³")),
        (edxl_have, have(when="0001-01-01T00:30:00+01:00")),
        (json_inventory, b'{"generatedAt": "0001-01-01T00:00:00+05:00", "rooms": []}'),
    ],
)
def test_a_bad_number_or_time_is_a_rejection_with_a_reason(mod: object, body: bytes) -> None:
    with pytest.raises(FeedRejected):
        mod.parse(body)  # type: ignore[attr-defined]


def test_a_page_served_instead_of_the_csv_is_not_quoted_in_the_reason() -> None:
    """The reason is shown to every admin and logged: a login or error page served with 200
    (here echoing the polled URL, key included) must not be copied into it."""
    page = (
        b"<html><body>Session expired. <a href=/login?next=/export?token=Zq8Xw2key>"
        b"Log in again</a></body></html>\n"
    )
    with pytest.raises(FeedRejected) as caught:
        csv_export.parse(page)
    assert "zq8xw2key" not in caught.value.reason.lower()
    assert "not a CSV header" in caught.value.reason


def test_a_renamed_csv_column_is_still_named_in_the_reason() -> None:
    with pytest.raises(FeedRejected) as caught:
        csv_export.parse(b"place_id;places_total;places_free;updated_at (UTC)\nA;5;1;\n")
    assert "places_free" in caught.value.reason and "updated_at (utc)" in caught.value.reason


def test_json_with_a_byte_order_mark_is_read() -> None:
    """RFC 8259 lets a parser ignore a BOM; Windows tools (PowerShell 5, .NET's UTF8 writer)
    put one in front of the JSON a CPAS or hotel system serves. The CSV adapter already reads
    it; JSON must too, rather than call the document 'garbage or truncated'."""
    body = b'\xef\xbb\xbf{"rooms": [{"roomType": "DBL", "total": 4, "occupied": 1}]}'
    assert [(r.feed_id, r.units_total) for r in json_inventory.parse(body)] == [("DBL", 4)]


def test_an_inventory_without_out_of_order_rooms_reports_none_blocked() -> None:
    """``total`` counts every room, out of order or not, and ``outOfOrder`` is optional: a
    room type without it has all its rooms in service. Its blocked count is then 0, not
    "unknown" (which kept the last out-of-order figure beside a total that already counted
    the repaired room: 10 rooms in service plus 1 blocked for a hotel with 10)."""
    body = b'{"rooms": [{"roomType": "DBL", "total": 10, "occupied": 4}]}'
    (reading,) = json_inventory.parse(body)
    assert (reading.units_total, reading.units_blocked) == (10, 0)


def test_a_tab_separated_export_is_read_like_a_csv() -> None:
    """A CPAS export job writing tab-separated values (Excel's "Text (Tab delimited)", most
    databases' export default) was told "the first line is not a CSV header": the header names
    the exact columns either way, so the separator it uses most is the document's."""
    body = (
        b"place_id\tplaces_total\tplaces_occupied\tupdated_at\n"
        b"URG-1\t6\t4\t2026-01-15T01:00:00+01:00\nURG 2\t2\t2\t\n"
    )
    rs = csv_export.parse(body)
    assert [(r.feed_id, r.units_total, r.units_occupied) for r in rs] == [
        ("URG-1", 6, 4),
        ("URG 2", 2, 2),
    ]
    with pytest.raises(FeedRejected, match=r"line 2: 2 cells, expected 3"):
        csv_export.parse(b"place_id\tplaces_total\tplaces_occupied\nURG-1\t6,4\n")
