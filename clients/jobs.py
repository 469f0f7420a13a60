"""Scheduled jobs of the clients package: polling feeds (APScheduler runs it every 15 s; each
feed's own interval, backoff and circuit breaker decide whether it is requested)."""

from __future__ import annotations

from clients.feeds.poller import poll_due
from ops.scheduler import JobContext, job


@job("feeds.poll", seconds=15)
async def poll_feeds(ctx: JobContext) -> int:
    return await poll_due(ctx.db, cipher=ctx.cipher, clock=ctx.clock, settings=ctx.settings)
