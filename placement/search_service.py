"""The shell around the pure matcher: live data in, options out, unmet demand recorded.

Each API process keeps a ``MatcherIndex`` built from the database. It is refreshed in the
background when older than ``max_age`` seconds (single flight: searches keep using the current
index meanwhile), so a search never waits for a reload. Because the cached counts can be a
moment old, the options about to be returned are **re-checked against the live rows** (one
query): a pool that is no longer free enough, or a facility that stopped admitting, is dropped,
and free counts shown are the live ones. A place freed in the last ``max_age`` seconds may be
missed by one search; a place that is gone is never offered.

Searches with no option are recorded anonymously as unmet demand (coarse area, household shape,
need, requester kind, top exclusion reasons), once per requester-chosen episode token.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from capacity.areas import areas
from capacity.db import Database
from capacity.models import Facility, Pool, UnmetDemand
from capacity.settings import Settings
from placement.household import SearchRequest, validate_areas
from placement.matcher import MatcherIndex, Option, SearchResult, match
from placement.policy import policy_from_json
from placement.snapshot import ADMITTING_STATUSES, FacilitySnapshot, PoolSnapshot

RECHECK_MARGIN = 5


class SnapshotCache:
    """A per-process matcher index over the whole registry, refreshed in the background."""

    def __init__(self, db: Database, settings: Settings, *, max_age: float = 2.0) -> None:
        self.db = db
        self.settings = settings
        self.max_age = max_age
        self._index: MatcherIndex | None = None
        self._stamp: tuple[object, ...] | None = None
        self._built = 0.0
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        self._seen: dict[int, tuple[object, ...]] = {}  # pool id -> figures in the index

    async def index(self) -> MatcherIndex:
        if self._index is None or self.max_age <= 0:
            async with self._lock:
                if self._index is None or self.max_age <= 0:
                    await self._reload()
        elif time.monotonic() - self._built > self.max_age and (
            self._refresh is None or self._refresh.done()
        ):
            self._refresh = asyncio.create_task(self._background())
        assert self._index is not None
        return self._index

    async def _background(self) -> None:
        async with self._lock:
            try:
                await self._reload()
            except Exception:  # keep serving the current index; the next search retries
                self._built = time.monotonic() - self.max_age / 2

    async def _reload(self) -> None:
        async with self.db.read() as s:
            stamp = tuple(
                (
                    await s.execute(
                        select(
                            func.count(Facility.id),
                            func.max(Facility.updated_at),
                            select(func.count(Pool.id)).scalar_subquery(),
                            select(func.max(Pool.created_at)).scalar_subquery(),
                        )
                    )
                ).one()
            )
            if self._index is not None and stamp == self._stamp:
                rows = (
                    await s.execute(
                        select(
                            Pool.id,
                            Pool.units_total,
                            Pool.units_occupied,
                            Pool.units_held,
                            Pool.units_blocked,
                            Pool.reported_at,
                            Pool.confirmed_at,
                        )
                    )
                ).all()
                # Only pools whose figures moved since the last refresh (a handful, even at
                # 10,000 facilities): touching all of them stalled the event loop.
                for r in rows:
                    figures = tuple(r)
                    if self._seen.get(r.id) == figures:
                        continue
                    self._seen[r.id] = figures
                    self._index.update_pool(
                        r.id,
                        units_total=r.units_total,
                        units_occupied=r.units_occupied,
                        units_held=r.units_held,
                        units_blocked=r.units_blocked,
                        reported_at=r.reported_at,
                        confirmed_at=r.confirmed_at,
                    )
                self._built = time.monotonic()
                return
            facilities = await load_snapshots(s, self.settings)
        self._index = MatcherIndex(facilities)
        self._seen = {
            p.id: (
                p.id,
                p.units_total,
                p.units_occupied,
                p.units_held,
                p.units_blocked,
                p.reported_at,
                p.confirmed_at,
            )
            for f in facilities
            for p in f.pools
        }
        self._stamp = stamp
        self._built = time.monotonic()


async def load_snapshots(
    s: object, settings: Settings, facility_ids: Collection[int] | None = None
) -> list[FacilitySnapshot]:
    """Every facility (or those given) with its pools, as the matcher sees them (no address
    ever)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(s, AsyncSession)
    pool_query = select(
        Pool.id,
        Pool.ref,
        Pool.facility_id,
        Pool.unit_kind,
        Pool.places_per_unit,
        Pool.units_total,
        Pool.units_occupied,
        Pool.units_held,
        Pool.units_blocked,
        Pool.reported_at,
        Pool.confirmed_at,
    ).order_by(Pool.id)
    facility_query = select(
        Facility.id,
        Facility.ref,
        Facility.alias,
        Facility.kind,
        Facility.operator_id,
        Facility.municipality_nis,
        Facility.policy,
        Facility.status,
        Facility.status_until,
        Facility.valid_from,
        Facility.planned_end,
        Facility.secret_address,
        Facility.intake_phone,
        Facility.handover_protocol,
        Facility.stale_after_minutes,
    ).order_by(Facility.id)
    if facility_ids is not None:
        pool_query = pool_query.where(Pool.facility_id.in_(list(facility_ids)))
        facility_query = facility_query.where(Facility.id.in_(list(facility_ids)))
    pools: dict[int, list[PoolSnapshot]] = {}
    for p in (await s.execute(pool_query)).all():
        pools.setdefault(p.facility_id, []).append(
            PoolSnapshot(
                id=p.id,
                ref=p.ref,
                unit_kind=p.unit_kind,
                places_per_unit=p.places_per_unit,
                units_total=p.units_total,
                units_occupied=p.units_occupied,
                units_held=p.units_held,
                units_blocked=p.units_blocked,
                reported_at=p.reported_at,
                confirmed_at=p.confirmed_at,
            )
        )
    out = []
    for f in (await s.execute(facility_query)).all():
        out.append(
            FacilitySnapshot(
                id=f.id,
                ref=f.ref,
                alias=f.alias,
                kind=f.kind,
                operator_id=f.operator_id,
                municipality_nis=f.municipality_nis,
                policy=policy_from_json(f.policy),
                status=f.status,
                status_until=f.status_until,
                valid_from=f.valid_from,
                planned_end=f.planned_end,
                secret_address=f.secret_address,
                intake_phone=f.intake_phone,
                handover_protocol=f.handover_protocol,
                stale_after_minutes=f.stale_after_minutes
                or settings.stale_minutes.get(f.kind, 12 * 60),
                pools=pools.get(f.id, []),
            )
        )
    return out


