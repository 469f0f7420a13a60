"""A location reported compromised while holds are on their way there: no hold may stay held
at it. The status change declines the holds it finds (``decline_held_at``); a hold that read
the place before the change and grants after it must be refused, not left held where nobody
will look again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from capacity import registry
from capacity.audit import Actor
from capacity.commands import PoolCreate, StatusChange
from capacity.models import AuditEntry, Facility, Hold
from capacity.settings import Settings
from ops.scheduler import JobContext
from placement import holds_service
from placement.errors import NotAdmitting
from placement.household import Adult, Household
from placement.jobs import expire_holds
from tests.conftest import World

pytestmark = pytest.mark.concurrency
ONE = Household(adults=[Adult(gender="female")])
COMPROMISED = StatusChange(status="location_compromised", reason="Partner seen outside")


async def _place(world: World) -> tuple[int, str, Actor]:
    """A refuge with 4 beds and a police zone; the facility, the pool, the police actor."""
    await world.operator("Refuges", "shelter_operator")
    view = await world.facility(
        "Refuges", "Refuge R", pools=[PoolCreate(label="Beds", units_total=4)]
    )
    police = await world.operator("Zone", "police")
    actor = Actor(operator_id=police, role="police", operator_kind="police")
    return view.facility.id, view.pools[0].ref, actor


async def _hold(world: World, pool_ref: str, actor: Actor, key: str, hook: Any = None) -> str:
    try:
        await holds_service.reserve(
            world.db,
            pool_ref=pool_ref,
            household=ONE,
            need="ipv",
            minutes=None,
            callback=None,
            idempotency_key=key,
            actor=actor,
            now=world.clock.now(),
            pause_between_check_and_write=hook,
        )
    except NotAdmitting:
        return "refused"
    return "granted"


async def _held_at(world: World, facility_id: int) -> int:
    async with world.db.read() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(Hold)
            .where(Hold.facility_id == facility_id, Hold.state == "held")
        )
    return int(n or 0)


async def _report_compromised(world: World, facility_id: int) -> None:
    """What the staff status routes (API and page) do, as the refuge's staff."""
    now = world.clock.now()
    async with world.db.read() as s:
        operator_id = await s.scalar(select(Facility.operator_id).where(Facility.id == facility_id))
    staff = Actor(operator_id=operator_id, role="staff", operator_kind="shelter_operator")
    await holds_service.set_facility_status(
        world.db, facility_id, COMPROMISED, actor=staff, now=now
    )


async def test_a_hold_read_before_the_report_and_granted_after_it_is_refused(
    world: World, backend: str
) -> None:
    facility_id, pool_ref, police = await _place(world)
    paused, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        paused.set()
        await go_on.wait()

    hold = asyncio.create_task(_hold(world, pool_ref, police, "on-its-way-01", pause))
    await asyncio.wait_for(paused.wait(), 10)  # read: the place was open
    report = asyncio.create_task(_report_compromised(world, facility_id))
    await asyncio.sleep(0.3)  # PostgreSQL: reported and declined (nothing held yet)
    go_on.set()
    outcome, _ = await asyncio.wait_for(asyncio.gather(hold, report), 20)
    # SQLite: the report waited for the hold's write lock and then declined it
    assert outcome == ("granted" if backend == "sqlite" else "refused")
    assert await _held_at(world, facility_id) == 0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_grant_under_way_while_the_report_commits_is_refused(
    world: World, backend: str
) -> None:
    """The grant statement starts while the status change holds the facility's row (it read
    the place as open); it must see the committed change, not its snapshot's status."""
    facility_id, pool_ref, police = await _place(world)
    await _hold(world, pool_ref, police, "get-to-know-01")  # the process knows the place

    async def read_then_grant() -> None:  # a pause hook sends the hold down the slow path
        return None

    attempts = []
    async with world.db.raw_write(transaction=True) as tx:
        await tx.one("SELECT id FROM facilities WHERE id = $1 FOR UPDATE", facility_id)
        await tx.run(
            "UPDATE facilities SET status = 'location_compromised' WHERE id = $1", facility_id
        )
        for key, hook in (("fast-path-0001", None), ("slow-path-0001", read_then_grant)):
            attempts.append(asyncio.create_task(_hold(world, pool_ref, police, key, hook)))
            await asyncio.sleep(0.5)
            assert not attempts[-1].done(), "the grant must wait for the status change"
        # leaving the block commits the status change
    outcomes = await asyncio.wait_for(asyncio.gather(*attempts), 20)
    assert outcomes == ["refused", "refused"]
    assert await _held_at(world, facility_id) == 1  # the first one, granted before


async def test_the_expiry_job_declines_holds_a_crash_left_held_at_a_compromised_place(
    world: World, settings: Settings
) -> None:
    """The status change and its declines are two transactions: a process that dies between
    them leaves households on their way to a compromised refuge. The expiry job (every 30 s)
    declines what it finds held there, as the status route would have, audited as Abri's."""
    facility_id, pool_ref, police = await _place(world)
    assert await _hold(world, pool_ref, police, "before-crash-01") == "granted"
    async with world.db.read() as s:
        operator_id = await s.scalar(select(Facility.operator_id).where(Facility.id == facility_id))
    staff = Actor(operator_id=operator_id, role="staff", operator_kind="shelter_operator")
    # the status committed; the process died before declining
    await registry.set_status(
        world.db, facility_id, COMPROMISED, actor=staff, now=world.clock.now()
    )
    assert await _held_at(world, facility_id) == 1
    await expire_holds(JobContext(world.db, world.clock, settings, world.cipher))
    assert await _held_at(world, facility_id) == 0
    async with world.db.read() as s:
        hold = (await s.execute(select(Hold.state, Hold.close_reason))).one()
        roles = (
            await s.scalars(
                select(AuditEntry.actor_role).where(AuditEntry.action == "hold.declined")
            )
        ).all()
    assert hold.state == "declined" and hold.close_reason == holds_service.COMPROMISED_REASON
    assert roles == ["system"]
