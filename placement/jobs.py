"""Scheduled placement jobs: expire due holds (the sweeper tidies and notifies; correctness
never depends on it, see holds_service), and decline what a crash left held at a compromised
location."""

from __future__ import annotations

from datetime import UTC, datetime

from capacity import retention
from ops.scheduler import JobContext, job, run_early
from placement import standing_service
from placement.holds_service import decline_held_at_compromised, expire_due_holds, next_deadline


@job("expire_holds", seconds=30)
async def expire_holds(ctx: JobContext) -> int:
    """Expire due holds; run again at the next deadline when it comes before the next
    interval (a hold lasts at least 15 minutes, so one made later cannot be due sooner).
    Searches then see the place free within their index refresh, and a request waiting in
    line gets it at once."""
    now = ctx.clock.now()
    # a status route that died between a compromised report and its declines
    await decline_held_at_compromised(ctx.db, now=now)
    freed = await standing_service.expire_and_offer(ctx.db, ctx.settings, now)
    upcoming = await next_deadline(ctx.db)
    if upcoming is not None:
        # on the scheduler's (real) clock: as far ahead as the deadline is on the job's
        run_early(ctx, "expire_holds", datetime.now(UTC) + (upcoming - now))
    return freed


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
