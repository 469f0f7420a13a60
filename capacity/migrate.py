"""Schema migrations (alembic), callable from the CLI and from tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "capacity:migrations")
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def sync_url(url: str) -> str:
    u = make_url(url)
    driver = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg2"}
    backend = u.get_backend_name()
    if backend == "postgresql":
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return u.set(drivername=driver[backend]).render_as_string(hide_password=False)


async def current_revision_async(url: str) -> str | None:
    from capacity.db import make_engine

    engine = make_engine(url, immediate=False)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()


__all__ = ["create_engine", "downgrade", "upgrade"]
