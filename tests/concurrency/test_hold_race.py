"""No bed is ever given twice (DESIGN invariants 1-4), proven by races that can really fail.

Harness (CONVENTIONS §4): 200 tasks released together by an asyncio.Event, each on its own
connection, against committed data; assertions count rows. The same harness runs a naive
read-then-write hold, which must overbook.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from capacity.audit import Actor
from capacity.commands import PoolCreate
from capacity.db import Database, make_engine
from capacity.errors import Busy
from capacity.models import AuditEntry, Hold, Pool
from placement import holds_service
from placement.errors import IdempotencyInFlight, NoLongerFree
from placement.household import Adult, Household
from tests.concurrency.naive_holds import naive_reserve
from tests.conftest import TEST_EPISODE, World

pytestmark = pytest.mark.concurrency
N = 200
FREE = 7
ONE = Household(adults=[Adult(gender="female")])


async def _pool(world: World, total: int = FREE, label: str = "Beds") -> tuple[int, int, str, int]:
    await world.operator(f"Op {label}", "shelter_operator")
    view = await world.facility(
        f"Op {label}", f"Refuge {label}", pools=[PoolCreate(label=label, units_total=total)]
    )
    police = await world.operator(f"Zone {label}", "police")
    return view.pools[0].id, view.facility.id, view.pools[0].ref, police


def _actor(operator_id: int) -> Actor:
    return Actor(operator_id=operator_id, role="police", operator_kind="police")


async def _reserve(world: World, pool_ref: str, police: int, key: str) -> Any:
    """One hold of one adult on ``pool_ref`` by this police operator, now."""
    return await holds_service.reserve(
        world.db,
        pool_ref=pool_ref,
        household=ONE,
        need="ipv",
        minutes=None,
        callback=None,
        idempotency_key=key,
        actor=_actor(police),
        now=world.clock.now(),
    )


async def _race(fn, n: int = N) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    start = asyncio.Event()

    async def one(i: int) -> str:
        await start.wait()
        try:
            await fn(i)
            return "granted"
        except NoLongerFree:
            return "409"
        except Exception as exc:  # a 500, "database is locked", a serialisation error...
            return f"error:{type(exc).__name__}:{str(exc)[:80]}"

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0.1)
    start.set()
    return collections.Counter(await asyncio.gather(*tasks))


async def _held_rows(db: Database, pool_id: int) -> tuple[int, int]:
    async with db.read() as s:
        rows = await s.scalar(
            select(func.count())
            .select_from(Hold)
            .where(Hold.pool_id == pool_id, Hold.state == "held")
        )
        held = await s.scalar(select(Pool.units_held).where(Pool.id == pool_id))
    return int(rows or 0), int(held or 0)


#: Each race twice: on a place this process never read (every hold reads it, then grants),
#: and on one it knows (PostgreSQL: every hold is ONE statement that checks and grants).
KNOWN = pytest.mark.parametrize("known", [False, True], ids=["unknown-place", "known-place"])


async def _get_to_know(world: World, pool_ref: str, police: int) -> None:
    """One hold and its release: the process now knows the place (the counts are as before)."""
    held = await _reserve(world, pool_ref, police, "get-to-know")
    await holds_service.transition(
        world.db, held.view.ref, "released", actor=_actor(police), now=world.clock.now()
    )


@KNOWN
async def test_200_concurrent_holds_on_7_free_units_grant_exactly_7(
    world: World, known: bool
) -> None:
    pool_id, _fid, pool_ref, police = await _pool(world)
    if known:
        await _get_to_know(world, pool_ref, police)

    async def hold(i: int) -> None:
        await _reserve(world, pool_ref, police, f"race-{i:05d}")

    results = await _race(hold)
    assert results == {"granted": FREE, "409": N - FREE}, results
    assert await _held_rows(world.db, pool_id) == (FREE, FREE)
    assert await holds_service.counters_agree(world.db) == []


async def test_naive_read_then_write_overbooks_under_the_same_harness(
    world: World, backend: str, db_url: str
) -> None:
    """Negative control. On SQLite it needs a driver-default engine (deferred BEGIN): with the
    production engine's BEGIN IMMEDIATE even naive code is serialised (next test)."""
    pool_id, fid, _ref, police = await _pool(world)
    db = world.db
    if backend == "sqlite":
        db = Database(db_url)
        db.write_engine = make_engine(db_url, immediate=False)
        _driver_default(db)
    now = world.clock.now()
    try:
        results = await _race(
            lambda i: naive_reserve(
                db, pool_id=pool_id, facility_id=fid, operator_id=police, key=f"naive-{i}", now=now
            )
        )
    finally:
        if db is not world.db:
            await db.dispose()
    rows, _counter = await _held_rows(world.db, pool_id)
    assert rows > FREE, f"the naive control did not overbook ({results}); harness broken"


