"""The search cache: the index follows the database (only changed rows applied, a rebuild when
the registry's shape changes), and the live re-check never offers a place that is gone,
through its held connections as well as through the pool, and after a held connection dies."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import text, update

from capacity import health_rules
from capacity.audit import CLI
from capacity.commands import PoolCreate
from capacity.models import Pool
from capacity.settings import Settings
from placement.household import SearchRequest
from placement.policy import AccessPolicy
from placement.search_service import SnapshotCache, search
from tests.conftest import World

WOMAN = {"adults": [{"gender": "female"}], "residenceStatus": "documented", "income": "yes"}
REQ = msgspec.convert({"household": WOMAN, "need": "homelessness"}, SearchRequest)


async def _two_refuges(world: World) -> tuple[int, str, int, str]:
    await world.operator("Refuges", "shelter_operator")
    a = await world.facility(
        "Refuges", "A", policy=AccessPolicy(), pools=[PoolCreate(label="Beds", units_total=2)]
    )
    b = await world.facility(
        "Refuges", "B", policy=AccessPolicy(), pools=[PoolCreate(label="Beds", units_total=3)]
    )
    return a.pools[0].id, a.pools[0].ref, b.pools[0].id, b.pools[0].ref


async def _set(world: World, pool_id: int, **values: object) -> None:
    async with world.db.write() as s:
        await s.execute(update(Pool).where(Pool.id == pool_id).values(**values))


async def _offered(world: World, cache: SnapshotCache) -> dict[str, int]:
    found = await search(
        world.db, cache, REQ, requester_kind="police", operator_id=1, now=world.clock.now()
    )
    return {o.pool_ref: o.free_units for o in found.result.options}


@pytest.mark.parametrize("held", [True, False], ids=["held", "pooled"])
async def test_refresh_applies_changed_rows_and_rebuilds_on_new_shape(
    world: World, settings: Settings, held: bool
) -> None:
    a_id, _a_ref, b_id, _b_ref = await _two_refuges(world)
    cache = SnapshotCache(world.db, settings, max_age=3600)
    if held:
        await cache.start()
    try:
        index = await cache.index()
        assert {p.id: p.units_held for _f, p in map(index.pool, (a_id, b_id))} == {
            a_id: 0,
            b_id: 0,
        }
        for round_ in range(3):  # several refreshes: the session remembers what it has seen
            await _set(world, a_id, units_held=round_ + 1)
            await cache._reload()
            assert cache._index is index  # applied in place, not rebuilt
            assert index.pool(a_id)[1].units_held == round_ + 1  # type: ignore[index]
            assert index.pool(b_id)[1].units_held == 0  # type: ignore[index]
        await _set(world, b_id, units_held=1)
        await _set(world, b_id, units_held=0)  # changed and changed back: nothing to apply
        await cache._reload()
        assert index.pool(b_id)[1].units_held == 0  # type: ignore[index]

        # A pool that changes its places per unit cannot be patched in: rebuilt.
        await _set(world, b_id, unit_kind="room", places_per_unit=2)
        await cache._reload()
        assert cache._index is not index
        index = cache._index
        assert index.pool(b_id)[1].places_per_unit == 2  # type: ignore[index]
        # ... and the refreshes after a rebuild keep following the rows.
        await _set(world, b_id, units_occupied=1)
        await cache._reload()
        assert cache._index is index and index.pool(b_id)[1].units_occupied == 1  # type: ignore[index]

        # A new facility changes the registry's shape: rebuilt, and offered.
        c = await world.facility("Refuges", "C", policy=AccessPolicy())
        await cache._reload()
        assert cache._index is not index and cache._index.pool(c.pools[0].id) is not None

        # An admission condition switched on (then off) for an area: rebuilt each time.
        index = cache._index
        fac = index.pool(a_id)[0]  # type: ignore[index]
        await health_rules.set_condition(
            world.db,
            fac.municipality_nis,
            "negative_test",
            reason="outbreak",
            actor=CLI,
            now=world.clock.now(),
        )
        await cache._reload()
        assert cache._index is not index
        assert cache._index.pool(a_id)[0].policy.health_conditions == ["negative_test"]  # type: ignore[index]
        index = cache._index
        await health_rules.remove_condition(
            world.db, fac.municipality_nis, "negative_test", actor=CLI, now=world.clock.now()
        )
        await cache._reload()
        assert cache._index is not index
        assert cache._index.pool(a_id)[0].policy.health_conditions == []  # type: ignore[index]
    finally:
        await cache.aclose()


@pytest.mark.parametrize("held", [True, False], ids=["held", "pooled"])
async def test_a_place_of_another_kind_changes_nothing_and_rebuilds_nothing(
    world: World, settings: Settings, held: bool
) -> None:
    """R40: a facility of a kind never offered (a future perpetrator accommodation) is not in
    the index; its pools' changes are skipped instead of rebuilding the index each time."""
    from capacity.models import Facility

    a_id, _a_ref, b_id, _b_ref = await _two_refuges(world)
    async with world.db.write() as s:
        await s.execute(
            update(Facility)
            .where(Facility.id == (await s.get(Pool, b_id)).facility_id)  # type: ignore[union-attr]
            .values(kind="perpetrator_accommodation", updated_at=world.clock.now())
        )
    cache = SnapshotCache(world.db, settings, max_age=3600)
    if held:
        await cache.start()
    try:
        index = await cache.index()
        assert index.pool(b_id) is None and index.pool(a_id) is not None
        for round_ in range(3):
            await _set(world, b_id, units_held=round_ + 1)  # the excluded place's pool
            await _set(world, a_id, units_occupied=round_)
            await cache._reload()
            assert cache._index is index  # applied in place, never rebuilt
            assert index.pool(a_id)[1].units_occupied == round_  # type: ignore[index]
        assert index.pool(b_id) is None
    finally:
        await cache.aclose()