@dataclass(frozen=True)
class Searched:
    search_id: str
    result: SearchResult
    unmet_recorded: bool


def household_shape(adults: int, children: int) -> str:
    """A coarse bucket (no exact composition is kept): '1A', '2A+1C', '1A+3C+'."""
    a = f"{min(adults, 2)}A" + ("+" if adults > 2 else "")
    if children == 0:
        return a
    return f"{a}+{min(children, 3)}C" + ("+" if children > 3 else "")


async def _recheck(db: Database, options: list[Option], limit: int) -> list[Option]:
    """Keep only options whose pool is, right now, free enough at an admitting facility."""
    if not options:
        return options
    refs = [o.pool_ref for o in options]
    async with db.read() as s:
        live = {
            r.ref: r
            for r in (
                await s.execute(
                    select(
                        Pool.ref,
                        Pool.units_total - Pool.units_occupied - Pool.units_held,
                        Facility.status,
                    )
                    .join(Facility, Facility.id == Pool.facility_id)
                    .where(Pool.ref.in_(refs))
                )
            ).all()
        }
    kept = []
    for o in options:
        row = live.get(o.pool_ref)
        if row is None or row[2] not in ADMITTING_STATUSES:
            continue
        free = max(0, int(row[1]))
        if free < o.units_needed:
            continue
        o.free_units = free
        kept.append(o)
    return kept[:limit]


async def search(
    db: Database,
    cache: SnapshotCache,
    request: SearchRequest,
    *,
    requester_kind: str,
    operator_id: int | None,
    now: datetime,
) -> Searched:
    validate_areas(request)  # unknown NIS codes: a clear 422 with the field
    index = await cache.index()
    wider = msgspec.structs.replace(request, limit=min(100, request.limit + RECHECK_MARGIN))
    result = match(wider, index, requester_kind=requester_kind, now=now)  # type: ignore[arg-type]
    result.options = await _recheck(db, result.options, request.limit)
    recorded = False
    if not result.options:
        recorded = await record_unmet(
            db, request, result, requester_kind=requester_kind, operator_id=operator_id, now=now
        )
    return Searched(secrets.token_hex(8), result, recorded)


async def record_unmet(
    db: Database,
    request: SearchRequest,
    result: SearchResult,
    *,
    requester_kind: str,
    operator_id: int | None,
    now: datetime,
) -> bool:
    """Keep an anonymous trace of demand that found no place; once per episode token."""
    hh = request.household
    arr = prov = reg = None
    if request.preferred_municipality_nis:
        m = areas().municipality(request.preferred_municipality_nis)
        arr, prov, reg = m.arrondissement_nis, m.province_nis, m.region_nis
    top = [code for code, _n in Counter(result.excluded).most_common(3)]
    episode = None
    if request.episode_token:
        episode = hashlib.sha256(f"{operator_id}:{request.episode_token}".encode()).hexdigest()
    try:
        async with db.write() as s:
            await s.execute(
                insert(UnmetDemand).values(
                    at=now,
                    requester_kind=requester_kind,
                    need=request.need,
                    arrondissement_nis=arr,
                    province_nis=prov,
                    region_nis=reg,
                    household_shape=household_shape(len(hh.adults), len(hh.children)),
                    segments={
                        "undocumented": hh.residence_status == "undocumented",
                        "withChildren": bool(hh.children),
                        "noIncome": hh.income == "no",
                    },
                    top_reasons=top,
                    episode_hash=episode,
                )
            )
    except IntegrityError:
        return False  # the same episode was already counted
    return True
