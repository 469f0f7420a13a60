"""Scheduled placement jobs: expire due holds (the sweeper tidies and notifies; correctness
never depends on it, see holds_service)."""

from __future__ import annotations

from capacity import retention
from ops.scheduler import JobContext, job
from placement import standing_service
from placement.holds_service import expire_due_holds


@job("expire_holds", seconds=30)
async def expire_holds(ctx: JobContext) -> int:
    return await expire_due_holds(ctx.db, ctx.clock.now())


@job("standing_round", seconds=15)
async def standing_round(ctx: JobContext) -> int:
    """Offer freed places to standing requests in order (also those freed by feeds and by
    expiries, which no request path sees)."""
    now = ctx.clock.now()
    if not await standing_service.waiting_exists(ctx.db):
        return 0
    await expire_due_holds(ctx.db, now)
    return await standing_service.run_round(ctx.db, ctx.settings, now=now)


@job("retention_purge", seconds=3600)
async def retention_purge(ctx: JobContext) -> int:
    """Reduce closed holds and old audit detail to statistics (capacity/retention.py)."""
    done = await retention.purge(ctx.db, now=ctx.clock.now(), days=ctx.settings.retention_days)
    return done.holds + done.audit_entries
