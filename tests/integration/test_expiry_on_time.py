"""The sweeper runs at a hold's deadline, not up to its interval later: a search (which reads
the pools' counters) sees the place free within its index refresh, and a request waiting in
line gets it at once. The hold path never waited for it (DESIGN §2.4)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from capacity.clock import SystemClock
from capacity.commands import PoolCreate
from capacity.models import Hold, Pool
from capacity.settings import Settings
from ops.scheduler import JobContext, build_scheduler, stop_scheduler
from placement import holds_service
from placement.household import Adult, Household
from tests.conftest import World


async def test_a_hold_is_expired_at_its_deadline_not_at_the_next_interval(
    world: World, settings: Settings
) -> None:
    await world.operator("Refuges", "shelter_operator")
    police = await world.operator("Zone", "police")
    view = await world.facility(
        "Refuges", "Refuge R", pools=[PoolCreate(label="Beds", units_total=1)]
    )
    pool = view.pools[0]
    actor = holds_service.Actor(operator_id=police, role="police", operator_kind="police")
    # 15 minutes (the shortest hold) that end 3 s from now
    made = datetime.now(UTC) - timedelta(minutes=15) + timedelta(seconds=3)
    r = await holds_service.reserve(
        world.db,
        pool_ref=pool.ref,
        household=Household(adults=[Adult(gender="female")]),
        need="ipv",
        minutes=15,
        callback=None,
        idempotency_key="k-on-time",
        actor=actor,
        now=made,
    )
    ctx = JobContext(world.db, SystemClock(), settings, world.cipher)
    scheduler = build_scheduler(ctx, only={"expire_holds"})
    scheduler.start()  # runs at once (nothing due yet), then every 30 s, or sooner
    try:
        state = None
        for _ in range(100):  # 10 s: well before the 30 s interval's next run
            await asyncio.sleep(0.1)
            async with world.db.read() as s:
                state = await s.scalar(select(Hold.state).where(Hold.ref == r.view.ref))
                held = await s.scalar(select(Pool.units_held).where(Pool.id == pool.id))
            if state == "expired":
                break
    finally:
        await stop_scheduler(ctx)
    assert state == "expired" and held == 0
    # and nothing runs it in a loop: the next run is the interval's again
    assert await holds_service.next_deadline(world.db) is None
