"""Scheduled capacity jobs: saturation snapshots and their downsampling."""

from __future__ import annotations

from capacity import leases, snapshots
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
