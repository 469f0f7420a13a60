"""Shared fixtures: real SQLite files and a real PostgreSQL database, never mocks.

* ``ABRI_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``) enables the
  PostgreSQL half of every ``backend``-parametrised test: a fresh database is created for the
  test session and dropped at the end.
* ``ABRI_TEST_REQUIRE_ALL=1`` (set by ``.ci/run``) turns every skip for a missing PostgreSQL or
  Chromium into a failure, so CI can never go green by skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.app import create_app
from capacity import migrate, registry
from capacity.audit import CLI
from capacity.clock import FrozenClock
from capacity.commands import FacilityCreate, PoolCreate
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.episode import EpisodeKey
from capacity.models import Base
from capacity.settings import Settings
from placement.policy import AccessPolicy, patch_of

REQUIRE_ALL = os.environ.get("ABRI_TEST_REQUIRE_ALL", "") not in ("", "0", "false")
PG_URL = os.environ.get("ABRI_TEST_POSTGRES_URL", "")
TEST_KEY = "u0Qm7Vf6oHqVvY8lXr1m2cS1b1vQw3s9X4qT5kP6m2Y="  # test-only Fernet key
TEST_EPISODE_KEY = "test-only-episode-key-0123456789abcdef"
# `abri` subprocesses inherit it (on PostgreSQL they refuse to start without one); tests of
# the missing key remove it from their environment
os.environ.setdefault("ABRI_EPISODE_KEY", TEST_EPISODE_KEY)
TEST_EPISODE = EpisodeKey(TEST_EPISODE_KEY.encode(), source="tests")


def need(reason: str) -> None:
    """Skip locally; fail in CI (ABRI_TEST_REQUIRE_ALL=1)."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REQUIRE_ALL:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        print(f"\nABRI_TEST_REQUIRE_ALL: {len(skipped)} test(s) skipped; failing the run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- databases


def _asyncpg(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql+asyncpg")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (asyncpg URL)."""
    if not PG_URL:
        need("PostgreSQL not configured: set ABRI_TEST_POSTGRES_URL")
    import asyncpg

    name = f"abri_test_{secrets.token_hex(4)}"
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        need(f"PostgreSQL unreachable at {PG_URL}: {exc}")
    url = _asyncpg(PG_URL, name)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def truncate_all(db: Database) -> None:
    async with db.write() as s:
        if db.sqlite:
            for table in reversed(Base.metadata.sorted_tables):
                await s.execute(table.delete())
        else:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await s.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_database")
    target = tmp_path / "abri.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, pool_size=40, max_overflow=0)
    if not database.sqlite:
        await truncate_all(database)
    try:
        yield database
    finally:
        if not database.sqlite:
            await truncate_all(database)
        await database.dispose()


# --------------------------------------------------------------------------- the world


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 15, 1, 30, tzinfo=UTC))


@pytest.fixture
def cipher() -> AddressCipher:
    return AddressCipher([TEST_KEY.encode()])


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        address_key=TEST_KEY,
        episode_key=TEST_EPISODE_KEY,
        log_format="console",
        matcher_cache_seconds=0,
        # Tests reuse one token for many calls; tests/integration/test_rate_limits.py
        # switches the limits on.
        rate_search_per_minute=0,
        rate_hold_per_minute=0,
        # Tests revoke tokens and expect the next call to fail; test_auth_cache.py covers it.
        auth_cache_seconds=0,
    )


@dataclass
class World:
    """Builds operators, tokens and facilities through the real services."""

    db: Database
    clock: FrozenClock
    cipher: AddressCipher
    tokens: dict[str, str] = field(default_factory=dict)

    async def operator(self, name: str, kind: str) -> int:
        op = await registry.create_operator(
            self.db, name=name, kind=kind, actor=CLI, now=self.clock.now()
        )
        return op.id

    async def token(self, operator: str, role: str) -> str:
        clear, _ = await registry.create_token(
            self.db, operator=operator, role=role, actor=CLI, now=self.clock.now()
        )
        return clear

    async def facility(
        self,
        operator: str,
        alias: str,
        *,
        municipality: str = "21004",
        kind: str = "refuge",
        policy: AccessPolicy | None = None,
        address: Address | None = None,
        pools: list[PoolCreate] | None = None,
        secret: bool = True,
        **extra: Any,
    ) -> registry.FacilityView:
        cmd = FacilityCreate(
            operator=operator,
            alias=alias,
            municipality_nis=municipality,
            kind=kind,  # type: ignore[arg-type]
            policy=patch_of(policy or AccessPolicy()),
            intake_phone="+32 2 555 01 01",
            handover_protocol="Call the intake phone with the reference code.",
            secret_address=secret,
            address=address,
            pools=pools if pools is not None else [PoolCreate(label="Beds", units_total=7)],
            **extra,
        )
        return await registry.create_facility(
            self.db, cmd, actor=CLI, now=self.clock.now(), cipher=self.cipher
        )


@pytest.fixture
async def world(db: Database, clock: FrozenClock, cipher: AddressCipher) -> World:
    return World(db, clock, cipher)


@pytest.fixture
async def client(
    db: Database, clock: FrozenClock, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in the test's own event loop (asyncpg connections are bound to one loop)."""
    app = create_app(settings, db=db, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def sqlite_world(
    tmp_path: Path, sqlite_template: Path, clock: FrozenClock, cipher: AddressCipher
) -> AsyncIterator[World]:
    """A world on SQLite only, for SQLite-specific behaviour (BEGIN IMMEDIATE)."""
    target = tmp_path / "sqlite-only.db"
    shutil.copy(sqlite_template, target)
    database = Database(f"sqlite+aiosqlite:///{target}")
    try:
        yield World(database, clock, cipher)
    finally:
        await database.dispose()


@pytest.fixture
async def pg_world(
    pg_database: str, clock: FrozenClock, cipher: AddressCipher
) -> AsyncIterator[World]:
    """A world on PostgreSQL only, for PostgreSQL-specific behaviour (isolation levels)."""
    database = Database(pg_database, pool_size=40, max_overflow=0)
    await truncate_all(database)
    try:
        yield World(database, clock, cipher)
    finally:
        await truncate_all(database)
        await database.dispose()
