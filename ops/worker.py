"""One active scheduler across all processes: ``abri worker`` (and the jobs inside ``abri serve``).

APScheduler 3.x runs every job once *per process*. Jobs are idempotent, but with several API
processes and a worker they would all run everything. So a process runs the scheduler only
while it is the **leader**:

* PostgreSQL: a session-level ``pg_try_advisory_lock`` held on a dedicated connection. The
  server releases it the moment that connection closes (the process died, was killed, or lost
  the network), so another worker takes over within one poll interval. The leader checks its
  connection every poll; if it broke, it stops its scheduler at once.
* SQLite (one machine): a lease row (``capacity.leases``) renewed every poll; a dead leader's
  lease runs out after ``lease_seconds``.

Followers poll and take over; nothing else is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from capacity import leases
from capacity.clock import Clock, SystemClock
from capacity.crypto import AddressCipher
from capacity.db import TCP_KEEPALIVES, Database
from capacity.episode import EpisodeKey, announce_mark
from capacity.settings import Settings

log = structlog.get_logger("abri.worker")

#: Advisory-lock key of the scheduler leader ("ABRI" + 1).
LEADER_KEY = 0x41425249_00000001
LEASE_NAME = "scheduler-leader"
#: How long the leader waits for the database to answer about its lock (seconds): no answer
#: means the connection is gone, even when no reset ever arrives (a silent network).
LEADER_CHECK_SECONDS = 5.0


class Leadership(Protocol):
    async def try_acquire(self) -> bool: ...
    async def still_held(self) -> bool: ...
    async def release(self) -> None: ...


class PgAdvisoryLeadership:
    """Leadership = holding a session advisory lock on our own connection."""

    def __init__(self, url: str) -> None:
        # The lock's connection says whose it is (host:pid:…, as in the worker_leader log line):
        # pg_locks only gives PostgreSQL's backend pid (RUNBOOK, "Check who leads").
        self._engine = create_async_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "server_settings": {
                    "application_name": f"abri leader {leases.HOLDER}",
                    **TCP_KEEPALIVES,  # a dead leader's lock is freed in 90 s, not 2 hours
                }
            },
        )
        self._conn: AsyncConnection | None = None

    async def _ask(self, sql: str) -> Any:
        """One question about the lock on our connection (made if need be), answered within
        ``LEADER_CHECK_SECONDS``: a connection that a silent network (an idle-connection
        killer dropping packets, no reset) has cut would otherwise keep us waiting for the
        kernel's retransmission timeout, a quarter of an hour, believing we still lead."""

        async def ask() -> Any:
            if self._conn is None:
                self._conn = await self._engine.connect()
            return await self._conn.scalar(text(sql), {"k": LEADER_KEY})

        return await asyncio.wait_for(ask(), LEADER_CHECK_SECONDS)

    async def try_acquire(self) -> bool:
        try:
            return bool(await self._ask("SELECT pg_try_advisory_lock(:k)"))
        except Exception as exc:  # database down: not the leader; retry next poll
            log.warning("leader_check_failed", error_type=type(exc).__name__)
            await self._drop()
            return False

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = await self._ask(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND (classid::bigint << 32 | objid::bigint) = :k"
            )
            return bool(held)
        except Exception as exc:
            log.warning("leader_connection_lost", error_type=type(exc).__name__)
            await self._drop()
            return False

    async def _drop(self) -> None:
        """Close our connection without waiting on the network (the server frees the lock
        when it sees the session end)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # the socket is closed at once, no goodbye awaited
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), LEADER_CHECK_SECONDS)

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._ask("SELECT pg_advisory_unlock(:k)")
        await self._drop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._engine.dispose(), LEADER_CHECK_SECONDS)


class LeaseLeadership:
    """Leadership = a lease row renewed every poll (SQLite; works on PostgreSQL too)."""

    def __init__(self, db: Database, *, seconds: float, clock: Clock | None = None) -> None:
        self.db = db
        self.seconds = seconds
        self.clock = clock or SystemClock()

    async def try_acquire(self) -> bool:
        try:
            return await leases.acquire(
                self.db, LEASE_NAME, now=self.clock.now(), seconds=int(max(1, self.seconds))
            )
        except Exception as exc:
            log.warning("leader_check_failed", error_type=type(exc).__name__)
            return False

    async def still_held(self) -> bool:
        return await self.try_acquire()  # renewing is taking it again as the same holder

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await leases.release(self.db, LEASE_NAME)


def leadership_for(db: Database, settings: Settings) -> Leadership:
    if db.sqlite:
        return LeaseLeadership(db, seconds=settings.worker_lease_seconds)
    return PgAdvisoryLeadership(db.url)


@dataclass
class LeaderLoop:
    """Poll for leadership; run the scheduler only while leader."""

    db: Database
    settings: Settings
    clock: Clock
    cipher: AddressCipher
    leadership: Leadership | None = None

    def __post_init__(self) -> None:
        self.leadership = self.leadership or leadership_for(self.db, self.settings)
        self.scheduler: Any = None
        self.ctx: Any = None  # the running scheduler's JobContext
        self.is_leader = False

    async def step(self) -> None:
        assert self.leadership is not None
        if self.scheduler is None:
            if await self.leadership.try_acquire():
                from ops.scheduler import JobContext, build_scheduler

                self.ctx = JobContext(
                    db=self.db, clock=self.clock, settings=self.settings, cipher=self.cipher
                )
                self.scheduler = build_scheduler(self.ctx)
                self.scheduler.start()
                self.is_leader = True
                log.info("worker_leader", holder=leases.HOLDER)
        elif not await self.leadership.still_held():
            log.warning("worker_lost_leadership", holder=leases.HOLDER)
            await self._stop_scheduler()

    async def _stop_scheduler(self) -> None:
        """Stop the scheduler, and wait for the jobs it cancels to let go of the database."""
        if self.scheduler is not None:
            from ops.scheduler import stop_scheduler

            self.scheduler = None
            await stop_scheduler(self.ctx)
        self.is_leader = False

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker_started", holder=leases.HOLDER)
        try:
            while not stop.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_poll_seconds)
        finally:
            await self._stop_scheduler()
            assert self.leadership is not None
            await self.leadership.release()


async def run_worker(settings: Settings) -> None:
    """``abri worker``: the scheduled jobs, in their own process, leader only."""
    db = Database(
        settings.database_url,
        pool_size=settings.pg_pool_size,
        max_overflow=settings.pg_max_overflow,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cipher = AddressCipher.configured(settings)
    await announce_mark(db, EpisodeKey.configured(settings), SystemClock().now())
    if settings.worker_metrics:
        from capacity.metrics import serve_worker_metrics

        host, port = serve_worker_metrics(settings.worker_metrics)
        log.info("worker_metrics", url=f"http://{host}:{port}/metrics")
    try:
        await LeaderLoop(db, settings, SystemClock(), cipher).run(stop)
    finally:
        await db.dispose()
