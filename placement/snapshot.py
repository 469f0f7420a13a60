"""What the matcher sees of the world: plain structs built by the database layer.

The matcher never touches a session (DESIGN §3): ``capacity`` reads facilities and pools
and hands them over as these snapshots. They carry the address-free facts only; the
secret address never enters ``placement``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from placement.policy import AccessPolicy

UnitKind = Literal["bed", "room", "family_room"]
FacilityStatus = Literal[
    "open", "closed_to_admissions", "reduced", "suspended", "location_compromised"
]

#: Statuses that admit new households. ``reduced`` admits, with a warning.
ADMITTING_STATUSES: frozenset[str] = frozenset({"open", "reduced"})


class PoolSnapshot(msgspec.Struct, kw_only=True):
    """The units of one kind at one facility, with the live counters."""

    id: int
    ref: str
    unit_kind: UnitKind
    places_per_unit: int
    units_total: int
    units_occupied: int
    units_held: int
    units_blocked: int = 0
    reported_at: datetime | None = None
    confirmed_at: datetime | None = None

    @property
    def free(self) -> int:
        """DESIGN §1: total - occupied - held, never below 0 (``blocked`` is informational:
        ``units_total`` already counts only units in service)."""
        return max(0, self.units_total - self.units_occupied - self.units_held)

    @property
    def last_seen(self) -> datetime | None:
        """When staff or a feed last said something true about this pool."""
        stamps = [t for t in (self.reported_at, self.confirmed_at) if t is not None]
        return max(stamps) if stamps else None


class FacilitySnapshot(msgspec.Struct, kw_only=True):
    """A facility as the matcher needs it: policy, status, validity and pools."""

    id: int
    ref: str
    alias: str
    kind: str
    operator_id: int
    municipality_nis: str
    policy: AccessPolicy
    status: FacilityStatus = "open"
    status_until: datetime | None = None
    valid_from: datetime | None = None
    planned_end: datetime | None = None
    secret_address: bool = False
    intake_phone: str = ""
    intake_phone_24h: bool = True  # answered round the clock (R21)
    handover_protocol: str = ""
    stale_after_minutes: int = 720
    pools: list[PoolSnapshot] = msgspec.field(default_factory=list)