def _driver_default(db: Database) -> None:
    """Rebuild the write engine as the driver leaves it: no BEGIN IMMEDIATE listener."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.pool import NullPool

    db.write_engine = create_async_engine(db.url, poolclass=NullPool, connect_args={"timeout": 30})
    db._write = async_sessionmaker(db.write_engine, expire_on_commit=False)


async def test_sqlite_production_engine_serialises_even_naive_code(
    sqlite_world: World,
) -> None:
    """Proves the BEGIN IMMEDIATE listener is really installed on the write engine."""
    world = sqlite_world
    pool_id, fid, _ref, police = await _pool(world)
    now = world.clock.now()
    results = await _race(
        lambda i: naive_reserve(
            world.db, pool_id=pool_id, facility_id=fid, operator_id=police, key=f"imm-{i}", now=now
        ),
        n=40,
    )
    assert results == {"granted": FREE, "409": 40 - FREE}, results


async def test_forced_interleaving_with_the_pause_hook(world: World, backend: str) -> None:
    """Task A stops between its check and its write; B tries the last unit meanwhile."""
    pool_id, _fid, pool_ref, police = await _pool(world, total=1)
    now = world.clock.now()
    paused, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        paused.set()
        await go_on.wait()

    async def attempt(key: str, hook: Any = None) -> str:
        try:
            await holds_service.reserve(
                world.db,
                pool_ref=pool_ref,
                household=ONE,
                need="ipv",
                minutes=None,
                callback=None,
                idempotency_key=key,
                actor=_actor(police),
                now=now,
                pause_between_check_and_write=hook,
            )
            return "granted"
        except NoLongerFree:
            return "409"

    a = asyncio.create_task(attempt("A-0000001", pause))
    await asyncio.wait_for(paused.wait(), 10)
    b = asyncio.create_task(attempt("B-0000001"))
    await asyncio.sleep(0.3)
    if backend == "sqlite":
        assert not b.done(), "B must wait: A holds the write lock from BEGIN IMMEDIATE"
    else:
        assert b.done() and b.result() == "granted", "A held no pool lock yet; B wins"
    go_on.set()
    ra, rb = await a, await b
    assert sorted([ra, rb]) == ["409", "granted"]
    assert await _held_rows(world.db, pool_id) == (1, 1)


async def test_one_household_racing_with_two_keys_holds_one_unit(
    world: World, backend: str
) -> None:
    """A dispatch system retrying at its own level (a new Idempotency-Key) while its first
    request is still on its way: both pass the "does this household hold it already?" read
    before either writes. One unit, one hold; the second gets the first's hold back."""
    pool_id, _fid, pool_ref, police = await _pool(world, total=5)
    now = world.clock.now()
    paused, go_on = asyncio.Event(), asyncio.Event()

    async def pause() -> None:
        paused.set()
        await go_on.wait()

    async def attempt(key: str, hook: Any = None) -> holds_service.Reserved:
        return await holds_service.reserve(
            world.db,
            pool_ref=pool_ref,
            household=ONE,
            need="ipv",
            minutes=None,
            callback=None,
            idempotency_key=key,
            actor=_actor(police),
            now=now,
            episode_token="case-2026-0417",
            episode_key=TEST_EPISODE,
            pause_between_check_and_write=hook,
        )

    a = asyncio.create_task(attempt("first-try-0001", pause))
    await asyncio.wait_for(paused.wait(), 10)  # A has read: nothing held yet
    b = asyncio.create_task(attempt("retry-0000002"))
    await asyncio.sleep(0.3)  # B has read too (PostgreSQL: and granted)
    go_on.set()
    ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 20)
    assert ra.view.ref == rb.view.ref
    assert sorted([ra.already_held, rb.already_held]) == [False, True]
    assert await _held_rows(world.db, pool_id) == (1, 1)
    # another household of the same operator (another episode) still gets its own unit
    other = await holds_service.reserve(
        world.db,
        pool_ref=pool_ref,
        household=ONE,
        need="ipv",
        minutes=None,
        callback=None,
        idempotency_key="other-case-01",
        actor=_actor(police),
        now=now,
        episode_token="case-2026-0418",
        episode_key=TEST_EPISODE,
    )
    assert other.created and other.view.ref != ra.view.ref
    assert await _held_rows(world.db, pool_id) == (2, 2)


