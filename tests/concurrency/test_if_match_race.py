"""Two (or twenty) staff members updating one pool at once: exactly one wins per version."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from capacity import availability
from capacity.audit import Actor
from capacity.commands import AvailabilityUpdate
from capacity.errors import VersionMismatch
from capacity.models import AvailabilityReport
from tests.conftest import World

pytestmark = pytest.mark.concurrency


async def test_concurrent_if_match_updates_exactly_one_wins(world: World) -> None:
    op = await world.operator("Refuges A", "shelter_operator")
    view = await world.facility("Refuges A", "R1")
    pool_id = view.pools[0].id
    actor = Actor(operator_id=op, role="staff")
    start = asyncio.Event()

    async def attempt(i: int) -> str:
        await start.wait()
        try:
            await availability.update_availability(
                world.db,
                pool_id,
                AvailabilityUpdate(units_total=10, units_occupied=i),
                if_match=1,
                actor=actor,
                now=world.clock.now(),
                operator_scope=op,
            )
            return "won"
        except VersionMismatch:
            return "412"

    tasks = [asyncio.create_task(attempt(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    start.set()
    results = await asyncio.gather(*tasks)
    assert results.count("won") == 1
    assert results.count("412") == 19
    pool = await availability.get_pool(world.db, pool_id, operator_scope=None)
    assert pool.version == 2
    async with world.db.read() as s:
        updates = await s.scalar(
            select(func.count())
            .select_from(AvailabilityReport)
            .where(AvailabilityReport.pool_id == pool_id, AvailabilityReport.kind == "update")
        )
    assert updates == 1
