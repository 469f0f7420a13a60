"""Backup and restore on both databases: restore into a fresh database, then the invariants hold
there (counters agree, same holds, migrations at head, addresses still decrypt with the key)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from api.cli import main
from capacity import registry
from capacity.audit import CLI, Actor
from capacity.commands import PoolCreate
from capacity.crypto import Address
from capacity.db import Database
from capacity.migrate import head_revision
from capacity.models import AuditEntry, Hold, Pool
from placement import holds_service
from placement.household import Adult, Household
from tests.conftest import TEST_KEY, World


async def _seed(world: World) -> int:
    await world.operator("Refuges", "shelter_operator")
    police = await world.operator("Zone", "police")
    fac = await world.facility(
        "Refuges",
        "Refuge K",
        address=Address(street="Rue du Test 1", postal_code="1000", city="Bruxelles"),
        pools=[PoolCreate(label="Beds", units_total=4)],
    )
    actor = Actor(operator_id=police, role="police", operator_kind="police")
    for i in range(3):
        await holds_service.reserve(
            world.db,
            pool_ref=fac.pools[0].ref,
            household=Household(adults=[Adult(gender="female")]),
            need="ipv",
            minutes=None,
            callback=None,
            idempotency_key=f"backup-test-{i:04d}",
            actor=actor,
            now=world.clock.now(),
        )
    return fac.facility.id


async def _fresh_target(world: World, tmp_path: Path) -> tuple[str, str | None]:
    if world.db.sqlite:
        return f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}", None
    name = f"abri_restore_{secrets.token_hex(4)}"
    admin = make_url(world.db.url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(world.db.url).set(database=name).render_as_string(hide_password=False), name


async def test_backup_then_restore_into_a_fresh_database(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facility_id = await _seed(world)
    file = tmp_path / "abri.backup"
    monkeypatch.setenv("ABRI_DATABASE_URL", world.db.url)
    # The restored database is read with the key its addresses were sealed with (`abri check`
    # says so otherwise): the runbook's restore runs in the installation's environment.
    monkeypatch.setenv("ABRI_ADDRESS_KEY", TEST_KEY)
    assert main(["backup", str(file)]) == 0
    assert file.stat().st_size > 0
    target, pg_name = await _fresh_target(world, tmp_path)
    monkeypatch.setenv("ABRI_DATABASE_URL", target)
    assert main(["restore", str(file)]) == 0
    restored = Database(target)
    try:
        async with restored.read() as s:
            assert await s.scalar(select(func.count()).select_from(Hold)) == 3
            assert await s.scalar(select(Pool.units_held)) == 3
            assert (
                await s.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
            )
            audit_rows = await s.scalar(select(func.count()).select_from(AuditEntry))
        assert audit_rows and audit_rows >= 4
        assert await holds_service.counters_agree(restored) == []
        # What the runbook tells operators to run (the CLI has its own event loop).
        assert await asyncio.to_thread(main, ["check"]) == 0
        address = await registry.read_address(
            restored, facility_id, actor=CLI, now=world.clock.now(), cipher=world.cipher
        )
        assert address is not None and address.street == "Rue du Test 1"
        # Restoring over a non-empty database is refused rather than merged.
        if restored.sqlite:
            assert main(["restore", str(file)]) == 2
    finally:
        await restored.dispose()
        if pg_name is not None:
            admin = make_url(world.db.url).set(drivername="postgresql", database="postgres")
            conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            finally:
                await conn.close()


async def test_the_backup_file_is_readable_by_its_owner_only(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup holds what the addresses' encryption does not cover: every secret refuge's
    alias, municipality and intake phone, holds' callbacks, the audit log. Under the usual
    umask (022, systemd's default) it was written world-readable."""
    import os
    import stat

    await _seed(world)
    monkeypatch.setenv("ABRI_DATABASE_URL", world.db.url)
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "nightly" / "abri.backup"
        assert await asyncio.to_thread(main, ["backup", str(fresh)]) == 0
        again = tmp_path / "again.backup"  # overwriting last night's, made before the fix
        again.write_bytes(b"old")
        again.chmod(0o644)
        assert await asyncio.to_thread(main, ["backup", str(again)]) == 0
    finally:
        os.umask(old)
    for file in (fresh, again):
        assert file.stat().st_size > 100
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, oct(file.stat().st_mode)


async def test_restoring_over_a_database_in_use_says_it_is_not_empty(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RUNBOOK: restore into an empty database. Pointed at the live one (or at a new one an
    `abri serve` had already migrated), PostgreSQL answered with pg_restore's first clash,
    e.g. 'function "audit_log_append_only" already exists with same argument types'."""
    await _seed(world)
    file = tmp_path / "abri.backup"
    monkeypatch.setenv("ABRI_DATABASE_URL", world.db.url)
    assert await asyncio.to_thread(main, ["backup", str(file)]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["restore", str(file)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "nothing was restored" in err, err
    async with world.db.read() as s:  # untouched
        assert await s.scalar(select(func.count()).select_from(Hold)) == 3
