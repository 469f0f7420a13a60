"""The token cache: one database read per token per few seconds, never a cached unknown token,
and a revocation through the API applies at once."""

from __future__ import annotations

import dataclasses

import httpx
from sqlalchemy import event

from api.app import create_app
from api.auth import AuthCache
from capacity import registry
from capacity.audit import CLI
from capacity.settings import Settings
from tests.conftest import World, bearer


async def test_tokens_are_cached_briefly_and_revocation_applies_at_once(
    world: World, settings: Settings
) -> None:
    await world.operator("Admins", "admin")
    await world.operator("Zone", "police")
    admin, police = await world.token("Admins", "admin"), await world.token("Zone", "police")
    app = create_app(
        dataclasses.replace(settings, auth_cache_seconds=60), db=world.db, clock=world.clock
    )
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "token_hash" in statement:
            reads.append(statement)

    event.listen(world.db.read_engine.sync_engine, "before_cursor_execute", count)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for _ in range(5):
                assert (await c.get("/holds", headers=bearer(police))).status_code == 200
            assert len(reads) == 1  # one lookup for five requests
            for _ in range(3):  # an unknown token is looked up every time, never cached
                r = await c.get("/holds", headers=bearer("abri_" + "x" * 43))
                assert r.status_code == 401
            assert len(reads) == 4
            tokens = (await c.get("/admin/tokens", headers=bearer(admin))).json()
            police_id = next(t["id"] for t in tokens if t["role"] == "police")
            r = await c.post(f"/admin/tokens/{police_id}/revoke", headers=bearer(admin))
            assert r.status_code == 204
            assert (await c.get("/holds", headers=bearer(police))).status_code == 401
    finally:
        event.remove(world.db.read_engine.sync_engine, "before_cursor_execute", count)


async def test_a_revocation_elsewhere_applies_within_the_ttl(world: World) -> None:
    await world.operator("Zone", "police")
    police = await world.token("Zone", "police")
    now = [0.0]
    cache = AuthCache(5, clock=lambda: now[0])
    assert await cache.authenticate(world.db, police, world.clock.now()) is not None
    tok, _operator = (await registry.list_tokens(world.db))[0]
    await registry.revoke_token(world.db, token_id=tok.id, actor=CLI, now=world.clock.now())
    assert await cache.authenticate(world.db, police, world.clock.now()) is not None  # cached
    now[0] += 5.1
    assert await cache.authenticate(world.db, police, world.clock.now()) is None


async def test_requests_missing_together_share_one_read(world: World) -> None:
    import asyncio

    await world.operator("Zone", "police")
    police = await world.token("Zone", "police")
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "token_hash" in statement:
            reads.append(statement)

    event.listen(world.db.read_engine.sync_engine, "before_cursor_execute", count)
    try:
        cache = AuthCache(5)
        actors = await asyncio.gather(
            *(cache.authenticate(world.db, police, world.clock.now()) for _ in range(10))
        )
        assert len(reads) == 1 and all(a is not None and a.role == "police" for a in actors)
        assert await cache.authenticate(world.db, police, world.clock.now()) is not None
        assert len(reads) == 1  # cached

        # A read under way when the cache is cleared (a revocation) answers its callers but
        # is not remembered; a request after the clear does not share it.
        cache.clear()
        first = asyncio.ensure_future(cache.authenticate(world.db, police, world.clock.now()))
        await asyncio.sleep(0)  # the read is under way
        cache.clear()
        assert (await first) is not None
        assert len(reads) == 2 and not cache._entries  # answered, not remembered
        assert await cache.authenticate(world.db, police, world.clock.now()) is not None
        assert await cache.authenticate(world.db, police, world.clock.now()) is not None
        assert len(reads) == 3  # a new read, remembered this time
    finally:
        event.remove(world.db.read_engine.sync_engine, "before_cursor_execute", count)