@KNOWN
async def test_identical_requests_racing_with_one_key_make_one_hold(
    world: World, known: bool
) -> None:
    pool_id, _fid, pool_ref, police = await _pool(world)
    if known:
        await _get_to_know(world, pool_ref, police)
    now = world.clock.now()
    refs: list[str] = []

    async def same(_i: int) -> None:
        try:
            r = await holds_service.reserve(
                world.db,
                pool_ref=pool_ref,
                household=ONE,
                need="ipv",
                minutes=None,
                callback=None,
                idempotency_key="same-key-1",
                actor=_actor(police),
                now=now,
            )
            refs.append(r.view.ref)
        except IdempotencyInFlight:
            refs.append("in-flight")

    results = await _race(same, n=20)
    assert results == {"granted": 20}, results
    assert len({r for r in refs if r != "in-flight"}) == 1
    assert await _held_rows(world.db, pool_id) == (1, 1)


async def test_sweeper_twice_concurrently_never_double_decrements(world: World) -> None:
    pool_id, _fid, pool_ref, police = await _pool(world)
    now = world.clock.now()
    for i in range(5):
        await holds_service.reserve(
            world.db,
            pool_ref=pool_ref,
            household=ONE,
            need="ipv",
            minutes=15,
            callback=None,
            idempotency_key=f"sw-{i:06d}",
            actor=_actor(police),
            now=now,
        )
    later = now + timedelta(minutes=16)
    freed = await asyncio.gather(
        *(holds_service.expire_due_holds(world.db, later) for _ in range(4))
    )
    assert sum(freed) == 5
    assert await _held_rows(world.db, pool_id) == (0, 0)
    async with world.db.read() as s:
        audits = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "hold.expired")
        )
    assert audits == 5  # each expired exactly once


@pytest.mark.postgres
async def test_a_full_place_is_refused_without_queueing_for_its_row(pg_world: World) -> None:
    """A place already full is refused at once, with today's count, even while another
    transaction holds its pool row (a hot place at 2 a.m.), and a replay is answered the same
    way: neither waits for the row (a wait would end in a lock timeout, Busy, here)."""
    world = pg_world
    pool_id, _fid, pool_ref, police = await _pool(world, total=1, label="Full")

    async def hold(key: str) -> None:
        await _reserve(world, pool_ref, police, key)

    await hold("full-000001")  # the only unit
    async with world.db.write() as s:  # someone else's transaction has the pool row
        await s.execute(text("SELECT 1 FROM pools WHERE id = :id FOR UPDATE"), {"id": pool_id})
        with pytest.raises(NoLongerFree) as refused:
            await hold("full-000002")
        await hold("full-000001")  # a replay does not queue either: it is the same hold
    assert refused.value.extra["current"] == {"unitsFree": 0}
    assert await _held_rows(world.db, pool_id) == (1, 1)


