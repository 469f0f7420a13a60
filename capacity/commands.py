"""Inputs to the capacity services (admin, staff, CLI, CSV import). camelCase on the wire.

Response types live in ``api/<role>/schemas.py``, one set per audience, so that a type sent to
a helpline, police or task-force caller has no address field at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from capacity.crypto import Address
from capacity.errors import InvalidInput
from placement.policy import PolicyPatch

FacilityKind = Literal[
    "refuge", "crisis_hotel", "cpas_place", "night_shelter", "safe_house", "other"
]
FacilityStatus = Literal[
    "open", "closed_to_admissions", "reduced", "suspended", "location_compromised"
]
OperatorKind = Literal[
    "shelter_operator",
    "cpas",
    "hotel_partner",
    "police",
    "helpline",
    "caw",  # CAW welfare centres: they run safe houses and refer
    "fjc",  # family justice centres
    "sac",  # sexual assault care centres (CPVS/ZSG)
    "prosecutor",  # on-call prosecutors
    "taskforce",
    "admin",
]
Role = Literal["admin", "staff", "helpline", "police", "taskforce"]
UnitKind = Literal["bed", "room", "family_room"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Alias = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"\S")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"\S")]
Nis = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5}$", examples=["21004"])]
Phone = Annotated[str, msgspec.Meta(min_length=4, max_length=40, pattern=r"^\+?[0-9 ./()-]{4,40}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
Places = Annotated[int, msgspec.Meta(ge=1, le=50)]
Version = Annotated[int, msgspec.Meta(ge=1)]
Minutes = Annotated[int, msgspec.Meta(ge=5, le=60 * 24 * 30)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
#: A policy template's name (``GET /admin/policy-templates``): an unknown one is refused with
#: its name quoted, so it has a limit like every other text a client sends.
TemplateName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["ipv_refuge"])]
#: A facility status's reason: the API and the staff page take the same length (the page
#: refused nothing and cut at 500 what the API kept whole).
STATUS_REASON_MAX = 2000
StatusReason = Annotated[
    str,
    msgspec.Meta(
        max_length=STATUS_REASON_MAX,
        description=(
            "Why (required unless open, and to lift location_compromised). Seen by the "
            "operator's staff and the administrators, never by helplines or police."
        ),
    ),
]


#: An instant given by a client: it must carry its offset (``Z`` or ``+01:00``); a bare local
#: time is ambiguous, and is refused with a 422 rather than guessed.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]

#: The instants Abri accepts (a year 9999 with a negative offset overflows on conversion).
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def check_instant(value: datetime | None, field: str) -> None:
    """A clear 422 for an instant outside 2000-2100 (never an overflow later: a 500)."""
    if value is None:
        return
    try:
        ok = EARLIEST <= value.astimezone(UTC) < LATEST
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise InvalidInput(f"{field} must be between 2000 and 2100.", field=field)


UNTIL_IN_PAST = "'until' must be in the future."


def check_future(value: datetime | None, now: datetime, field: str, message: str = "") -> None:
    """``check_instant``, and a clear 422 for an instant already past (``message``, or
    "<field> must be in the future.")."""
    check_instant(value, field)
    if value is not None and value <= now:
        raise InvalidInput(message or f"{field} must be in the future.", field=field)


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class OperatorCreate(Struct, kw_only=True):
    name: Name
    kind: OperatorKind
    # a local requester's main municipality (a police zone): the console's default area
    home_municipality_nis: Nis | None = None


class OperatorUpdate(Struct, kw_only=True):
    home_municipality_nis: Nis | None  # null: no home area


class TokenCreate(Struct, kw_only=True):
    operator: Name
    role: Role
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    expires_at: Instant | None = None


class PoolCreate(Struct, kw_only=True):
    label: Label
    unit_kind: UnitKind = "bed"
    places_per_unit: Places = 1
    units_total: Count = 0
    units_occupied: Count = 0
    units_blocked: Count = 0
    surge_24h: Count = msgspec.field(default=0, name="surge24h")
    surge_72h: Count = msgspec.field(default=0, name="surge72h")


class PoolUpdate(Struct, kw_only=True):
    """Admin changes to a pool's description (counts go through availability updates)."""

    label: Label | None = None
    unit_kind: UnitKind | None = None
    places_per_unit: Places | None = None
    surge_24h: Count | None = msgspec.field(default=None, name="surge24h")
    surge_72h: Count | None = msgspec.field(default=None, name="surge72h")


class FacilityCreate(Struct, kw_only=True):
    operator: Name
    alias: Alias
    municipality_nis: Nis
    template: TemplateName | None = None
    kind: FacilityKind | None = None
    policy: PolicyPatch | None = None  # over the template's policy (create) or the current
    intake_phone: Phone
    # answered round the clock (R21); else only in office hours
    intake_phone_24h: bool = msgspec.field(default=True, name="intakePhone24h")
    handover_protocol: Text = ""
    secret_address: bool | None = None  # the template decides; on by default
    address: Address | None = None
    valid_from: Instant | None = None
    planned_end: Instant | None = None
    stale_after_minutes: Minutes | None = None
    pools: list[PoolCreate] = msgspec.field(default_factory=list)


class FacilityUpdate(Struct, kw_only=True):
    alias: Alias | None = None
    municipality_nis: Nis | None = None
    policy: PolicyPatch | None = None  # over the current policy; fields left out are kept
    intake_phone: Phone | None = None
    intake_phone_24h: bool | None = msgspec.field(default=None, name="intakePhone24h")
    handover_protocol: Text | None = None
    secret_address: bool | None = None
    # null clears these (a scheme made permanent, the kind's staleness again); left out: kept
    valid_from: Instant | msgspec.UnsetType | None = msgspec.UNSET
    planned_end: Instant | msgspec.UnsetType | None = msgspec.UNSET
    stale_after_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET


#: FacilityUpdate fields that ``null`` clears (the others: null is the same as left out).
CLEARABLE_FACILITY_FIELDS = frozenset({"valid_from", "planned_end", "stale_after_minutes"})


class StatusChange(Struct, kw_only=True):
    status: FacilityStatus
    reason: StatusReason | None = None
    until: Instant | None = None


class AvailabilityUpdate(Struct, kw_only=True):
    """What staff report: units in service and units occupied (held units are Abri's)."""

    units_total: Count
    units_occupied: Count
    units_blocked: Count | None = None
    surge_24h: Count | None = msgspec.field(default=None, name="surge24h")
    surge_72h: Count | None = msgspec.field(default=None, name="surge72h")
