"""Live availability: staff updates with optimistic concurrency, 'still accurate', history,
staleness.

The pool's ``version`` covers only staff-owned fields (counts in service, occupied, blocked,
surge). Holds and releases never bump it, so a busy pool does not invalidate a staff member's
ETag (CONVENTIONS §3.1). ``units_held`` is Abri's truth and no staff report or feed writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.audit import Actor
from capacity.clock import utc_iso
from capacity.commands import AvailabilityUpdate
from capacity.db import Database
from capacity.errors import InvalidInput, NotFound, VersionMismatch
from capacity.models import AvailabilityReport, Facility, Pool


@dataclass(frozen=True)
class Freshness:
    data_age_seconds: int | None
    stale: bool
    last_update: datetime | None


def pool_state(pool: Pool) -> dict[str, object]:
    """The pool's current figures, as plain data (safe to put in an error body)."""
    last = last_update(pool)
    return {
        "poolId": pool.id,
        "version": pool.version,
        "unitsTotal": pool.units_total,
        "unitsOccupied": pool.units_occupied,
        "unitsHeld": pool.units_held,
        "unitsBlocked": pool.units_blocked,
        "unitsFree": max(0, pool.units_total - pool.units_occupied - pool.units_held),
        "lastUpdate": utc_iso(last) if last else None,
    }


def last_update(pool: Pool) -> datetime | None:
    stamps = [t for t in (pool.reported_at, pool.confirmed_at) if t is not None]
    return max(stamps) if stamps else None


def freshness(pool: Pool, *, threshold_minutes: int, now: datetime) -> Freshness:
    last = last_update(pool)
    if last is None:
        return Freshness(None, True, None)
    age = max(0, int((now - last).total_seconds()))
    return Freshness(age, age > threshold_minutes * 60, last)


def stale_threshold(fac: Facility, stale_minutes: dict[str, int]) -> int:
    return fac.stale_after_minutes or stale_minutes.get(fac.kind, 12 * 60)


def _report(
    pool: Pool, kind: str, *, source: str, operator_id: int | None, at: datetime
) -> AvailabilityReport:
    return AvailabilityReport(
        pool_id=pool.id,
        at=at,
        kind=kind,
        source=source,
        operator_id=operator_id,
        units_total=pool.units_total,
        units_blocked=pool.units_blocked,
        units_occupied=pool.units_occupied,
        units_held=pool.units_held,
        version=pool.version,
    )


async def record_change(
    s: AsyncSession,
    pool: Pool,
    *,
    actor: Actor,
    now: datetime,
    source: str,
    at: datetime | None = None,
) -> None:
    """The history row and audit entry of a change of a pool's counts, written in the caller's
    transaction after its UPDATE (staff, admin and feeds alike). ``at``: when the figures were
    true, if the source says (a feed's own timestamp); the audit records ``now``."""
    s.add(_report(pool, "update", source=source, operator_id=actor.operator_id, at=at or now))
    await audit.record(
        s,
        actor=actor,
        at=now,
        action="availability.update",
        object_type="pool",
        object_id=pool.id,
        facility_id=pool.facility_id,
        detail={
            "unitsTotal": pool.units_total,
            "unitsOccupied": pool.units_occupied,
            "unitsBlocked": pool.units_blocked,
            "version": pool.version,
            "source": source,
        },
    )


async def record_confirmation(
    s: AsyncSession,
    pool: Pool,
    *,
    actor: Actor,
    now: datetime,
    source: str,
    at: datetime | None = None,
    audited: bool = True,
) -> None:
    """The history row (and, for people, the audit entry) of a "still accurate". Feeds confirm
    on every unchanged poll, so their confirmations are history only."""
    s.add(_report(pool, "confirm", source=source, operator_id=actor.operator_id, at=at or now))
    if audited:
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="availability.confirm",
            object_type="pool",
            object_id=pool.id,
            facility_id=pool.facility_id,
            detail={"version": pool.version},
        )


async def _pool_in_scope(s: AsyncSession, pool_id: int, operator_scope: int | None) -> Pool:
    row = (
        await s.execute(
            select(Pool, Facility.operator_id)
            .join(Facility, Facility.id == Pool.facility_id)
            .where(Pool.id == pool_id)
        )
    ).first()
    if row is None or (operator_scope is not None and row[1] != operator_scope):
        # Same answer for "not yours" and "does not exist": no existence leak.
        raise NotFound("No such pool.")
    return row[0]


