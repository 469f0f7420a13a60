"""The status-lapse job in two processes at once (two engines, separate connections, committed
data): each due facility reopens once, with one audit entry. The real job is paused with its
rows locked while a second one runs; a naive read-then-write job under the same pause audits
every lapse twice (the negative control: the harness can fail)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from capacity import audit, registry
from capacity.commands import PoolCreate, StatusChange
from capacity.db import Database
from capacity.models import AuditEntry, Facility
from tests.conftest import World

pytestmark = pytest.mark.concurrency


async def _due_facilities(world: World, n: int) -> tuple[list[int], datetime]:
    """``n`` facilities closed to admissions for one hour; returns their ids and a later now."""
    await world.operator("Refuges", "shelter_operator")
    now = world.clock.now()
    ids = []
    for i in range(n):
        view = await world.facility(
            "Refuges", f"Refuge {i}", pools=[PoolCreate(label="Beds", units_total=2)]
        )
        await registry.set_status(
            world.db,
            view.facility.id,
            StatusChange(
                status="closed_to_admissions", reason="Works", until=now + timedelta(hours=1)
            ),
            actor=audit.CLI,
            now=now,
        )
        ids.append(view.facility.id)
    return ids, now + timedelta(hours=2)


async def _lapse_audits(db: Database) -> Counter[int]:
    async with db.read() as s:
        rows = await s.scalars(
            select(AuditEntry.facility_id).where(AuditEntry.action == "facility.status_lapsed")
        )
        return Counter(rows.all())


async def naive_lapse(db: Database, *, now: datetime, pause: asyncio.Barrier) -> int:
    """What not to do: read what is due, then reopen and audit it by id without re-checking."""
    async with db.read() as s:
        due = (
            await s.execute(
                select(Facility.id, Facility.status).where(
                    Facility.status.in_(registry.LAPSING_STATUSES), Facility.status_until <= now
                )
            )
        ).all()
    await pause.wait()  # until the other run has read too
    async with db.write() as s:
        for fid, status in due:
            await s.execute(
                update(Facility)
                .where(Facility.id == fid)
                .values(status="open", status_reason=None, status_until=None, updated_at=now)
            )
            await audit.record(
                s,
                actor=audit.SYSTEM,
                at=now,
                action="facility.status_lapsed",
                object_type="facility",
                object_id=fid,
                facility_id=fid,
                detail={"from": status},
            )
    return len(due)


async def test_two_processes_at_once_reopen_each_facility_once(world: World) -> None:
    ids, later = await _due_facilities(world, 6)
    other = Database(world.db.url)  # a second process: its own engine and connections
    try:
        paused, go_on = asyncio.Event(), asyncio.Event()

        async def hook() -> None:
            paused.set()
            await go_on.wait()

        a = asyncio.create_task(
            registry.lapse_due_statuses(world.db, now=later, pause_between_check_and_write=hook)
        )
        await asyncio.wait_for(paused.wait(), 10)  # A holds the due rows, has written nothing
        b = asyncio.create_task(registry.lapse_due_statuses(other, now=later))
        await asyncio.sleep(0.3)
        # PostgreSQL: B waits on A's row locks (FOR UPDATE); SQLite: on A's BEGIN IMMEDIATE
        assert not b.done(), "B must wait for A's locked rows"
        go_on.set()
        ra, rb = await asyncio.wait_for(a, 20), await asyncio.wait_for(b, 20)
        assert sorted(ra) == sorted(ids) and rb == []  # B re-checked after the wait
        # and a storm of runs afterwards, from both processes, finds nothing more
        more = await asyncio.gather(
            *(registry.lapse_due_statuses(db, now=later) for db in [world.db, other] * 4)
        )
        assert all(r == [] for r in more)
    finally:
        await other.dispose()
    assert await _lapse_audits(world.db) == Counter(dict.fromkeys(ids, 1))
    async with world.db.read() as s:
        statuses = (await s.scalars(select(Facility.status).where(Facility.id.in_(ids)))).all()
    assert set(statuses) == {"open"}


async def test_many_runs_at_once_audit_each_lapse_once(world: World) -> None:
    ids, later = await _due_facilities(world, 5)
    other = Database(world.db.url)
    try:
        start = asyncio.Event()

        async def run(db: Database) -> list[int]:
            await start.wait()
            return await registry.lapse_due_statuses(db, now=later)

        tasks = [asyncio.create_task(run(db)) for db in [world.db, other] * 8]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        await other.dispose()
    assert sorted(fid for r in results for fid in r) == sorted(ids)  # each reopened once
    assert await _lapse_audits(world.db) == Counter(dict.fromkeys(ids, 1))


async def test_negative_control_a_naive_job_audits_twice(world: World) -> None:
    """The same interleaving with a read-then-write job: both runs see the rows due and both
    reopen and audit them. If this ever stops failing, the harness above proves nothing."""
    ids, later = await _due_facilities(world, 3)
    other = Database(world.db.url)
    try:
        both_read = asyncio.Barrier(2)
        a = naive_lapse(world.db, now=later, pause=both_read)
        b = naive_lapse(other, now=later, pause=both_read)
        assert await asyncio.wait_for(asyncio.gather(a, b), 20) == [3, 3]
    finally:
        await other.dispose()
    assert await _lapse_audits(world.db) == Counter(dict.fromkeys(ids, 2))
