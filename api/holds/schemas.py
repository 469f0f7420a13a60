"""Hold request and response types. Requester and staff views are separate types; neither has
an address field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from api.schemas import AreaRef, Out, area_ref
from placement.holds import minutes_left
from placement.holds_service import CLOSE_CODES, HoldView
from placement.household import Household
from placement.policy import NeedCategory

Minutes = Annotated[int, msgspec.Meta(ge=15, le=16 * 60)]
#: The professional's contact (R26): the person placed is never contacted through Abri.
CALLBACK_DESCRIPTION = (
    "How the shelter reaches you, the professional (service, phone, your name): never the "
    "person's name or phone number. Shown to the place's staff; kept until "
    "ABRI_RETENTION_DAYS after the hold ends."
)
CALLBACK_MAX = 200  # the column's length; the console's form takes the same
Callback = Annotated[str, msgspec.Meta(max_length=CALLBACK_MAX, description=CALLBACK_DESCRIPTION)]
#: A hold's closing reason as staff give it (a decline): the staff page takes the same.
HOLD_REASON_MAX = 500
#: Why a hold ended, as its requester reads it (``holds_service.CLOSE_CODES``).
CloseCode = Literal[
    "released",
    "declined",
    "location_compromised",
    "expired",
    "no_show",
    "released_by_admin",
    "departed",
]
assert get_args(CloseCode) == CLOSE_CODES
CLOSE_CODE_DESCRIPTION = (
    "Why the hold ended, as a stable code (never the staff's own words, which are in "
    "`closeReason`): `released` (by you), `released_by_admin`, `declined` (by the place's "
    "staff), `location_compromised` (declined because the place's location is compromised: "
    "do not go there; search again), `expired`, `no_show`, `departed`. The same code as the "
    "webhook's `reason`. Null while the hold is open (`held`, `arrived`), and for a hold that "
    "ended before Abri stored the code when its cause could not be told. New codes may be "
    "added: treat an unknown one as the `state` itself."
)

DO_NOT_GO_DESCRIPTION = (
    "True when no one may be sent to this place, nor call it, about this hold: it was declined "
    "because the place's location is compromised (`closeCode` `location_compromised`), or the "
    "place's location is compromised now (a household already there, `arrived`, is moved by "
    "the shelter's own protocol; the shelter reaches you through your callback). Search again "
    "for a household still on its way. The intake phone and handover protocol are then null."
)
WITHDRAWN_DESCRIPTION = "Null when `doNotGo` is true: do not call the place or go there."

HOLD_EXAMPLE = {
    "poolRef": "pool_3f9a1c2b7d4e",
    "need": "ipv",
    "household": {
        "adults": [{"gender": "female", "ageBand": "25-64"}],
        "children": [{"age": 4, "gender": "female"}, {"age": 13, "gender": "male"}],
        "residenceStatus": "undocumented",
        "income": "no",
        "languages": ["fr"],
    },
    "minutes": 90,
    "callback": "Zone Bruxelles-Ixelles dispatch, +32 2 555 00 00, ask for INP Dupont",
}


class HoldCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Reserve a place found by a search (its option reference is the pool reference)."""

    pool_ref: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=40,
            examples=["pool_3f9a1c2b7d4e"],
            description=(
                "The poolRef of an option of POST /placements/search. (On the demo data the "
                "example's reference is the example search's best option.)"
            ),
        ),
    ]
    household: Household
    need: NeedCategory
    minutes: Minutes | None = None
    callback: Callback | None = None
    episode_token: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=64,
                description=(
                    "The same opaque token as on the household's searches (optional): the "
                    "task force then counts this household once however many holds it takes "
                    "(R33). Kept only as a hash with your operator; never a name."
                ),
            ),
        ]
        | None
    ) = None


class HoldExtend(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    minutes: Minutes | None = None


class HoldDecline(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    reason: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=HOLD_REASON_MAX,
            description=(
                "Why the place cannot take this household, read by the requester (police, "
                "helpline) and kept until ABRI_RETENTION_DAYS after the hold ends: no name, "
                "date of birth or phone number of the person."
            ),
        ),
    ]


#: When a hold ended, as the requester and the place's staff read it.
ClosedAt = Annotated[
    datetime | None,
    msgspec.Meta(
        description=(
            "When the hold left `held` or `arrived` (released, declined, no-show, departed; an "
            "expired hold: its deadline); null while it is open."
        )
    ),
]


