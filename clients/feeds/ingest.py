"""One good document -> availability reports, in ONE transaction (all pools or none).

The rule for feeds and holds (DESIGN invariant: ``units_held`` is Abri's truth):

* A feed reports ``units_total``, ``units_occupied`` and optionally ``units_blocked`` — the
  same staff-owned fields as a staff report — and never writes ``units_held``.
* If the partner's own system counts the rooms Abri holds as occupied, the mapping entry says
  ``countsHoldsAsOccupied`` and ingest subtracts the pool's current ``units_held`` from the
  reported occupancy (never below 0), so a held room is not counted twice.
* A change bumps the pool's ``version`` like a staff update (a staff member's stale ETag then
  gets 412), writes a history row (``source = feed:<name>``) and an audit entry. Figures equal
  to the current ones count as "still accurate" (``confirmed_at``, a ``confirm`` history row,
  no version bump). A document stamped older than the pool's last update leaves that pool
  alone (newer staff data wins).
* Anything wrong with the document (unknown identifier, a pool no longer the operator's,
  its own blocked count above its total...) rejects the whole document before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import availability
from capacity.audit import Actor
from capacity.availability import last_update
from capacity.db import Database
from capacity.models import AvailabilityReport, Facility, Feed, Pool
from clients.feeds.base import FeedRejected, Reading


@dataclass(frozen=True)
class IngestResult:
    updated: int
    confirmed: int
    skipped_older: int


def source_of(feed: Feed) -> str:
    return f"feed:{feed.name}"


def actor_of(feed: Feed) -> Actor:
    """Feeds act as the system on behalf of their operator (the history names the operator)."""
    return Actor(operator_id=feed.operator_id, role="feed")


async def _mapped_pools(s: AsyncSession, feed: Feed, *, lock: bool) -> dict[int, Pool]:
    ids = [int(m["poolId"]) for m in feed.mapping]
    q = (
        select(Pool)
        .join(Facility, Facility.id == Pool.facility_id)
        .where(Pool.id.in_(ids), Facility.operator_id == feed.operator_id)
        .order_by(Pool.id)  # one lock order everywhere: no deadlock with holds
    )
    if lock:
        q = q.with_for_update(of=Pool)
    return {p.id: p for p in (await s.scalars(q)).all()}


async def ingest(
    db: Database, feed_id: int, readings: list[Reading], *, now: datetime
) -> IngestResult:
    """Apply a parsed document; raise :class:`FeedRejected` (nothing written) if it does not
    fit the feed's mapping."""
    async with db.write() as s:
        feed = await s.get(Feed, feed_id)
        if feed is None:
            raise FeedRejected("the feed was removed")
        by_feed_id = {str(m["feedId"]): m for m in feed.mapping}
        pools = await _mapped_pools(s, feed, lock=True)
        for r in readings:
            m = by_feed_id.get(r.feed_id)
            if m is None:
                raise FeedRejected(f"unknown identifier {r.feed_id!r} (not in the mapping)")
            if int(m["poolId"]) not in pools:
                raise FeedRejected(f"{r.feed_id!r} maps to a pool that is not the operator's")
        updated = confirmed = older = 0
        actor = actor_of(feed)
        # One timed reading makes the document timed: a 304 then refreshes none of its pools,
        # not even those of untimed readings, which go stale on schedule (the safe side: a
        # stale place is "call first", a falsely fresh one is a bed that may not be there).
        feed.document_timed = any(r.reported_at is not None for r in readings)
        mentioned = {r.feed_id for r in readings}
        feed.missing_feed_ids = [fid for fid in by_feed_id if fid not in mentioned] or None
        for r in readings:
            m = by_feed_id[r.feed_id]
            pool = pools[int(m["poolId"])]
            stamp = min(r.reported_at or now, now)
            previous = last_update(pool)
            if previous is not None and stamp < previous:
                older += 1
                continue
            occupied = r.units_occupied
            if m.get("countsHoldsAsOccupied", False):
                occupied = max(0, occupied - pool.units_held)
            # The adapters refuse a document whose own blocked count exceeds its total. A feed
            # that reports no blocked count (EDXL-HAVE, a CSV without the column) keeps the
            # figure staff gave, as a staff update without it does: never a reason to reject
            # the whole document for a number it did not send.
            blocked = pool.units_blocked if r.units_blocked is None else r.units_blocked
            same = (pool.units_total, pool.units_occupied, pool.units_blocked) == (
                r.units_total,
                occupied,
                blocked,
            )
            if same:
                await s.execute(
                    update(Pool)
                    .where(Pool.id == pool.id)
                    .values(confirmed_at=stamp)
                    .execution_options(synchronize_session=False)
                )
                await s.refresh(pool)
                await availability.record_confirmation(
                    s, pool, actor=actor, now=now, source=source_of(feed), at=stamp, audited=False
                )
                confirmed += 1
                continue
            await s.execute(
                update(Pool)
                .where(Pool.id == pool.id)
                .values(
                    units_total=r.units_total,
                    units_occupied=occupied,
                    units_blocked=blocked,
                    reported_at=stamp,
                    version=Pool.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            await s.refresh(pool)
            await availability.record_change(
                s, pool, actor=actor, now=now, source=source_of(feed), at=stamp
            )
            updated += 1
    return IngestResult(updated=updated, confirmed=confirmed, skipped_older=older)


async def confirm_unchanged(db: Database, feed_id: int, *, now: datetime) -> int:
    """``304 Not Modified``: the last document applied is still the feed's document. It
    confirms what a ``200`` of the same document would: a document that gave its figures'
    own times (``generatedAt``...) is still as old as it said, so nothing is refreshed (else a
    sheet nobody updates for days would look confirmed minutes ago); one without times is
    taken as of the fetch, as on a ``200``. Only pools whose latest figures came from this
    feed are confirmed: a staff update made since is not the feed's to vouch for. Returns the
    pools confirmed (one ``confirm`` history row each)."""
    async with db.write() as s:
        feed = await s.get(Feed, feed_id)
        if feed is None or feed.document_timed is not False:  # timed, or never applied
            return 0
        pools = await _mapped_pools(s, feed, lock=True)
        source = source_of(feed)
        ours = {}
        for pid, pool in pools.items():
            latest = await s.scalar(  # the pool's latest figures: whose? (indexed look-up)
                select(AvailabilityReport.source)
                .where(AvailabilityReport.pool_id == pid)
                .order_by(AvailabilityReport.at.desc(), AvailabilityReport.id.desc())
                .limit(1)
            )
            if latest == source:
                ours[pid] = pool
        pools = ours
        for pool in pools.values():
            await s.execute(
                update(Pool)
                .where(Pool.id == pool.id)
                .values(confirmed_at=now)
                .execution_options(synchronize_session=False)
            )
            await s.refresh(pool)
            await availability.record_confirmation(
                s, pool, actor=actor_of(feed), now=now, source=source_of(feed), audited=False
            )
    return len(pools)
