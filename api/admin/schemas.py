"""Admin responses. Addresses only through the explicit (audited) address route."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from api.schemas import AreaRef, Out
from capacity.commands import FacilityKind, Name, Struct
from placement.policy import AccessPolicy


class OperatorRead(Out, kw_only=True):
    id: int
    name: str
    kind: str
    created_at: datetime
    home_municipality_nis: str | None = None


def operator_read(op: Any) -> OperatorRead:
    return OperatorRead(
        id=op.id,
        name=op.name,
        kind=op.kind,
        created_at=op.created_at,
        home_municipality_nis=op.home_municipality_nis,
    )


class TokenRead(Out, kw_only=True):
    id: int
    operator: str
    role: str
    prefix: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead, kw_only=True):
    token: str  # shown once; only its hash is kept


class TemplateRead(Out, kw_only=True):
    name: str
    title: str
    kind: str
    secret_address: bool
    policy: AccessPolicy
    handover_protocol: str


class ImportWarning(Out, kw_only=True):
    """An imported facility that works but should be changed (as in a facility's warnings)."""

    facility_id: int
    alias: str
    code: str
    message: str


class ImportResult(Out, kw_only=True):
    imported: int
    facility_ids: list[int]
    warnings: list[ImportWarning] = []


class AuditRead(Out, kw_only=True):
    id: int
    at: datetime
    actor_operator_id: int | None
    actor_operator: str | None  # its name (None: the command line or a scheduled job)
    actor_token_id: int | None  # which token (None: the command line or a scheduled job)
    actor_role: str | None
    action: str
    object_type: str
    object_id: str | None
    facility_id: int | None
    detail: dict[str, Any] | None


class AlertRead(Out, kw_only=True):
    id: int
    at: datetime
    kind: str
    facility_id: int | None
    message: str
    acknowledged_at: datetime | None


# --------------------------------------------------------------------------- webhooks


class WebhookSet(Struct, kw_only=True):
    """Where to send a requester operator's hold notifications."""

    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=500,
            description="An absolute http(s) URL on the requester's own system.",
            examples=["https://dispatch.example.be/abri/webhook"],
        ),
    ]
    rotate_secret: bool = False  # an existing endpoint keeps its secret unless this is true


class WebhookRead(Out, kw_only=True):
    """An operator's webhook endpoint with delivery figures. Never the secret."""

    operator_id: int
    operator: str
    url: str
    created_at: datetime
    pending: int
    delivered: int
    failed: int
    last_delivered_at: datetime | None
    last_failed_at: datetime | None
    last_error: str | None


class WebhookCreated(WebhookRead, kw_only=True):
    # The signing secret, in clear, only in the response that generated it; null otherwise.
    secret: str | None


class OutboxRead(Out, kw_only=True):
    """One webhook delivery (no payload beyond the hold reference and state)."""

    id: int
    operator_id: int
    operator: str | None
    event: str
    ref: str | None
    state: str | None
    status: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


class SchemesExtend(Struct, kw_only=True):
    """Push back the planned end of every temporary scheme ending before ``plannedEnd``
    (e.g. a winter plan extended for all its hotels); optionally only one operator's, one kind
    of place, or those in one area. Only extends, never shortens."""

    planned_end: Annotated[datetime, msgspec.Meta(tz=True, examples=["2027-04-30T22:00:00Z"])]
    operator: Name | None = None
    kind: FacilityKind | None = None
    area_nis: (
        Annotated[str, msgspec.Meta(pattern=r"^(BE|[0-9]{5})$", examples=["60000"])] | None
    ) = None


class SchemesExtended(Out, kw_only=True):
    extended: int
    facility_ids: list[int]


class HealthConditionSet(Struct, kw_only=True):
    """Why the condition is switched on for the area (shown to admins and staff; audited), and
    when it ends by itself (``until``; omitted: until switched off)."""

    reason: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            examples=["Provincial measure: negative test before admission until further notice"],
        ),
    ]
    until: Annotated[datetime, msgspec.Meta(tz=True, examples=["2027-02-28T23:00:00Z"])] | None = (
        None
    )


class HealthConditionRead(Out, kw_only=True):
    area: AreaRef
    condition: str
    reason: str
    created_at: datetime
    updated_at: datetime
    until: datetime | None = None


#: Swagger UI's "Try it out" bodies, valid on the demo data (``abri serve --demo``): an
#: existing operator, fictional aliases and phones (555), no address (secret refuges).
FACILITY_EXAMPLE: dict[str, Any] = {
    "operator": "Refuges Solidaires asbl",
    "alias": "Refuge LG-90",
    "municipalityNis": "62063",
    "kind": "refuge",
    "intakePhone": "+32 470 55 01 90",
    "secretAddress": True,
    "policy": {"acceptsUndocumented": True, "genders": ["female"]},
    "pools": [{"label": "Beds", "unitKind": "bed", "unitsTotal": 8}],
}
IMPORT_CSV_EXAMPLE = (
    "operator,alias,municipality,intake_phone,kind,secret_address,accepts_undocumented,pools\n"
    "Refuges Solidaires asbl,Refuge LG-91,62063,+32 470 55 01 91,refuge,yes,yes,Beds:bed:1:8\n"
    "Refuges Solidaires asbl,Refuge NA-92,92094,+32 470 55 01 92,refuge,yes,no,"
    "Family rooms:family_room:4:3\n"
)