class PlaceRead(Out, kw_only=True):
    ref: str
    alias: str
    kind: str
    area: AreaRef
    pool_label: str
    unit_kind: str


PLACE_WARNING_DESCRIPTION = (
    "While the hold is `held`: the place has since closed to new admissions "
    "(`closed_to_admissions`) or suspended its service (`suspended`). The hold stays valid — "
    "the place promised this bed, and its staff may still decline it — and can be extended, "
    "but call the intake phone before going. Null otherwise (a compromised location: "
    "`doNotGo`). Never the place's own reason."
)


class HoldRead(Out, kw_only=True):
    """What the requester gets: the code, the deadline, who to call — never the address."""

    ref: str
    state: str
    units: int
    need: str
    created_at: datetime
    deadline: datetime
    minutes_left: int
    extensions: int
    place: PlaceRead
    intake_phone: Annotated[str | None, msgspec.Meta(description=WITHDRAWN_DESCRIPTION)]
    # R21: true when the intake phone answers round the clock; false: office hours only
    intake_phone_24h: bool | None = msgspec.field(name="intakePhone24h")
    handover_protocol: Annotated[str | None, msgspec.Meta(description=WITHDRAWN_DESCRIPTION)]
    do_not_go: Annotated[bool, msgspec.Meta(description=DO_NOT_GO_DESCRIPTION)]
    callback: str | None
    close_reason: str | None
    closed_at: ClosedAt
    close_code: Annotated[CloseCode | None, msgspec.Meta(description=CLOSE_CODE_DESCRIPTION)]
    place_warning: Annotated[
        Literal["closed_to_admissions", "suspended"] | None,
        msgspec.Meta(description=PLACE_WARNING_DESCRIPTION),
    ] = None


class StaffHoldRead(Out, kw_only=True):
    """What the facility's staff see of an incoming hold: composition, requester, callback."""

    ref: str
    state: str
    units: int
    need: str
    household: dict[str, Any] | None
    requester_operator: str
    requester_kind: str
    callback: str | None
    created_at: datetime
    deadline: datetime
    minutes_left: int
    facility_id: int
    facility_alias: str
    pool_id: int
    pool_label: str
    close_reason: str | None
    closed_at: ClosedAt
    close_code: Annotated[CloseCode | None, msgspec.Meta(description=CLOSE_CODE_DESCRIPTION)]


def hold_read(v: HoldView, now: datetime) -> HoldRead:
    """The requester's view; at a place no one may go to (``HoldView.do_not_go``) without the
    intake phone and handover protocol (staff and admins keep them: ``staff_hold_read``)."""
    nis, _level = v.coarse_area
    withdrawn = v.do_not_go
    return HoldRead(
        ref=v.ref,
        state=v.effective_state(now),
        units=v.units,
        need=v.need,
        created_at=v.created_at,
        deadline=v.deadline,
        minutes_left=minutes_left(v.deadline, now) if v.effective_state(now) == "held" else 0,
        extensions=v.extensions,
        place=PlaceRead(
            ref=v.facility_ref,
            alias=v.facility_alias,
            kind=v.facility_kind,
            area=area_ref(nis),
            pool_label=v.pool_label,
            unit_kind=v.unit_kind,
        ),
        intake_phone=None if withdrawn else v.intake_phone,
        intake_phone_24h=None if withdrawn else v.intake_phone_24h,
        handover_protocol=None if withdrawn else v.handover_protocol,
        do_not_go=withdrawn,
        callback=v.callback,
        close_reason=v.close_reason,
        closed_at=v.ended_at(now),
        close_code=v.code(now),  # type: ignore[arg-type]
        place_warning=v.place_warning(now),  # type: ignore[arg-type]
    )


def staff_hold_read(v: HoldView, now: datetime) -> StaffHoldRead:
    state = v.effective_state(now)
    return StaffHoldRead(
        ref=v.ref,
        state=state,
        units=v.units,
        need=v.need,
        household=v.household,
        requester_operator=v.requester_operator,
        requester_kind=v.requester_kind,
        callback=v.callback,
        created_at=v.created_at,
        deadline=v.deadline,
        minutes_left=minutes_left(v.deadline, now) if state == "held" else 0,
        facility_id=v.facility_id,
        facility_alias=v.facility_alias,
        pool_id=v.pool_id,
        pool_label=v.pool_label,
        close_reason=v.close_reason,
        closed_at=v.ended_at(now),
        close_code=v.code(now),  # type: ignore[arg-type]
    )
