"""Liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from api.routing import get
from api.schemas import Out
from capacity import metrics as m
from capacity.availability import freshness, stale_threshold
from capacity.clock import Clock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.episode import WRONG_KEY, EpisodeKey, record_mark
from capacity.models import Facility, Feed, Hold, Pool, StandingRequest, is_held
from capacity.settings import Settings
from clients.feeds.service import recent_polls


class Health(Out, kw_only=True, omit_defaults=True):
    status: str
    database: str | None = None
    schema: str | None = None  # only when it is not at this version's migrations
    address_key: str | None = None  # only when it cannot open what is stored
    episode_key: str | None = None  # only when it is not the one the deployment recorded


@get("/health/live", tags=["operations"], summary="The process is up")
async def live() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    tags=["operations"],
    summary="The database answers, with the schema this version needs",
    description="503 when the database cannot be reached, its schema is behind this "
    "version (`abri db upgrade` did not run), or this process's `ABRI_ADDRESS_KEY` cannot open "
    "the secrets stored last (`addressKey`: another key than the one they were sealed with), or "
    "its `ABRI_EPISODE_KEY` is not the one the first process recorded (`episodeKey`); a "
    "schema newer than this version is noted in `schema` without failing.",
)
async def ready(
    db: NamedDependency[Database],
    cipher: NamedDependency[AddressCipher],
    clock: NamedDependency[Clock],
    request: Request[Any, Any, Any],
) -> Response[Health]:
    from capacity.migrate import schema_problem, stored_revision
    from capacity.rekey import sealed_with_other_keys

    try:
        async with db.read() as s:
            await s.execute(text("SELECT 1"))  # the database answers
            problem = schema_problem(await stored_revision(s))
            # The tables the key check reads exist only at this version's schema.
            wrong_key = (problem is None or not problem[0]) and bool(
                await sealed_with_other_keys(s, cipher, newest_only=True)
            )
    except Exception:  # readiness must answer, not crash
        return Response(Health(status="unavailable", database="unreachable"), status_code=503)
    if wrong_key:
        said = "wrong: it does not open the stored addresses and secrets (see `abri check`)"
        return Response(
            Health(status="unavailable", database="ok", address_key=said), status_code=503
        )
    if problem is None or not problem[0]:
        key: EpisodeKey = request.app.state.episode_key
        try:  # the first process to answer records its key's fingerprint; the others compare
            mark, theirs = await record_mark(db, key, clock.now())
        except Exception:
            return Response(Health(status="unavailable", database="unreachable"), status_code=503)
        if mark == "wrong":
            said = WRONG_KEY.format(mine=key.fingerprint, theirs=theirs)
            return Response(
                Health(status="unavailable", database="ok", episode_key=said), status_code=503
            )
    if problem is None:
        return Response(Health(status="ok", database="ok"))
    blocking, said = problem
    if blocking:
        return Response(Health(status="unavailable", database="ok", schema=said), status_code=503)
    return Response(Health(status="ok", database="ok", schema=said))


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics (restrict to your monitoring network at the proxy)",
    include_in_schema=False,
)
async def metrics(
    db: NamedDependency[Database],
    clock: NamedDependency[Clock],
    settings: NamedDependency[Settings],
) -> Response[bytes]:
    now = clock.now()
    try:
        async with db.read() as s:
            pools = (
                await s.execute(
                    select(Pool, Facility).join(Facility, Facility.id == Pool.facility_id)
                )
            ).all()
            held = await s.scalar(select(func.count()).select_from(Hold).where(is_held()))
            feeds = (await s.scalars(select(Feed).where(Feed.enabled.is_(True)))).all()
            waiting = await s.scalar(
                select(func.count())
                .select_from(StandingRequest)
                .where(StandingRequest.state == "waiting")
            )
    except Exception:  # metrics must answer even when the database does not
        # The gauges are process-wide: left alone they would keep the last scrape's figures
        # (no stale pool, no failing feed) for as long as the outage lasts. NaN: unknown.
        unknown = float("nan")
        for gauge in (m.POOLS_TOTAL, m.POOLS_STALE, m.HOLDS_ACTIVE, m.STANDING_WAITING):
            gauge.set(unknown)
        for key in ("healthy", "failing", "circuit_open"):
            m.FEEDS.labels(key).set(unknown)
        m.FEEDS_ALERTING.set(unknown)
    else:
        stale = 0
        for pool, fac in pools:
            threshold = stale_threshold(fac, settings.stale_minutes)
            stale += freshness(pool, threshold_minutes=threshold, now=now).stale
        m.POOLS_TOTAL.set(len(pools))
        m.POOLS_STALE.set(stale)
        m.HOLDS_ACTIVE.set(held or 0)
        m.STANDING_WAITING.set(waiting or 0)
        health = {"healthy": 0, "failing": 0, "circuit_open": 0}
        for f in feeds:
            failing = "failing" if f.consecutive_failures else "healthy"
            health["circuit_open" if f.circuit != "closed" else failing] += 1
        for key, n in health.items():
            m.FEEDS.labels(key).set(n)
        m.FEEDS_ALERTING.set(sum(recent_polls(f, now=now).alerting for f in feeds))
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
