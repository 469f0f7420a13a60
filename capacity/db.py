"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every write
transaction on the *write* engine, so a read-then-write transaction takes the write
lock up front instead of failing with "database is locked" (CONVENTIONS §3.3). Reads
use a second engine with a deferred BEGIN so that GETs do not queue behind holds.

PostgreSQL: one engine, READ COMMITTED (asserted by a test), ``lock_timeout`` (2 s) and
``statement_timeout`` (15 s) and TCP keepalives set once per connection; a write may ask for
another lock timeout.
"""

from __future__ import annotations

import errno
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from sqlalchemy.util import greenlet_spawn

from capacity.errors import Busy

LOCK_TIMEOUT_MS = 2000
#: Server-side TCP keepalives for every PostgreSQL connection (``server_settings``): a probe
#: after 60 s of silence keeps idle-connection killers (a cloud NAT after 350 s, a load
#: balancer after 4 min) from dropping a pooled or held connection, and a client that vanished
#: without a word (its session, and the scheduler leader's advisory lock with it) is noticed
#: after 60 + 3 x 10 s instead of the operating system's two hours.
TCP_KEEPALIVES = {
    "tcp_keepalives_idle": "60",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


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
    kwargs.setdefault("pool_size", 20)  # as Settings.pg_pool_size: kept, no overflow churn
    kwargs.setdefault("max_overflow", 0)
    # Timeouts once per connection, not two SET LOCAL round trips per transaction.
    kwargs.setdefault(
        "connect_args",
        {
            "server_settings": {
                "lock_timeout": f"{LOCK_TIMEOUT_MS}ms",
                "statement_timeout": "15s",
                **TCP_KEEPALIVES,
            }
        },
    )
    kwargs.setdefault("hide_parameters", True)  # never log bound values (household data)
    # JSON columns (policies, households) decoded by msgspec, ~5x faster than the json module.
    kwargs.setdefault("json_deserializer", msgspec.json.decode)
    engine = create_async_engine(url, isolation_level="READ COMMITTED", **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _install_closed_check(engine)
    return engine


def _install_closed_check(engine: AsyncEngine) -> None:
    """Never hand out a pooled connection the server has closed (a PostgreSQL restart, an
    idle-session timeout, ``pg_terminate_backend``): asyncpg notices the closed socket by
    itself, so checking costs nothing. SQLAlchemy's ``pool_pre_ping`` would instead spend
    three round trips (BEGIN, a ping, ROLLBACK) on every transaction — a quarter of a hold's
    CPU. A connection that dies while in use fails that one request (503, retry), and
    SQLAlchemy then recycles the rest of the pool."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("connection closed by the server")  # pool retries


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
                    raise _busy() from exc
                raise

    @asynccontextmanager
    async def raw_write(self, *, transaction: bool = True) -> AsyncIterator[RawTx]:
        """One write transaction on the driver's own connection, for hot paths (holds).

        Same engine, pool, connection settings and lock semantics as :meth:`write` (BEGIN
        IMMEDIATE on SQLite, READ COMMITTED and the lock timeout on PostgreSQL), without the
        ORM's per-statement cost: on PostgreSQL the statements go straight to asyncpg, which
        prepares each once per connection. Committed on success, rolled back on any error.

        ``transaction=False`` (PostgreSQL only; SQLite always has its transaction): every
        statement commits on its own — for callers whose writes are each one atomic statement
        — and :meth:`RawTx.atomic` groups the few that must go together. It saves the BEGIN
        and COMMIT round trips.
        """
        try:
            if self.sqlite:
                async with self.write_engine.connect() as conn:
                    tx: RawTx = _SqliteTx(conn)
                    yield tx
                    await conn.commit()
                return
            # Straight from the pool (its checkout listener included), without building a
            # SQLAlchemy Connection around it: that wrapper cost ~0.1 ms of CPU per hold.
            fairy = await self.write_engine.raw_connection()
            try:
                driver = fairy.driver_connection
                isolation = self._isolation()
                if not transaction and isolation == "read_committed":
                    # (another level, e.g. a test's REPEATABLE READ, keeps its transaction)
                    yield _PgTx(driver, isolation)
                    return
                pg_tx = driver.transaction(isolation=isolation)  # type: ignore[union-attr]
                await pg_tx.start()
                try:
                    yield _PgTx(driver, None)
                except BaseException:
                    await pg_tx.rollback()
                    raise
                await pg_tx.commit()
            finally:
                # Back to the pool; closing a broken connection may need the driver.
                await greenlet_spawn(fairy.close)
        except Exception as exc:
            if _is_lock_timeout(exc):
                raise _busy() from exc
            if _is_unique_violation(exc):
                raise UniqueViolation(str(exc)) from exc
            raise

    def _isolation(self) -> str:
        """The write engine's isolation level, as asyncpg names it (``read_committed``)."""
        engine = self.write_engine
        level = (
            engine.get_execution_options().get("isolation_level")
            or getattr(engine.dialect, "_on_connect_isolation_level", None)
            or "READ COMMITTED"
        )
        return str(level).lower().replace(" ", "_")

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


class UniqueViolation(Exception):
    """A unique constraint refused a row written through :meth:`Database.raw_write`."""


_PARAM = re.compile(r"\$(\d+)")
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite
_SQLITE_SQL: dict[str, str] = {}  # "$1" text -> "?1" text


