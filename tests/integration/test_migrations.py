"""Migrations build the same schema as the models, up and down, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from capacity import migrate
from capacity.db import make_engine
from capacity.models import Base


async def _diff_and_tables(url: str) -> tuple[list[object], set[str], str | None]:
    engine = make_engine(url, immediate=False)
    try:
        async with engine.connect() as conn:

            def work(sync_conn):  # type: ignore[no-untyped-def]
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return (
                    compare_metadata(ctx, Base.metadata),
                    set(inspect(sync_conn).get_table_names()),
                    ctx.get_current_revision(),
                )

            return await conn.run_sync(work)
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    # A dedicated database: the session one is shared by other tests.
    import asyncpg
    from sqlalchemy.engine import make_url

    base = request.getfixturevalue("pg_database")
    name = make_url(base).database + "_mig"
    admin = (
        make_url(base)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    request.addfinalizer(lambda: asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def test_upgrade_matches_models_and_round_trips(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    diff, tables, rev = asyncio.run(_diff_and_tables(fresh_url))
    assert diff == [], f"models and migrations disagree: {diff}"
    assert rev == migrate.head_revision()
    assert {
        "operators",
        "facilities",
        "facility_addresses",
        "pools",
        "availability_reports",
        "tokens",
        "audit_log",
        "alerts",
    } <= tables
    migrate.downgrade(fresh_url, "base")
    _, tables_after, rev_after = asyncio.run(_diff_and_tables(fresh_url))
    assert rev_after is None
    assert tables_after <= {"alembic_version"}
    migrate.upgrade(fresh_url)
    diff, _, _ = asyncio.run(_diff_and_tables(fresh_url))
    assert diff == []


async def test_the_audit_log_refuses_changes_and_deletions(db: Any, world: Any) -> None:
    """R28: append-only in the database too: an entry cannot be edited or deleted by any client
    (only the retention purge's clearing of ``detail`` passes), on SQLite and PostgreSQL."""

    from sqlalchemy import delete, update
    from sqlalchemy.exc import DBAPIError

    from capacity import retention
    from capacity.models import AuditEntry

    await world.operator("Refuges", "shelter_operator")  # writes an audit entry
    async with db.read() as s:
        (entry,) = (await s.scalars(select(AuditEntry))).all()
    for statement in (
        update(AuditEntry).where(AuditEntry.id == entry.id).values(action="nothing.happened"),
        update(AuditEntry).where(AuditEntry.id == entry.id).values(actor_role=None, detail=None),
        delete(AuditEntry).where(AuditEntry.id == entry.id),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.write() as s:
                await s.execute(statement)
    world.clock.advance(days=400)
    purged = await retention.purge(db, now=world.clock.now(), days=90)
    assert purged.audit_entries == 1
    async with db.read() as s:
        (after,) = (await s.scalars(select(AuditEntry))).all()
    assert (after.action, after.detail) == (entry.action, None)
    assert after.at == entry.at


def test_processes_starting_together_migrate_once_and_all_start(fresh_url: str) -> None:
    """`abri serve` and `abri worker` both migrate at start by default (ABRI_AUTO_MIGRATE=1),
    e.g. the Containerfile's `podman run … serve` and `podman run … worker` started together
    on a new database: all but one died with `duplicate key value violates unique constraint
    "pg_type_typname_nsp_index"` (two CREATE TABLE of the same table), or on SQLite with
    `duplicate column name: first_planned_end`. They now take turns."""
    import os
    import subprocess
    import sys

    from tests.conftest import TEST_KEY

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ABRI_DATABASE_URL": fresh_url, "ABRI_ADDRESS_KEY": TEST_KEY}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "db", "upgrade"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], [err[-3000:] for _, err in results]
    diff, _tables, at = asyncio.run(_diff_and_tables(fresh_url))
    assert diff == [] and at == migrate.head_revision()


def test_going_back_one_revision_keeps_the_data(fresh_url: str, tmp_path: Path) -> None:
    """RUNBOOK, Upgrade step 5: to go back, `abri db downgrade <revision>` (or `-1`). On
    SQLite with facilities in it, the downgrade died with "FOREIGN KEY constraint failed":
    SQLite's way of altering a column rebuilds the table (copy, DROP, rename), and with
    foreign keys enforced the DROP of a table its pools refer to is refused (or, for a table
    whose rows are referenced ON DELETE CASCADE, would empty the referencing ones). Going
    back a revision and up again keeps every facility and pool."""
    from capacity.crypto import AddressCipher
    from capacity.db import Database
    from capacity.models import Facility, Pool
    from ops.demo import load_demo

    migrate.upgrade(fresh_url)

    async def fill() -> None:
        db = Database(fresh_url)
        try:
            await load_demo(db, cipher=AddressCipher.from_settings(None, str(tmp_path / "k")))
        finally:
            await db.dispose()

    async def counts() -> tuple[int, int]:
        engine = make_engine(fresh_url, immediate=False)
        try:
            async with engine.connect() as conn:
                facilities = (await conn.execute(select(Facility.id))).all()
                pools = (await conn.execute(select(Pool.id))).all()
                return len(facilities), len(pools)
        finally:
            await engine.dispose()

    asyncio.run(fill())
    before = asyncio.run(counts())
    assert before[0] > 10 and before[1] > before[0]
    migrate.downgrade(fresh_url, "-1")
    migrate.upgrade(fresh_url)
    assert asyncio.run(counts()) == before


def test_links_of_a_token_revoked_before_the_upgrade_are_revoked_too(
    fresh_url: str, tmp_path: Path
) -> None:
    """Revoking a token now revokes the one-time links it issued (RUNBOOK: "A token may have
    leaked: revoke it first (that also revokes the one-time links it issued)"). A token
    revoked with the previous version kept its week-long links alive, and revoking it again
    is refused (no such active token): the upgrade revokes them, as of the token's
    revocation. Links of live tokens, and links already ended, are left as they are."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from capacity import links, registry
    from capacity.clock import FrozenClock
    from capacity.crypto import AddressCipher
    from capacity.db import Database
    from capacity.models import StaffLink, Token
    from tests.conftest import TEST_KEY, World

    migrate.upgrade(fresh_url, "0017")
    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)

    async def seed() -> dict[str, int]:
        db = Database(fresh_url)
        try:
            world = World(db, FrozenClock(now), AddressCipher([TEST_KEY.encode()]))
            await world.operator("Refuges A", "shelter_operator")
            fac = await world.facility("Refuges A", "Refuge R-1")
            ids = {}
            for name in ("leaked", "office"):
                actor = await registry.authenticate(
                    db, await world.token("Refuges A", "staff"), now
                )
                assert actor is not None
                _, link = await links.issue(
                    db,
                    fac.facility.id,
                    label=name,
                    hours=72,
                    actor=actor,
                    now=now,
                    operator_scope=None,
                )
                ids[name], ids[f"{name}-token"] = link.id, actor.token_id
            async with db.write() as s:  # what the previous version's revocation did
                await s.execute(
                    update(Token)
                    .where(Token.id == ids["leaked-token"])
                    .values(revoked_at=now + timedelta(hours=1))
                )
            return ids
        finally:
            await db.dispose()

    async def revoked() -> dict[int, datetime | None]:
        db = Database(fresh_url)
        try:
            async with db.read() as s:
                rows = (await s.execute(select(StaffLink.id, StaffLink.revoked_at))).all()
            return {i: at for i, at in rows}
        finally:
            await db.dispose()

    ids = asyncio.run(seed())
    migrate.upgrade(fresh_url)
    after = asyncio.run(revoked())
    assert after[ids["leaked"]] == now + timedelta(hours=1)
    assert after[ids["office"]] is None


def test_holds_closed_before_the_upgrade_get_the_code_their_rows_tell(
    fresh_url: str, tmp_path: Path
) -> None:
    """Migration 0024 adds ``holds.close_code`` (the requester's ``closeCode``) and fills it
    for holds that ended before it, from what their rows say for certain: the state, Abri's
    own text for a compromised location, the audit entry of a release. What no record tells
    any longer (a decline whose reason the retention purge cleared) stays NULL."""
    from datetime import UTC, datetime

    import httpx
    from sqlalchemy import update

    from api.app import create_app
    from capacity.clock import FrozenClock
    from capacity.crypto import AddressCipher
    from capacity.db import Database
    from capacity.models import Hold
    from capacity.settings import Settings
    from placement.holds_service import expire_due_holds
    from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World, bearer

    migrate.upgrade(fresh_url)
    clock = FrozenClock(datetime(2026, 12, 1, 20, 0, tzinfo=UTC))
    household = {"adults": [{"gender": "female"}], "children": [], "languages": ["fr"]}

    async def seed() -> dict[str, str]:
        db = Database(fresh_url)
        settings = Settings(
            database_url=fresh_url,
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
            matcher_cache_seconds=0,
            rate_search_per_minute=0,
            rate_hold_per_minute=0,
            auth_cache_seconds=0,
        )
        try:
            world = World(db, clock, AddressCipher([TEST_KEY.encode()]))
            await world.operator("Admin", "admin")
            await world.operator("Zone Nord", "police")
            await world.operator("Refuges A", "shelter_operator")
            places = [await world.facility("Refuges A", f"Refuge {i}") for i in range(3)]
            police = bearer(await world.token("Zone Nord", "police"))
            staff = bearer(await world.token("Refuges A", "staff"))
            admin = bearer(await world.token("Admin", "admin"))
            app = create_app(settings, db=db, clock=clock)
            transport = httpx.ASGITransport(app=app)
            refs: dict[str, str] = {}
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

                async def hold(name: str, place: int = 0) -> str:
                    body = {
                        "poolRef": places[place].pools[0].ref,
                        "need": "ipv",
                        "household": household,
                    }
                    h = {**police, "Idempotency-Key": f"mig-0024-{name}"}
                    r = await c.post("/holds", headers=h, json=body)
                    assert r.status_code == 201, r.text
                    refs[name] = r.json()["ref"]
                    return refs[name]

                async def ok(r: httpx.Response) -> None:
                    assert r.status_code == 200, r.text

                await ok(await c.post(f"/holds/{await hold('own')}/release", headers=police))
                await ok(await c.post(f"/holds/{await hold('admin')}/release", headers=admin))
                for name in ("full", "purged"):
                    await ok(
                        await c.post(
                            f"/staff/holds/{await hold(name)}/decline",
                            headers=staff,
                            json={"reason": "Full tonight"},
                        )
                    )
                await ok(
                    await c.post(f"/staff/holds/{await hold('no_show')}/no-show", headers=staff)
                )
                for name in ("arrived", "departed"):
                    await ok(
                        await c.post(f"/staff/holds/{await hold(name)}/arrived", headers=staff)
                    )
                await ok(await c.post(f"/staff/holds/{refs['departed']}/departed", headers=staff))
                await hold("swept", place=2)
                await hold("compromised", place=1)
                await ok(
                    await c.put(
                        f"/staff/facilities/{places[1].facility.id}/status",
                        headers=staff,
                        json={"status": "location_compromised", "reason": "Seen outside"},
                    )
                )
                await hold("expired", place=2)
                async with db.write() as s:  # the purge, as if that decline were old
                    await s.execute(
                        update(Hold).where(Hold.ref == refs["purged"]).values(close_reason=None)
                    )
            clock.advance(hours=2)  # past the police deadlines of the last two
            assert await expire_due_holds(db, clock.now()) == 2
            return refs
        finally:
            await db.dispose()

    async def codes() -> dict[str, str | None]:
        db = Database(fresh_url)
        try:
            async with db.read() as s:
                return dict((await s.execute(select(Hold.ref, Hold.close_code))).all())
        finally:
            await db.dispose()

    refs = asyncio.run(seed())
    migrate.downgrade(fresh_url, "0023")  # what the previous version stored: no code
    migrate.upgrade(fresh_url)
    by_ref = asyncio.run(codes())
    assert {name: by_ref[ref] for name, ref in refs.items()} == {
        "own": "released",
        "admin": "released_by_admin",
        "full": "declined",
        "purged": None,  # declined, but whether for a compromised location no record says
        "no_show": "no_show",
        "arrived": None,  # open
        "departed": "departed",
        "swept": "expired",
        "compromised": "location_compromised",
        "expired": "expired",
    }
