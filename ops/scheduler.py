"""Scheduled jobs (APScheduler 3.x), run by the leader process only (ops/worker.py): ``abri
worker``, or inside ``abri serve``.

Every job is an ``async def job(ctx: JobContext)`` that is idempotent: running it twice, or
in two processes at once, does no harm. Feature modules register their jobs with ``@job``;
``JOB_MODULES`` lists the modules that hold them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from capacity.clock import Clock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.metrics import JOB_LAST_SUCCESS, JOB_RUNS
from capacity.settings import Settings

log = structlog.get_logger("abri.jobs")

#: Modules whose ``@job`` functions the scheduler runs. Add a line per feature.
JOB_MODULES: list[str] = [
    "placement.jobs",
    "clients.webhooks",
    "capacity.jobs",
    "clients.jobs",
]


@dataclass
class JobContext:
    db: Database
    clock: Clock
    settings: Settings
    cipher: AddressCipher
    #: the scheduler running the job (set by ``build_scheduler``), for ``run_early``
    scheduler: AsyncIOScheduler | None = None
    #: the jobs running now (``run_job``), so that stopping can wait for them
    running: set[asyncio.Task[Any]] = field(default_factory=set)


#: the soonest ``run_early`` brings a job forward: never a loop that spins
EARLIEST_RERUN_SECONDS = 0.5


def run_early(ctx: JobContext, name: str, at: datetime) -> None:
    """Bring the next run of job ``name`` forward to ``at`` (e.g. the next hold's deadline)
    when that is before its next interval run; never sooner than half a second from now."""
    scheduler = ctx.scheduler
    if scheduler is None:
        return
    job = scheduler.get_job(name)
    if job is None:
        return
    soonest = datetime.now(UTC) + timedelta(seconds=EARLIEST_RERUN_SECONDS)
    at = max(at if at.tzinfo is not None else at.replace(tzinfo=UTC), soonest)
    if job.next_run_time is None or at < job.next_run_time:
        job.modify(next_run_time=at)


JobFn = Callable[[JobContext], Awaitable[object]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    seconds: int


REGISTRY: dict[str, JobSpec] = {}


def job(name: str, *, seconds: int) -> Callable[[JobFn], JobFn]:
    def deco(fn: JobFn) -> JobFn:
        REGISTRY[name] = JobSpec(name, fn, seconds)
        return fn

    return deco


def load_jobs() -> dict[str, JobSpec]:
    for mod in JOB_MODULES:
        importlib.import_module(mod)
    return dict(REGISTRY)


async def run_job(spec: JobSpec, ctx: JobContext) -> None:
    """Run one job, logging its outcome; a failing job never kills the scheduler."""
    task = asyncio.current_task()
    if task is not None:
        ctx.running.add(task)
    try:
        result = await spec.fn(ctx)
        log.info("job_run", job=spec.name, result=result if isinstance(result, int) else None)
        JOB_RUNS.labels(spec.name, "ok").inc()
        JOB_LAST_SUCCESS.labels(spec.name).set(ctx.clock.now().timestamp())
    except Exception as exc:  # keep the scheduler alive; the next run retries
        log.error("job_failed", job=spec.name, error_type=type(exc).__name__)
        JOB_RUNS.labels(spec.name, "failed").inc()
    finally:
        if task is not None:
            ctx.running.discard(task)


#: how long stopping waits for the cancelled jobs to let go of their connections
STOP_WAIT_SECONDS = 10.0


async def stop_scheduler(ctx: JobContext) -> None:
    """Stop the scheduler and wait (at most ``STOP_WAIT_SECONDS``) for the jobs it cancels to
    end. APScheduler's ``shutdown`` only cancels them: a job cancelled mid-query that is still
    unwinding when the database is disposed could leave the process waiting for ever at exit
    (aiosqlite: a connection whose thread has already stopped)."""
    scheduler, ctx.scheduler = ctx.scheduler, None
    if scheduler is not None:
        scheduler.shutdown(wait=False)  # cancels the jobs in flight
    running = [t for t in ctx.running if not t.done()]
    for t in running:
        t.cancel()
    if running:
        await asyncio.wait(running, timeout=STOP_WAIT_SECONDS)


class _CancelledJobs(logging.Filter):
    """A job cancelled because the scheduler stopped under it (this process stepped down: its
    leader lock is gone, or it is shutting down) is no error: the job is idempotent and the
    next leader runs it at once. APScheduler logs it as ``Job … raised an exception`` at
    ERROR; say ``job_cancelled`` instead. (Only the log line: the cancellation itself runs its
    course, so connections in use are closed as usual.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, asyncio.CancelledError):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        log.info("job_cancelled", job=getattr(job, "id", None))
        return False


_CANCELLED_FILTER = _CancelledJobs()


def build_scheduler(ctx: JobContext, only: Collection[str] | None = None) -> AsyncIOScheduler:
    """Every registered job (or those named in ``only``), each on its interval."""
    executor_log = logging.getLogger("apscheduler.executors.default")
    if _CANCELLED_FILTER not in executor_log.filters:
        executor_log.addFilter(_CANCELLED_FILTER)
    scheduler = AsyncIOScheduler(timezone="UTC")
    ctx.scheduler = scheduler
    for spec in load_jobs().values():
        if only is not None and spec.name not in only:
            continue
        scheduler.add_job(
            run_job,
            "interval",
            seconds=spec.seconds,
            args=[spec, ctx],
            id=spec.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=spec.seconds,
            # A new leader catches up at once (expiries, offers) instead of after an interval.
            next_run_time=datetime.now(UTC),
        )
    return scheduler
