"""Scheduled placement jobs: expire due holds (the sweeper tidies and notifies; correctness
never depends on it, see holds_service)."""

from __future__ import annotations

from ops.scheduler import JobContext, job
from placement.holds_service import expire_due_holds


@job("expire_holds", seconds=30)
async def expire_holds(ctx: JobContext) -> int:
    return await expire_due_holds(ctx.db, ctx.clock.now())
