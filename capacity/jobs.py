"""Scheduled capacity jobs: saturation snapshots and their downsampling, temporary facility
statuses and area admission conditions that have run out."""

from __future__ import annotations

from capacity import health_rules, leases, registry, snapshots
from ops.scheduler import JobContext, job


@job("saturation_snapshot", seconds=300)
async def saturation_snapshot(ctx: JobContext) -> int:
    """Every 5 min, fill the current 15-minute bucket if nobody has (idempotent per bucket),
    then thin out old points. Single-flight across processes through a lease."""
    now = ctx.clock.now()
    if not await leases.acquire(ctx.db, "saturation_snapshot", now=now, seconds=240):
        return 0
    try:
        cells = await snapshots.take_snapshot(ctx.db, ctx.settings, now)
        await snapshots.downsample(ctx.db, now)
        return cells
    finally:
        await leases.release(ctx.db, "saturation_snapshot")


@job("facility_status_lapse", seconds=60)
async def facility_status_lapse(ctx: JobContext) -> int:
    """Reopen facilities whose "closed to admissions", "reduced" or "suspended" status has
    passed its ``until`` (never "location compromised"). Idempotent; safe in two processes."""
    return len(await registry.lapse_due_statuses(ctx.db, now=ctx.clock.now()))


@job("health_condition_lapse", seconds=60)
async def health_condition_lapse(ctx: JobContext) -> int:
    """Switch off area admission conditions whose ``until`` has passed. Idempotent; safe in
    two processes."""
    return len(await health_rules.lapse_due(ctx.db, now=ctx.clock.now()))
