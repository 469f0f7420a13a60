"""Schema migrations (alembic), callable from the CLI and from tests."""

from __future__ import annotations

import contextlib
import fcntl
import functools
from collections.abc import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.errors import AbriError


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "capacity:migrations")
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    with _one_at_a_time(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    with _one_at_a_time(url):
        command.downgrade(alembic_config(url), revision)


@contextlib.contextmanager
def _one_at_a_time(url: str) -> Iterator[None]:
    """SQLite: processes starting together (abri serve and abri worker both migrate at start)
    take turns on a lock file beside the database; SQLite runs DDL outside a transaction, so
    the second used to add the same column again and die. (PostgreSQL takes an advisory lock
    in the migration's own transaction: migrations/env.py.) Not the database file itself:
    closing a descriptor of it would drop SQLite's own locks held by this process."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        yield
        return
    lock = f"{u.database}.migrate-lock"
    try:
        fh = open(lock, "a")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:  # a read-only disk: one line, not a traceback
        raise AbriError(
            f"cannot open {lock} ({exc.strerror}): the directory of the SQLite database must "
            "be writable (SQLite keeps its journal there, and migrations their lock)"
        ) from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def head_revision() -> str:
    return _script().get_current_head() or ""


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(r.revision for r in _script().walk_revisions())


def previous_revision(revision: str) -> str | None:
    rev = _script().get_revision(revision)
    down = rev.down_revision if rev is not None else None
    return down if isinstance(down, str) else None


def schema_problem(current: str | None) -> tuple[bool, str] | None:
    """None when the database is at this version's head; else (blocking, what to say).
    Behind (an upgrade whose migrations did not run) blocks: the code needs what is missing.
    Newer (the previous version put back without `abri db downgrade`) is said, not blocking:
    migrations add more than they take away, and going back is the runbook's business."""
    head = head_revision()
    if current == head:
        return None
    if current is None or current in known_revisions():
        return True, (
            f"behind: at {current or '(empty)'}, this version needs {head}: run `abri db upgrade`"
        )
    return False, (
        f"newer than this version: at {current}, this version knows {head} "
        "(downgrade with the newer version, or install it again)"
    )


def sync_url(url: str) -> str:
    u = make_url(url)
    driver = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg2"}
    backend = u.get_backend_name()
    if backend == "postgresql":
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return u.set(drivername=driver[backend]).render_as_string(hide_password=False)


async def stored_revision(s: AsyncSession) -> str | None:
    """The revision a database's schema is at, read in an open session (None: never
    migrated). ``/health/ready`` and ``abri check`` judge it with ``schema_problem``."""
    try:
        return await s.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # no alembic_version table
        return None


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