@pytest.mark.postgres
async def test_repeatable_read_would_fail_with_errors_not_grants(pg_world: World) -> None:
    """Isolation-level control: the gate is right at READ COMMITTED; at REPEATABLE READ the same
    statement turns into serialisation errors (and fewer grants than free units)."""
    world = pg_world
    pool_id, _fid, pool_ref, police = await _pool(world)
    rr = Database(world.db.url, pool_size=40, max_overflow=0)
    from sqlalchemy.ext.asyncio import async_sessionmaker

    rr.write_engine = rr.write_engine.execution_options(isolation_level="REPEATABLE READ")
    rr._write = async_sessionmaker(rr.write_engine, expire_on_commit=False)
    now = world.clock.now()
    try:
        async with rr.write() as s:
            level = (await s.execute(text("SHOW transaction_isolation"))).scalar()
        assert level == "repeatable read"
        results = await _race(
            lambda i: holds_service.reserve(
                rr,
                pool_ref=pool_ref,
                household=ONE,
                need="ipv",
                minutes=None,
                callback=None,
                idempotency_key=f"rr-{i:05d}",
                actor=_actor(police),
                now=now,
            ),
            n=60,
        )
    finally:
        await rr.dispose()
    errors = sum(v for k, v in results.items() if k.startswith("error"))
    assert errors > 0, results
    rows, held = await _held_rows(world.db, pool_id)
    assert rows == held <= FREE


async def test_mixed_storm_keeps_every_invariant(world: World) -> None:
    """Holds, releases, arrivals, staff If-Match updates and the sweeper, together, on a hot and
    a cold pool; afterwards no overbooking and counters agree."""
    from capacity import availability
    from capacity.commands import AvailabilityUpdate
    from capacity.errors import VersionMismatch
    from placement.errors import HoldExpired, IllegalTransition

    hot, _f1, hot_ref, police = await _pool(world, total=5, label="Hot")
    cold, _f2, cold_ref, _p2 = await _pool(world, total=20, label="Cold")
    staff = Actor(operator_id=None, role="admin")
    now = world.clock.now()
    start = asyncio.Event()
    granted: list[str] = []

    async def holder(i: int) -> None:
        await start.wait()
        ref = hot_ref if i % 3 else cold_ref
        try:
            r = await holds_service.reserve(
                world.db,
                pool_ref=ref,
                household=ONE,
                need="ipv",
                minutes=15 + i % 30,
                callback=None,
                idempotency_key=f"storm-{i:05d}",
                actor=_actor(police),
                now=now + timedelta(minutes=i % 40),
            )
            granted.append(r.view.ref)
        except (NoLongerFree, Busy):
            pass

    async def releaser(i: int) -> None:
        await start.wait()
        for _ in range(10):
            await asyncio.sleep(0.01)
            if granted:
                ref = granted.pop()
                target = "released" if i % 2 else "arrived"
                actor = (
                    _actor(police)
                    if target == "released"
                    else Actor(operator_id=None, role="admin")
                )
                with contextlib.suppress(IllegalTransition, HoldExpired, Busy):
                    await holds_service.transition(
                        world.db, ref, target, actor=actor, now=now + timedelta(minutes=20)
                    )

    async def staff_update(i: int) -> None:
        await start.wait()
        for _ in range(5):
            pool = await availability.get_pool(world.db, hot, operator_scope=None)
            with contextlib.suppress(VersionMismatch, Busy):
                await availability.update_availability(
                    world.db,
                    hot,
                    AvailabilityUpdate(units_total=5 + i % 3, units_occupied=i % 2),
                    if_match=pool.version,
                    actor=staff,
                    now=now,
                    operator_scope=None,
                )

    async def sweeper(_i: int) -> None:
        await start.wait()
        for k in range(5):
            await holds_service.expire_due_holds(world.db, now + timedelta(minutes=10 * k))

    tasks = (
        [asyncio.create_task(holder(i)) for i in range(120)]
        + [asyncio.create_task(releaser(i)) for i in range(10)]
        + [asyncio.create_task(staff_update(i)) for i in range(4)]
        + [asyncio.create_task(sweeper(i)) for i in range(2)]
    )
    await asyncio.sleep(0.1)
    start.set()
    await asyncio.gather(*tasks)
    assert await holds_service.counters_agree(world.db) == []
    async with world.db.read() as s:
        for pid in (hot, cold):
            held = await s.scalar(select(Pool.units_held).where(Pool.id == pid))
            assert held is not None and held >= 0
            active = await s.scalar(
                select(func.coalesce(func.sum(Hold.units), 0)).where(
                    Hold.pool_id == pid, Hold.state == "held"
                )
            )
            assert active == held
        created = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "hold.created")
        )
        holds = await s.scalar(select(func.count()).select_from(Hold))
    assert created == holds
