"""Alembic environment: async engines for SQLite and PostgreSQL, batch mode for SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from capacity.db import make_engine
from capacity.models import Base

config = context.config
target_metadata = Base.metadata

#: Advisory-lock key of schema migrations ("ABRI" + 2; the scheduler leader's is + 1).
MIGRATION_LOCK = 0x41425249_00000002


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    if connection.dialect.name == "sqlite":
        # SQLite alters a column by rebuilding its table (copy, DROP, rename: alembic's batch
        # mode). With foreign keys enforced, the DROP of a table others refer to fails, or
        # empties the rows that refer to it ON DELETE CASCADE. The pragma must be set outside
        # a transaction (inside one it does nothing), hence on the driver's connection before
        # ours begins; this engine is disposed of after the migration.
        cursor = connection.connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes starting together (abri serve and abri worker both migrate at start by
            # default) take turns: the next one then reads the revision the first committed
            # and has nothing left to do, instead of creating the same tables again and dying.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_url())
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(_run_async())