def _naive_utc(value: datetime | None) -> datetime | None:
    """How instants are stored (as ``UTCDateTime`` does): naive UTC; naive input refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database")
    return value.astimezone(UTC).replace(tzinfo=None)


class RawTx:
    """Statements in one transaction, written once with ``$1``-style parameters for both
    databases. Instants go in and come out as aware UTC datetimes (stored naive UTC, like
    ``UTCDateTime``); JSON goes in as Python objects."""

    sqlite: bool

    async def one(self, sql: str, *args: Any) -> Sequence[Any] | None:
        raise NotImplementedError

    async def all(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def run(self, sql: str, *args: Any) -> int:
        """Execute; return the number of rows written."""
        raise NotImplementedError

    def ts(self, value: datetime | None) -> Any:
        raise NotImplementedError

    def atomic(self) -> AbstractAsyncContextManager[Any]:
        """Statements that must commit together, when the connection is not already in one
        transaction (``raw_write(transaction=False)``); otherwise nothing more to do."""
        return nullcontext()

    @staticmethod
    def json(value: Any) -> str | None:
        return None if value is None else msgspec.json.encode(value).decode()

    @staticmethod
    def read_ts(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's text
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @staticmethod
    def read_json(value: Any) -> Any:
        return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


class _PgTx(RawTx):
    sqlite = False

    def __init__(self, conn: Any, isolation: str | None) -> None:
        self.conn = conn
        self._isolation = isolation  # None: already inside the caller's transaction

    def atomic(self) -> AbstractAsyncContextManager[Any]:
        if self._isolation is None:
            return nullcontext()
        return self.conn.transaction(isolation=self._isolation)  # type: ignore[no-any-return]

    async def one(self, sql: str, *args: Any) -> Sequence[Any] | None:
        return await self.conn.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def all(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        return await self.conn.fetch(sql, *args)  # type: ignore[no-any-return]

    async def run(self, sql: str, *args: Any) -> int:
        status = await self.conn.execute(sql, *args)  # e.g. "UPDATE 1"
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    def ts(self, value: datetime | None) -> Any:
        return _naive_utc(value)


class _SqliteTx(RawTx):
    """Through SQLAlchemy's connection (its BEGIN IMMEDIATE listener starts the transaction),
    but as plain driver SQL: ``$1`` becomes SQLite's numbered ``?1``."""

    sqlite = True

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    def _q(sql: str) -> str:
        q = _SQLITE_SQL.get(sql)
        if q is None:
            q = _SQLITE_SQL[sql] = _PARAM.sub(r"?\1", sql)
        return q

    async def one(self, sql: str, *args: Any) -> Sequence[Any] | None:
        return (await self.conn.exec_driver_sql(self._q(sql), args)).first()  # type: ignore[no-any-return]

    async def all(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        return list((await self.conn.exec_driver_sql(self._q(sql), args)).all())

    async def run(self, sql: str, *args: Any) -> int:
        return int((await self.conn.exec_driver_sql(self._q(sql), args)).rowcount)

    def ts(self, value: datetime | None) -> Any:
        naive = _naive_utc(value)
        return None if naive is None else naive.strftime(_SQLITE_TS)


def exception_chain(exc: BaseException, depth: int = 6) -> Iterator[BaseException]:
    """The error and what it wraps, a few links deep: SQLAlchemy's wrapper (``orig``), the
    driver's error, its cause."""
    seen: BaseException | None = exc
    for _ in range(depth):
        if seen is None:
            return
        yield seen
        seen = getattr(seen, "orig", None) or seen.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def _is_unique_violation(exc: BaseException) -> bool:
    return any(
        _sqlstate(e) == "23505" or "UNIQUE constraint failed" in str(e)
        for e in exception_chain(exc)
    )


#: the server is not there (down, restarting, unreachable): nothing was sent, nothing saved
_UNREACHABLE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})
#: SQLSTATEs of a server going away or not yet back: admin_shutdown, crash_shutdown,
#: cannot_connect_now ("the database system is starting up" / "is shutting down")
_SERVER_GOING_OR_COMING = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """The database connection broke under a request, or none could be made (server down,
    restarting or failing over, network): retryable, nothing was saved."""
    for e in exception_chain(exc):
        name = type(e).__name__
        state = _sqlstate(e) or ""
        if (
            getattr(e, "connection_invalidated", False)
            or name in ("ConnectionDoesNotExistError", "ConnectionFailureError")
            or (name == "InterfaceError" and "connection is closed" in str(e))
            or isinstance(e, ConnectionError)
            or (isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS)
            or state.startswith("08")  # connection_exception
            or state in _SERVER_GOING_OR_COMING
        ):
            return True
    return False


def storage_refused(exc: BaseException) -> str | None:
    """Why the database refused to write for reasons of its own storage, not of the request:
    ``"full"`` (SQLite's disk or PostgreSQL's, SQLSTATE 53100), ``"read-only"`` (a read-only
    file or mount; a PostgreSQL standby, e.g. mid-failover, SQLSTATE 25006) or ``"io"``
    (SQLite's disk I/O error); None otherwise. Nothing was saved."""
    for e in exception_chain(exc):
        state = _sqlstate(e) or ""
        text = str(e)
        if state == "53100" or "database or disk is full" in text:
            return "full"
        if state == "25006" or "readonly database" in text:
            return "read-only"
        if "disk I/O error" in text:
            return "io"
    return None


def _is_lock_timeout(exc: BaseException) -> bool:
    return any(
        _sqlstate(e) in ("55P03", "57014") or "database is locked" in str(e)
        for e in exception_chain(exc)
    )


def _busy() -> Busy:
    return Busy("The place is being updated by someone else; try again.", retry_after=1)


def utcnow() -> datetime:
    return datetime.now(UTC)
