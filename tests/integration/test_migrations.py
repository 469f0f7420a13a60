"""Migrations build the same schema as the models, up and down, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

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