@pytest.mark.parametrize("held", [True, False], ids=["held", "pooled"])
async def test_a_place_gone_since_the_index_is_never_offered(
    world: World, settings: Settings, held: bool
) -> None:
    a_id, a_ref, b_id, b_ref = await _two_refuges(world)
    cache = SnapshotCache(world.db, settings, max_age=3600)  # the index never refreshes
    if held:
        await cache.start()
    try:
        assert await _offered(world, cache) == {a_ref: 2, b_ref: 3}
        await _set(world, a_id, units_occupied=2)  # full
        await _set(world, b_id, units_held=1)  # one bed less
        assert await _offered(world, cache) == {b_ref: 2}  # live counts shown
        async with world.db.write() as s:
            await s.execute(
                text(
                    "UPDATE facilities SET status = 'suspended' WHERE id = "
                    "(SELECT facility_id FROM pools WHERE id = :p)"
                ),
                {"p": b_id},
            )
        assert await _offered(world, cache) == {}
    finally:
        await cache.aclose()


async def test_a_dead_held_connection_falls_back_and_is_replaced(
    world: World, settings: Settings, backend: str
) -> None:
    a_id, a_ref, b_id, b_ref = await _two_refuges(world)
    cache = SnapshotCache(world.db, settings, max_age=3600)
    await cache.start()
    try:
        assert await _offered(world, cache) == {a_ref: 2, b_ref: 3}
        await cache._reload()
        # Kill the held connections under the cache's feet.
        if backend == "postgres":
            for held in (cache._live, cache._sync):
                pid = (await held.driver()).get_server_pid()
                async with world.db.write() as s:
                    await s.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        else:
            assert cache._reader is not None and not cache._reader.fresh
            cache._reader._conn.close()  # type: ignore[union-attr]
            await (await cache._sync.driver()).close()
        await _set(world, a_id, units_occupied=2)
        assert await _offered(world, cache) == {b_ref: 3}  # answered through the pool
        await _set(world, b_id, units_held=2)
        await cache._reload()  # the refresh falls back too (a rebuild)
        assert cache._index.pool(b_id)[1].units_held == 2  # type: ignore[union-attr,index]
        for held in (cache._live, cache._sync, cache._reader):
            if held is not None:
                held._failed_at = float("-inf")  # no need to wait for the retry delay here
        await _set(world, b_id, units_held=0)
        assert await _offered(world, cache) == {b_ref: 3}  # a new held connection
        assert not (cache._live if backend == "postgres" else cache._reader).fresh  # type: ignore[union-attr]
        await cache._reload()
        assert not cache._sync.fresh
        assert cache._index.pool(b_id)[1].units_held == 0  # type: ignore[union-attr,index]
    finally:
        await cache.aclose()
    assert cache._live.fresh and cache._sync.fresh  # given back
    assert cache._reader is None or cache._reader.fresh


