"""What shelter staff (own operator) and admins see. The only response types with an address."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from api.schemas import AreaRef, Location, Out, PoolRead, area_ref, location, pool_read
from capacity.crypto import Address
from capacity.health_rules import AreaCondition
from capacity.models import AvailabilityReport
from capacity.phones import TELLS_ZONE, fixed_line_zone, tells_zone_message
from capacity.registry import FacilityView
from capacity.settings import Settings
from placement.policy import AccessPolicy, policy_from_json


class FacilityWarning(Out, kw_only=True):
    """Something an admin or the staff should change; the facility works as it is."""

    code: str
    message: str


class FacilityDetail(Out, kw_only=True):
    id: int
    ref: str
    alias: str
    kind: str
    operator: str
    location: Location
    policy: AccessPolicy
    intake_phone: str
    intake_phone_24h: bool = msgspec.field(name="intakePhone24h")  # answered round the clock
    handover_protocol: str
    secret_address: bool
    status: str
    status_reason: str | None
    status_until: datetime | None
    valid_from: datetime | None
    planned_end: datetime | None
    first_planned_end: datetime | None  # set once the scheme has been extended
    extensions: int  # how often its planned end was pushed back
    pools: list[PoolRead]
    warnings: list[FacilityWarning] = []


class AreaConditionRead(Out, kw_only=True):
    """An admission condition switched on for an area the facility lies in (R16): why
    helplines and police ask about it before they send someone."""

    condition: str
    reason: str
    area: AreaRef
    since: datetime
    until: datetime | None = None  # when the measure ends by itself


class StaffFacilityRead(FacilityDetail, kw_only=True):
    """A facility as its own staff see it: with its confidential address (each read audited)."""

    address: Address | None
    area_conditions: list[AreaConditionRead] = []


class AvailabilityReportRead(Out, kw_only=True):
    at: datetime
    kind: str
    source: str
    units_total: int
    units_occupied: int
    units_held: int
    units_blocked: int
    version: int


def facility_fields(view: FacilityView, settings: Settings, now: datetime) -> dict[str, object]:
    f = view.facility
    return {
        "id": f.id,
        "ref": f.ref,
        "alias": f.alias,
        "kind": f.kind,
        "operator": view.operator.name,
        "location": location(f.municipality_nis),
        "policy": policy_from_json(f.policy),
        "intake_phone": f.intake_phone,
        "intake_phone_24h": f.intake_phone_24h,
        "handover_protocol": f.handover_protocol,
        "secret_address": f.secret_address,
        "status": f.status,
        "status_reason": f.status_reason,
        "status_until": f.status_until,
        "valid_from": f.valid_from,
        "planned_end": f.planned_end,
        "first_planned_end": f.first_planned_end,
        "extensions": f.extensions or 0,
        "pools": [pool_read(p, f, settings, now) for p in view.pools],
        "warnings": facility_warnings(f.intake_phone, secret_address=f.secret_address),
    }


def facility_warnings(intake_phone: str, *, secret_address: bool) -> list[FacilityWarning]:
    """What to fix on a facility: a secret place whose intake number is a landline."""
    return landline_warnings(fixed_line_zone(intake_phone) if secret_address else None)


def landline_warnings(zone: str | None) -> list[FacilityWarning]:
    """The warning for a secret place whose intake number rings in area ``zone``."""
    if zone is None:
        return []
    return [FacilityWarning(code=TELLS_ZONE, message=tells_zone_message(zone))]


def facility_detail(view: FacilityView, settings: Settings, now: datetime) -> FacilityDetail:
    return FacilityDetail(**facility_fields(view, settings, now))  # type: ignore[arg-type]


def staff_facility(
    view: FacilityView,
    address: Address | None,
    settings: Settings,
    now: datetime,
    conditions: Sequence[AreaCondition] = (),
) -> StaffFacilityRead:
    """``conditions``: ``health_rules.in_force_at`` for this facility's municipality."""
    return StaffFacilityRead(
        address=address,
        area_conditions=[
            AreaConditionRead(
                condition=c.condition,
                reason=c.reason,
                area=area_ref(c.area_nis) if c.area_nis != "BE" else _BELGIUM,
                since=c.created_at,
                until=c.until,
            )
            for c in conditions
        ],
        **facility_fields(view, settings, now),  # type: ignore[arg-type]
    )


_BELGIUM = AreaRef(
    nis="BE", level="country", name_fr="Belgique", name_nl="België", name_de="Belgien"
)


def report_read(r: AvailabilityReport) -> AvailabilityReportRead:
    return AvailabilityReportRead(
        at=r.at,
        kind=r.kind,
        source=r.source,
        units_total=r.units_total,
        units_occupied=r.units_occupied,
        units_held=r.units_held,
        units_blocked=r.units_blocked,
        version=r.version,
    )


class StaffAuditRead(Out, kw_only=True):
    """One entry of the audit log about one of my facilities: who (operator and role) did what,
    when — an address read, a status change, a hold's arrival..."""

    id: int  # to page back: ?beforeId=<the last id seen>
    at: datetime
    actor_operator: str | None  # None: Abri itself (a scheduled job) or the command line
    actor_role: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None