async def get_pool(db: Database, pool_id: int, *, operator_scope: int | None) -> Pool:
    async with db.read() as s:
        return await _pool_in_scope(s, pool_id, operator_scope)


async def update_availability(
    db: Database,
    pool_id: int,
    cmd: AvailabilityUpdate,
    *,
    if_match: int,
    actor: Actor,
    now: datetime,
    operator_scope: int | None,
    source: str = "staff",
    expect_held: int | None = None,
) -> Pool:
    """Set a pool's counts if nobody changed them since ``if_match`` (else 412 + current state).

    ``expect_held``: the held places the counts were worked out from (the staff page's "set
    free places" turns free into occupied with them); a hold made or ended since refuses the
    update the same way, so a bed a new hold took is never counted free again. Holds do not
    change ``version``: an update of the counts themselves stays valid across holds.

    Occupancy above the total is allowed (emergency mattresses) and simply leaves nothing free.
    """
    if cmd.units_blocked is not None and cmd.units_blocked > cmd.units_total:
        raise InvalidInput("unitsBlocked cannot exceed unitsTotal.", field="unitsBlocked")
    async with db.write() as s:
        pool = await _pool_in_scope(s, pool_id, operator_scope)
        values: dict[str, object] = {
            "units_total": cmd.units_total,
            "units_occupied": cmd.units_occupied,
            "reported_at": now,
            "version": Pool.version + 1,
        }
        if cmd.units_blocked is not None:
            values["units_blocked"] = cmd.units_blocked
        s24 = cmd.surge_24h if cmd.surge_24h is not None else pool.surge_24h
        s72 = cmd.surge_72h if cmd.surge_72h is not None else pool.surge_72h
        if s72 < s24:
            raise InvalidInput(
                "surge72h includes surge24h, so it cannot be smaller.", field="surge72h"
            )
        values["surge_24h"], values["surge_72h"] = s24, s72
        unchanged = [Pool.id == pool_id, Pool.version == if_match]
        if expect_held is not None:
            unchanged.append(Pool.units_held == expect_held)
        res = await s.execute(
            update(Pool)
            .where(*unchanged)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            # read it again: on PostgreSQL the update that won may have committed after the
            # read above, which would answer the caller's own stale version and figures back
            await s.refresh(pool)
            raise VersionMismatch(
                "Someone else updated this pool first. Check the current figures and try again.",
                current=pool_state(pool),
                version=pool.version,
            )
        await s.refresh(pool)
        await record_change(s, pool, actor=actor, now=now, source=source)
    return pool


async def confirm_still_accurate(
    db: Database,
    pool_id: int,
    *,
    if_match: int | None,
    actor: Actor,
    now: datetime,
    operator_scope: int | None,
) -> Pool:
    """Refresh the data age without changing counts. With ``If-Match``, only if the figures the
    staff member saw are still the current ones."""
    async with db.write() as s:
        pool = await _pool_in_scope(s, pool_id, operator_scope)
        q = update(Pool).where(Pool.id == pool_id).values(confirmed_at=now)
        if if_match is not None:
            q = q.where(Pool.version == if_match)
        res = await s.execute(q.execution_options(synchronize_session=False))
        if res.rowcount == 0:
            await s.refresh(pool)  # the figures that won, as above
            raise VersionMismatch(
                "The figures changed since you looked; check them before confirming.",
                current=pool_state(pool),
                version=pool.version,
            )
        await s.refresh(pool)
        await record_confirmation(s, pool, actor=actor, now=now, source="staff")
    return pool


async def history(
    db: Database, pool_id: int, *, operator_scope: int | None, limit: int = 100
) -> list[AvailabilityReport]:
    async with db.read() as s:
        await _pool_in_scope(s, pool_id, operator_scope)
        rows = await s.scalars(
            select(AvailabilityReport)
            .where(AvailabilityReport.pool_id == pool_id)
            .order_by(AvailabilityReport.at.desc(), AvailabilityReport.id.desc())
            .limit(limit)
        )
        return list(rows.all())