async def test_the_app_lifespan_holds_and_gives_back_the_connections(
    world: World, settings: Settings
) -> None:
    """Through the ASGI lifespan protocol in the test's own loop (asyncpg connections belong
    to one loop, so no test client thread)."""
    import asyncio

    import httpx

    from api.app import create_app
    from tests.conftest import bearer

    _a_id, a_ref, _b_id, b_ref = await _two_refuges(world)
    await world.operator("Zone", "police")
    token = await world.token("Zone", "police")
    app = create_app(settings, db=world.db, clock=world.clock)
    cache: SnapshotCache = app.state.search_cache
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)  # type: ignore[arg-type]
    )
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = {"household": WOMAN, "need": "homelessness"}
        r = await client.post("/placements/search", json=body, headers=bearer(token))
        assert r.status_code == 200, r.text
        assert {o["poolRef"] for o in r.json()["options"]} == {a_ref, b_ref}
    # the re-check went through the held connection (SQLite: the loop's own reader)
    assert not (cache._live if cache._reader is None else cache._reader).fresh
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await lifespan
    assert cache._live.fresh and cache._sync.fresh  # given back
    assert cache._reader is None or cache._reader.fresh


async def test_a_search_after_a_quiet_spell_finds_a_place_freed_meanwhile(
    world: World, settings: Settings
) -> None:
    """At night one API process may see no search for many minutes. Its index was refreshed
    only in the background, after the search that found it old: that search answered from the
    index as it was when the last search ran, so a place freed meanwhile (full then, so never
    re-checked) was missing from it, however long ago it had been freed."""
    import asyncio

    a_id, a_ref, _b_id, b_ref = await _two_refuges(world)
    await _set(world, a_id, units_occupied=2)  # A full
    cache = SnapshotCache(world.db, settings, max_age=0.2)
    try:
        assert set(await _offered(world, cache)) == {b_ref}
        await _set(world, a_id, units_occupied=0)  # freed while nobody searched
        await asyncio.sleep(0.5)  # more than twice the index's max age
        assert (await _offered(world, cache)).get(a_ref) == 2
    finally:
        await cache.aclose()


@pytest.mark.parametrize("held", [True, False], ids=["held", "pooled"])
async def test_a_facility_whose_best_pool_filled_is_offered_through_its_other_pool(
    world: World, settings: Settings, held: bool
) -> None:
    """The index offers one pool per facility, the one it ranks best by the counts it had.
    When that pool filled since (a hold in another process), the live counts dropped it and
    the facility with it, though its other pool still fitted: a police search found "0
    options" at a hotel whose double rooms were free, and counted the household as unmet."""
    await world.operator("Hotels", "hotel_partner")
    hotel = await world.facility(
        "Hotels",
        "H",
        kind="crisis_hotel",
        policy=AccessPolicy(),
        pools=[
            PoolCreate(label="Single", units_total=1),
            PoolCreate(label="Doubles", unit_kind="room", places_per_unit=2, units_total=2),
        ],
    )
    single, doubles = hotel.pools
    cache = SnapshotCache(world.db, settings, max_age=3600)  # the index never refreshes alone
    if held:
        await cache.start()
    try:
        assert await _offered(world, cache) == {single.ref: 1}  # the snug fit ranks first
        await _set(world, single.id, units_held=1)  # taken meanwhile, elsewhere
        found = await search(
            world.db, cache, REQ, requester_kind="police", operator_id=1, now=world.clock.now()
        )
        assert {o.pool_ref: o.free_units for o in found.result.options} == {doubles.ref: 2}
        assert not found.unmet_recorded  # not unmet demand
    finally:
        await cache.aclose()
