"""Pooled PostgreSQL connections that the server closed are never handed out, and the raw
(driver-level) write path used by holds behaves like the ORM path: same isolation, same
errors, everything or nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text

from capacity.clock import FrozenClock
from capacity.db import Database, UniqueViolation, connection_lost
from capacity.settings import Settings
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World


async def _kill_other_backends(url: str) -> int:
    """pg_terminate_backend every other session on this database (what a restart does)."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def _warm(db: Database, n: int) -> None:
    """Open ``n`` pooled connections at once, so the pool holds them idle afterwards."""

    async def one() -> None:
        async with db.read() as s:
            await s.execute(text("SELECT pg_sleep(0.05)"))

    await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.postgres
async def test_connections_closed_by_the_server_are_replaced_not_used(pg_world: World) -> None:
    db = pg_world.db
    await _warm(db, 5)
    assert await _kill_other_backends(db.url) >= 5
    await asyncio.sleep(0.3)  # asyncpg reads the server's goodbye on each idle socket
    for _ in range(8):  # more than the pool held: every dead one would have been handed out
        async with db.read() as s:
            assert (await s.execute(text("SELECT 1"))).scalar() == 1
        async with db.raw_write() as tx:
            assert (await tx.one("SELECT 1 + $1::int", 1)) is not None


@pytest.mark.postgres
async def test_a_connection_lost_mid_request_is_named_as_such(pg_world: World) -> None:
    db = pg_world.db
    with pytest.raises(Exception) as caught:
        async with db.raw_write() as tx:
            await tx.one("SELECT pg_terminate_backend(pg_backend_pid())")
            await tx.one("SELECT 1")
    assert connection_lost(caught.value), repr(caught.value)
    async with db.raw_write() as tx:  # the pool recovers at once
        assert (await tx.one("SELECT 2"))[0] == 2  # type: ignore[index]


async def test_raw_write_is_all_or_nothing_and_reports_unique_violations(world: World) -> None:
    db, now = world.db, datetime.now(UTC)
    insert = (
        "INSERT INTO operators (name, kind, created_at) VALUES ($1, 'helpline', $2) RETURNING id"
    )
    with pytest.raises(RuntimeError):
        async with db.raw_write() as tx:
            await tx.one(insert, "Rolled back", tx.ts(now))
            raise RuntimeError("boom")
    async with db.raw_write() as tx:
        first = await tx.one(insert, "Kept", tx.ts(now))
    with pytest.raises(UniqueViolation):
        async with db.raw_write() as tx:
            await tx.one(insert, "Kept", tx.ts(now))
    async with db.read() as s:
        names = (await s.execute(text("SELECT name FROM operators ORDER BY id"))).scalars().all()
        stored = (
            await s.execute(text("SELECT created_at FROM operators WHERE name = 'Kept'"))
        ).scalar_one()
    assert names == ["Kept"] and first is not None
    async with db.raw_write() as tx:  # instants round-trip exactly, as aware UTC
        row = await tx.one("SELECT created_at FROM operators WHERE name = $1", "Kept")
        assert row is not None and tx.read_ts(row[0]) == now.replace(tzinfo=UTC)
    assert stored is not None


class _PgServer:
    """Something on a local port where PostgreSQL should be: nothing at all (``refuse``: the
    server is down or restarting) or a server that answers every connection with FATAL 57P03
    "the database system is starting up" (recovery after a restart or a failover)."""

    def __init__(self, *, refuse: bool) -> None:
        self.refuse = refuse
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> _PgServer:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        if self.refuse:  # the port was ours a moment ago; nobody listens there now
            self.server.close()
            await self.server.wait_closed()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.server is not None and not self.refuse:
            self.server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(size - 4)
                if body[:4] == (80877103).to_bytes(4, "big"):  # SSLRequest: no TLS here
                    writer.write(b"N")
                    await writer.drain()
                    continue
                fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
                writer.write(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
                await writer.drain()
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.mark.parametrize("refuse", [True, False], ids=["refused", "starting-up"])
async def test_a_database_down_or_starting_up_answers_503_not_500(refuse: bool) -> None:
    """RUNBOOK, "PostgreSQL restarted or failed over: nothing to do for Abri … clients retry".
    While the server was down (connection refused) or recovering ("starting up"), every request
    answered 500 `internal` with an `unhandled_error` traceback in the log, so neither the SDK
    nor the console retried (they retry a 503): a hold during a failover simply failed. Nothing
    was saved: it is a 503 `database-unavailable` with Retry-After, like a connection that
    breaks under a request."""
    from httpx import ASGITransport, AsyncClient

    from api.app import create_app

    async with _PgServer(refuse=refuse) as server:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/abri"
        down = Database(url)
        settings = Settings(
            database_url=url,
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
            auth_cache_seconds=0,
        )
        app = create_app(settings, db=down, clock=FrozenClock(datetime(2026, 1, 15, tzinfo=UTC)))
        try:
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
                held = await c.get("/holds", headers={"Authorization": "Bearer abri_" + "x" * 43})
                ready = await c.get("/health/ready")
        finally:
            await down.dispose()
    assert held.status_code == 503, held.text
    assert held.json()["code"] == "database-unavailable"
    assert held.headers["retry-after"] == "1"
    assert ready.status_code == 503
