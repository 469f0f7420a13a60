"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every write
transaction on the *write* engine, so a read-then-write transaction takes the write
lock up front instead of failing with "database is locked" (CONVENTIONS §3.3). Reads
use a second engine with a deferred BEGIN so that GETs do not queue behind holds.

PostgreSQL: one engine, READ COMMITTED (asserted by a test), ``lock_timeout`` (2 s) and
``statement_timeout`` (15 s) set once per connection; a write may ask for another lock timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from capacity.errors import Busy

LOCK_TIMEOUT_MS = 2000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _install_sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver; we emit our own below.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, immediate: bool = True, **kwargs: Any) -> AsyncEngine:
    """Build an engine. On SQLite ``immediate`` selects BEGIN IMMEDIATE (write engine)."""
    if is_sqlite(url):
        poolclass = kwargs.pop("poolclass", NullPool)
        if poolclass is NullPool:
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
        kwargs.setdefault("connect_args", {"timeout": 30})
        kwargs.setdefault("hide_parameters", True)
        engine = create_async_engine(url, poolclass=poolclass, **kwargs)
        _install_sqlite_pragmas(engine, immediate=immediate)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # Timeouts once per connection, not two SET LOCAL round trips per transaction.
    kwargs.setdefault(
        "connect_args",
        {"server_settings": {"lock_timeout": f"{LOCK_TIMEOUT_MS}ms", "statement_timeout": "15s"}},
    )
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("hide_parameters", True)  # never log bound values (household data)
    return create_async_engine(url, isolation_level="READ COMMITTED", **kwargs)


class Database:
    """The unit of work factory: ``async with db.write() as s`` is one transaction."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self.write_engine = make_engine(url, immediate=True, **engine_kwargs)
        if self.sqlite:
            # Reads keep a few connections open (opening one costs a thread and four PRAGMAs,
            # more than a search); writes take a fresh one each, serialised by BEGIN IMMEDIATE.
            read_kwargs = {
                k: v for k, v in engine_kwargs.items() if k not in ("pool_size", "max_overflow")
            }
            read_kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=5, max_overflow=45)
            self.read_engine = make_engine(url, immediate=False, **read_kwargs)
        else:
            self.read_engine = self.write_engine
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on any error."""
        async with self._write() as session:
            try:
                async with session.begin():
                    if not self.sqlite and lock_timeout_ms != LOCK_TIMEOUT_MS:
                        await session.execute(
                            text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                        )
                    yield session
            except Exception as exc:
                if _is_lock_timeout(exc):
                    raise Busy(
                        "The place is being updated by someone else; try again.",
                        retry_after=1,
                    ) from exc
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        async with self.read() as s:
            await s.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _is_lock_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):  # walk the cause chain a few links deep
        if seen is None:
            return False
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code in ("55P03", "57014") or "database is locked" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def utcnow() -> datetime:
    return datetime.now(UTC)
