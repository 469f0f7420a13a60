"""Bed status modelled on OASIS EDXL-HAVE (Hospital AVailability Exchange).

A subset of HAVE's ``HospitalStatus`` is read: per ``Hospital``, its ``OrganizationID``, its
``LastUpdateTime``, and per ``BedCapacity`` the ``BedType`` and a ``Capacity`` with
``CapacityStatus``, ``AvailableCount`` and ``BaselineCount`` (the beds in service; HAVE makes
it optional, Abri requires it since it reports totals)::

    <HospitalStatus xmlns="urn:oasis:names:tc:emergency:EDXL:HAVE:1.0">
      <Hospital>
        <Organization><OrganizationInformation>
          <OrganizationID>CPAS-LIEGE</OrganizationID>
        </OrganizationInformation></Organization>
        <HospitalBedCapacityStatus>
          <BedCapacity>
            <BedType>EmergencyBeds</BedType>
            <Capacity>
              <CapacityStatus>Open</CapacityStatus>
              <AvailableCount>3</AvailableCount>
              <BaselineCount>10</BaselineCount>
            </Capacity>
          </BedCapacity>
        </HospitalBedCapacityStatus>
        <LastUpdateTime>2026-01-15T01:00:00Z</LastUpdateTime>
      </Hospital>
    </HospitalStatus>

The feed identifier is ``<OrganizationID>/<BedType>``. Occupied = baseline - available; a
status other than ``Open`` (``Full``, ``Closed``...) means nothing is available. Namespaces
are ignored (any HAVE version). Parsing goes through ``defusedxml``: a DTD, entity or external
reference rejects the document (no billion laughs, no XXE).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from clients.feeds.base import (
    FeedRejected,
    Reading,
    check_counts,
    check_id,
    parse_time,
    unique,
    whole_number,
)

FORMAT = "edxl_have"
ACCEPT = "application/xml"

OPEN_STATUSES = {"open", "available"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: Element | None, what: str, *, required: bool = True) -> str | None:
    value = (el.text or "").strip() if el is not None else ""
    if not value:
        if required:
            raise FeedRejected(f"HAVE document lacks {what}")
        return None
    return value


def _count(el: Element | None, what: str) -> int:
    raw = _text(el, what)
    assert raw is not None
    value = whole_number(raw)
    if value is None:
        raise FeedRejected(f"HAVE {what} is not a whole number")
    return value


def parse(body: bytes) -> list[Reading]:
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise FeedRejected("XML with a DTD or entities is refused") from None
    except ParseError:
        raise FeedRejected("body is not well-formed XML (garbage or truncated)") from None
    if _local(root.tag) != "HospitalStatus":
        raise FeedRejected("XML is not an EDXL-HAVE HospitalStatus document")
    hospitals = _children(root, "Hospital")
    out = []
    for hospital in hospitals:
        org = _child(hospital, "Organization")
        info = _child(org, "OrganizationInformation") if org is not None else None
        org_id = _text(_child(info, "OrganizationID") if info is not None else None, "an ID")
        at = parse_time(_text(_child(hospital, "LastUpdateTime"), "LastUpdateTime"))
        status = _child(hospital, "HospitalBedCapacityStatus")
        if status is None:
            raise FeedRejected("HAVE Hospital lacks HospitalBedCapacityStatus")
        for bed in _children(status, "BedCapacity"):
            bed_type = _text(_child(bed, "BedType"), "a BedType")
            fid = check_id(f"{org_id}/{bed_type}")
            cap = _child(bed, "Capacity")
            if cap is None:
                raise FeedRejected(f"HAVE {fid!r} lacks Capacity")
            state = (_text(_child(cap, "CapacityStatus"), "a CapacityStatus") or "").lower()
            available = _count(_child(cap, "AvailableCount"), "AvailableCount")
            total = _count(_child(cap, "BaselineCount"), "BaselineCount")
            check_counts(fid, total, available, None)
            if available > total:
                raise FeedRejected(f"available exceeds baseline for {fid!r}")
            free = available if state in OPEN_STATUSES else 0
            out.append(
                Reading(feed_id=fid, units_total=total, units_occupied=total - free, reported_at=at)
            )
    return unique(out)
