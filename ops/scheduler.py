"""Scheduled jobs (APScheduler 3.x), run by the leader process only (ops/worker.py): ``abri
worker``, or inside ``abri serve``.

Every job is an ``async def job(ctx: JobContext)`` that is idempotent: running it twice, or
in two processes at once, does no harm. Feature modules register their jobs with ``@job``;
``JOB_MODULES`` lists the modules that hold them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from capacity.clock import Clock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.metrics import JOB_RUNS
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
    try:
        result = await spec.fn(ctx)
        log.info("job_run", job=spec.name, result=result if isinstance(result, int) else None)
        JOB_RUNS.labels(spec.name, "ok").inc()
    except Exception as exc:  # keep the scheduler alive; the next run retries
        log.error("job_failed", job=spec.name, error_type=type(exc).__name__)
        JOB_RUNS.labels(spec.name, "failed").inc()


def build_scheduler(ctx: JobContext) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for spec in load_jobs().values():
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
