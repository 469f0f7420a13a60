"""The shell around the pure matcher: live data in, options out, unmet demand recorded.

Each API process keeps a ``MatcherIndex`` built from the database. It is refreshed in the
background when older than ``max_age`` seconds (single flight: searches keep using the current
index meanwhile), so a search never waits for a reload. A refresh applies only the pools whose
row changed; a new facility or pool, an edited facility, or a pool that changed kind, places
per unit or facility rebuilds the index.

Because the cached counts can be a moment old, the best candidates are **re-checked against
the live rows** (one statement) before any option is built: a pool that is no longer free
enough, or at a facility that stopped admitting, is dropped, and the free counts shown are the
live ones. A place freed in the last ``max_age`` seconds may be missed by one search; a place
that is gone is never offered.

Once ``start()`` has run (the app's lifespan does it, ``aclose()`` at the end), the cache keeps
two connections checked out of the read pool and uses their driver directly: one for the
re-checks (no checkout, ping, BEGIN and COMMIT per search: those cost more than the rest of
the search), one for the refresh, which keeps the pool rows it has seen in a temporary table
of that session so that the database itself returns only the rows that changed (a refresh
costs the process almost nothing, even at 10,000 facilities). If a held connection fails, or
before ``start()``, the same work goes through ordinary pool connections.

Searches with no option are recorded anonymously as unmet demand (coarse area, household shape,
need, requester kind, top exclusion reasons), once per requester-chosen episode token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from capacity import health_rules, registry
from capacity.areas import areas
from capacity.db import Database, RawTx
from capacity.episode import EpisodeKey, episode_hash
from capacity.models import PLACEMENT_KINDS, Facility, Pool, UnmetDemand
from capacity.settings import Settings
from placement.household import SearchRequest, validate_areas
from placement.matcher import MatcherIndex, SearchResult, area_notices
from placement.policy import policy_from_json
from placement.rules import Warning
from placement.snapshot import ADMITTING_STATUSES, FacilitySnapshot, PoolSnapshot

RECHECK_MARGIN = 5
_RETRY_HELD_AFTER = 1.0  # seconds before taking a held connection again after a failure

_ADMITTING_SQL = ", ".join(f"'{st}'" for st in sorted(ADMITTING_STATUSES))
_LIVE_SELECT = (
    "SELECT p.ref, p.units_total - p.units_occupied - p.units_held FROM pools p "
    "JOIN facilities f ON f.id = p.facility_id "
    f"WHERE f.status IN ({_ADMITTING_SQL}) AND p.ref "
)
# One statement whatever the number of refs (prepared once per connection).
_LIVE_PG = _LIVE_SELECT + "= ANY($1::text[])"
_LIVE_SQLITE = _LIVE_SELECT + "IN (SELECT value FROM json_each(?))"

_STAMP_SQL = (
    "SELECT (SELECT count(*) FROM facilities), (SELECT max(updated_at) FROM facilities), "
    "(SELECT count(*) FROM pools), (SELECT max(created_at) FROM pools), "
    "(SELECT count(*) FROM area_health_conditions), "
    "(SELECT max(updated_at) FROM area_health_conditions)"
)
# A pool row as the refresh compares it: the figures the index holds, and the static columns
# (kind, places, facility) so that an edit of those is noticed too (it rebuilds the index).
_ROW_COLS = (
    "id",
    "units_total",
    "units_occupied",
    "units_held",
    "units_blocked",
    "reported_at",
    "confirmed_at",
    "unit_kind",
    "places_per_unit",
    "facility_id",
)
_COLS = ", ".join(_ROW_COLS)
_P_COLS = ", ".join(f"p.{c}" for c in _ROW_COLS)
_ALL_ROWS = f"SELECT {_COLS} FROM pools ORDER BY id"
_SEEN = "abri_seen_pools"  # temporary table of the refresh connection's session
_SEEN_SETUP_SQLITE = (
    f"DROP TABLE IF EXISTS temp.{_SEEN}",
    f"CREATE TEMP TABLE {_SEEN} (id INTEGER PRIMARY KEY, " + ", ".join(_ROW_COLS[1:]) + ")",
)
_SEEN_SETUP_PG = (
    f"DROP TABLE IF EXISTS pg_temp.{_SEEN}",
    # fillfactor: room on each page for in-place (HOT) updates, pruned without VACUUM
    f"CREATE TEMP TABLE {_SEEN} WITH (fillfactor = 50) AS SELECT {_COLS} FROM pools WITH NO DATA",
    f"ALTER TABLE {_SEEN} ADD PRIMARY KEY (id)",
)
_CHANGED_SQLITE = (
    f"SELECT {_P_COLS} FROM pools p LEFT JOIN temp.{_SEEN} s ON s.id = p.id WHERE s.id IS NULL OR "
    + " OR ".join(f"p.{c} IS NOT s.{c}" for c in _ROW_COLS[1:])
)
_CHANGED_PG = (
    f"SELECT {_P_COLS} FROM pools p LEFT JOIN {_SEEN} s ON s.id = p.id WHERE s.id IS NULL OR "
    f"({_P_COLS.replace('p.id, ', '')}) IS DISTINCT FROM "
    f"({', '.join(f's.{c}' for c in _ROW_COLS[1:])})"
)
# Remember exactly the rows just read (same transaction, same snapshot).
_REMEMBER_SQLITE = (
    f"INSERT OR REPLACE INTO temp.{_SEEN} SELECT {_COLS} FROM pools "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_REMEMBER_PG = (
    f"INSERT INTO {_SEEN} SELECT {_COLS} FROM pools WHERE id = ANY($1::bigint[]) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in _ROW_COLS[1:])
)
_VACUUM_EVERY = 500  # refreshes (PostgreSQL: tidy the temporary table now and then)


class _Paced:
    """After a failure, not ``usable`` for a moment (callers fall back to the pool)."""

    _failed_at = -math.inf

    @property
    def usable(self) -> bool:
        return time.monotonic() - self._failed_at > _RETRY_HELD_AFTER


class _Held(_Paced):
    """One read connection kept checked out for one job, used through its driver (asyncpg or
    aiosqlite) one operation at a time. On an error the caller calls ``fail``: the connection
    is dropped, and ``usable`` stays false for a moment (the caller falls back to the pool)."""

    def __init__(
        self,
        db: Database,
        setup: Callable[[Any], Awaitable[None]] | None = None,
        teardown: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.setup = setup
        self.teardown = teardown  # before the connection goes back to the pool
        self.lock = asyncio.Lock()
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    @property
    def fresh(self) -> bool:
        """No connection yet: the next ``driver()`` takes one (and runs ``setup``)."""
        return self._driver is None

    async def driver(self) -> Any:
        if self._driver is None:
            conn = await self.db.read_engine.connect()
            try:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                if self.setup is not None:
                    await self.setup(driver)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.invalidate()
                await conn.close()
                raise
            self._conn, self._driver = conn, driver
        return self._driver

    async def fail(self) -> None:
        self._failed_at = time.monotonic()
        await self.release(invalidate=True)

    async def release(self, *, invalidate: bool = False) -> None:
        conn, driver, self._conn, self._driver = self._conn, self._driver, None, None
        if conn is None:
            return
        if not invalidate and self.teardown is not None:
            try:
                await self.teardown(driver)
            except Exception:
                invalidate = True
        with contextlib.suppress(Exception):
            if invalidate:
                await conn.invalidate()
            await conn.close()


class _SqliteReader(_Paced):
    """SQLite only: the re-check on a plain ``sqlite3`` connection, in the event loop's own
    thread. The re-check is one indexed look-up of a few dozen rows (tens of microseconds);
    through aiosqlite it costs a hop to the connection's thread and back, which costs more
    than the query and, under load, waits for the GIL. WAL readers do not wait for writers;
    should the database be busy all the same (no busy timeout: never block the loop), the
    caller falls back to the pool. ``query_only``: this connection cannot write."""

    def __init__(self, path: str) -> None:
        self.uri = Path(path).resolve().as_uri() + "?mode=rw"  # never creates a file
        self._conn: sqlite3.Connection | None = None

    @property
    def fresh(self) -> bool:
        return self._conn is None

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._conn is None:
            conn = sqlite3.connect(
                self.uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        return self._conn.execute(sql, params).fetchall()

    def fail(self) -> None:
        self._failed_at = time.monotonic()
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


async def _fetch(db: Database, driver: Any, sqlite_sql: str, pg_sql: str, *args: Any) -> list[Any]:
    """Rows of one statement on a raw driver connection (aiosqlite: one thread hop)."""
    if db.sqlite:
        params = tuple(json.dumps(a) if isinstance(a, list) else a for a in args)
        return list(await driver.execute_fetchall(sqlite_sql, params))
    return [tuple(r) for r in await driver.fetch(pg_sql, *args)]


#: how long a search waits for the refresh of an index older than twice its ``max_age``
STALE_WAIT_SECONDS = 2.0


class SnapshotCache:
    """A per-process matcher index over the whole registry, refreshed in the background,
    and the live re-check of the places a search is about to offer."""

    def __init__(self, db: Database, settings: Settings, *, max_age: float = 2.0) -> None:
        self.db = db
        self.settings = settings
        self.max_age = max_age
        self._index: MatcherIndex | None = None
        self._stamp: tuple[object, ...] | None = None
        self._built = 0.0
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        # Without the held refresh connection: the raw pool rows as of the last refresh
        # (None: compare every row with the index next time).
        self._rows: list[tuple[Any, ...]] | None = None
        # facilities of kinds the matcher never offers (R40): their pools' changes are skipped
        # (else each would look unknown to the index and rebuild it at every refresh)
        self._excluded: frozenset[int] = frozenset()
        self._started = False
        self._live = _Held(db)  # PostgreSQL
        path = make_url(db.url).database if db.sqlite else None
        self._reader = _SqliteReader(path) if path and path != ":memory:" else None
        self._sync = _Held(db, self._setup_seen, self._drop_seen)
        self._refreshes = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """From now on, hold the re-check and refresh connections (taken at first use)."""
        self._started = True

    async def aclose(self) -> None:
        """Give the held connections back (after a refresh under way, at most 5 s)."""
        self._started = False
        if self._refresh is not None and not self._refresh.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._refresh, 5)  # cancelled if it hangs
        for held in (self._live, self._sync):
            async with held.lock:
                await held.release()
        if self._reader is not None:
            self._reader.close()

    # ------------------------------------------------------------------ live counts

    async def live_free(self, refs: Sequence[str]) -> dict[str, int]:
        """Free units right now of the pools ``refs`` that are at an admitting facility
        (a pool missing from the answer must not be offered)."""
        if not refs:
            return {}
        refs = list(refs)
        reader = self._reader
        if self._started and reader is not None and reader.usable:
            try:
                rows = reader.rows(_LIVE_SQLITE, (json.dumps(refs),))
            except sqlite3.Error:
                reader.fail()  # busy, or the file is gone...: through the pool below
            else:
                return {r[0]: max(0, int(r[1])) for r in rows}
        elif self._started and not self.db.sqlite and self._live.usable:
            async with self._live.lock:
                try:
                    rows = await _fetch(
                        self.db, await self._live.driver(), _LIVE_SQLITE, _LIVE_PG, refs
                    )
                except Exception:
                    # Lost connection, server restart...: drop it, answer through the pool
                    # below, hold a new one a moment later.
                    await self._live.fail()
                else:
                    return {r[0]: max(0, int(r[1])) for r in rows}
        async with self.db.read_engine.connect() as conn:
            # the driver in autocommit: one statement, no BEGIN and COMMIT round trips
            driver = (await conn.get_raw_connection()).driver_connection
            rows = await _fetch(self.db, driver, _LIVE_SQLITE, _LIVE_PG, refs)
        return {r[0]: max(0, int(r[1])) for r in rows}

    # ------------------------------------------------------------------ the index

    async def index(self) -> MatcherIndex:
        """The index, refreshed in the background once older than ``max_age``. Older than
        twice that (no search for a while: at night, in one of several API processes), the
        search waits for the refresh, at most ``STALE_WAIT_SECONDS``: the live re-check drops
        places that filled up, but only a refresh finds those freed since."""
        if self._index is None or self.max_age <= 0:
            async with self._lock:
                if self._index is None or self.max_age <= 0:
                    await self._reload()
        else:
            age = time.monotonic() - self._built
            if age > self.max_age:
                if self._refresh is None or self._refresh.done():
                    self._refresh = asyncio.create_task(self._background())
                if age > 2 * self.max_age:
                    with contextlib.suppress(TimeoutError):  # then the index as it is
                        await asyncio.wait_for(asyncio.shield(self._refresh), STALE_WAIT_SECONDS)
        assert self._index is not None
        return self._index

    @property
    def built(self) -> float:
        """When the index was last built or refreshed (``time.monotonic``)."""
        return self._built

    async def refreshed(self, built: float) -> MatcherIndex:
        """The index brought up to date, unless it already was since ``built`` (several
        searches that met the same stale count refresh it once)."""
        async with self._lock:
            if self._index is None or self._built <= built:
                try:
                    await self._reload()
                except Exception:
                    if self._index is None:
                        raise
                    # the search goes on with the index as it is (the live counts still
                    # drop what is gone); the next search retries
        assert self._index is not None
        return self._index

    async def _background(self) -> None:
        async with self._lock:
            try:
                await self._reload()
            except Exception:  # keep serving the current index; the next search retries
                self._built = time.monotonic() - self.max_age / 2

    async def _reload(self) -> None:
        if self._index is not None:
            if self._started and self._sync.usable:
                async with self._sync.lock:
                    try:
                        done = await self._refresh_held()
                    except Exception:
                        await self._sync.fail()
                        done = False
                if done:
                    self._built = time.monotonic()
                    return
            elif await self._refresh_pooled():
                self._built = time.monotonic()
                return
        async with self.db.read() as s:
            stamp = tuple((await s.execute(text(_STAMP_SQL))).one())
            facilities = await load_snapshots(s, self.settings)
            excluded = await s.scalars(
                select(Facility.id).where(Facility.kind.not_in(sorted(PLACEMENT_KINDS)))
            )
            self._excluded = frozenset(excluded.all())
        self._index = MatcherIndex(facilities)
        self._stamp = stamp
        self._rows = None  # the next refresh compares every row with the new index
        async with self._sync.lock:
            if not self._sync.fresh:
                try:  # empty: the next refresh compares every row with the new index
                    await self._run(await self._sync.driver(), f"DELETE FROM {_SEEN}")
                except Exception:
                    await self._sync.fail()
        self._built = time.monotonic()

    async def _setup_seen(self, driver: Any) -> None:
        for sql in _SEEN_SETUP_SQLITE if self.db.sqlite else _SEEN_SETUP_PG:
            await self._run(driver, sql)

    async def _drop_seen(self, driver: Any) -> None:
        await self._run(driver, _SEEN_SETUP_SQLITE[0] if self.db.sqlite else _SEEN_SETUP_PG[0])

    async def _run(self, driver: Any, sql: str) -> None:
        if self.db.sqlite:
            await driver.execute_fetchall(sql, ())
        else:
            await driver.execute(sql)

    async def _refresh_held(self) -> bool:
        """Refresh through the held connection: the database compares the pools with the rows
        this session saw last (a temporary table) and returns only those that changed. False:
        the index must be rebuilt."""
        assert self._index is not None
        if self._sync.fresh:
            self._rows = None  # (the pooled path's memory is of no use from now on)
        driver = await self._sync.driver()
        if self.db.sqlite:
            await driver.execute_fetchall("BEGIN", ())
            try:
                stamp = tuple((await driver.execute_fetchall(_STAMP_SQL, ()))[0])
                changed = list(await driver.execute_fetchall(_CHANGED_SQLITE, ()))
                if changed and stamp == self._stamp:
                    await driver.execute_fetchall(
                        _REMEMBER_SQLITE, (json.dumps([r[0] for r in changed]),)
                    )
            finally:
                await driver.execute_fetchall("COMMIT", ())
        else:
            async with driver.transaction(isolation="repeatable_read"):
                stamp = tuple(await driver.fetchrow(_STAMP_SQL))
                changed = [tuple(r) for r in await driver.fetch(_CHANGED_PG)]
                if changed and stamp == self._stamp:
                    await driver.execute(_REMEMBER_PG, [r[0] for r in changed])
            self._refreshes += 1
            if self._refreshes % _VACUUM_EVERY == 0:
                await driver.execute(f"VACUUM {_SEEN}")
        if stamp != self._stamp:
            return False
        return self._apply(self._index, changed, self._excluded)

    async def _refresh_pooled(self) -> bool:
        """Refresh through a pool connection: read every pool row (raw driver values, no ORM)
        and apply those that differ from the last refresh. False: rebuild the index."""
        assert self._index is not None
        async with self.db.read_engine.connect() as conn:
            stamp = tuple((await conn.execute(text(_STAMP_SQL))).one())
            if stamp != self._stamp:
                return False
            driver = (await conn.get_raw_connection()).driver_connection
            rows = await _fetch(self.db, driver, _ALL_ROWS, _ALL_ROWS)
        if self._excluded:
            rows = [r for r in rows if r[9] not in self._excluded]
        prev, self._rows = self._rows, None
        if prev is None:
            if len(rows) != sum(len(f.pools) for f in self._index.facilities):
                return False
            changed = rows
        elif len(rows) != len(prev):
            return False
        elif rows == prev:
            self._rows = rows
            return True
        else:
            changed = [r for r, p in zip(rows, prev, strict=True) if r != p]
        if not self._apply(self._index, changed, self._excluded):
            return False
        self._rows = rows
        return True

    @staticmethod
    def _apply(
        index: MatcherIndex, changed: Sequence[Sequence[Any]], excluded: frozenset[int]
    ) -> bool:
        """Apply pool rows (``_ROW_COLS``) whose figures differ from the index's; False if the
        index must be rebuilt (an unknown pool, or one that changed kind, places or
        facility). Pools of ``excluded`` facilities (never offered) are skipped."""
        for r in changed:
            if r[9] in excluded:
                continue
            found = index.pool(r[0])
            if found is None:
                return False
            fac, pool = found
            if (pool.unit_kind, pool.places_per_unit, fac.id) != (r[7], r[8], r[9]):
                return False
            figures = (r[1], r[2], r[3], r[4], RawTx.read_ts(r[5]), RawTx.read_ts(r[6]))
            if figures != (
                pool.units_total,
                pool.units_occupied,
                pool.units_held,
                pool.units_blocked,
                pool.reported_at,
                pool.confirmed_at,
            ):
                index.update_pool(
                    r[0],
                    units_total=r[1],
                    units_occupied=r[2],
                    units_held=r[3],
                    units_blocked=r[4],
                    reported_at=figures[4],
                    confirmed_at=figures[5],
                )
        return True


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
        Facility.intake_phone_24h,
        Facility.handover_protocol,
        Facility.stale_after_minutes,
    ).where(Facility.kind.in_(sorted(PLACEMENT_KINDS)))  # never another kind of place (R40)
    facility_query = facility_query.order_by(Facility.id)
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
    area_rules = await health_rules.by_area(s)
    for f in (await s.execute(facility_query)).all():
        policy = policy_from_json(f.policy)
        extra = health_rules.conditions_for(f.municipality_nis, area_rules, secret=f.secret_address)
        if not extra <= set(policy.health_conditions):  # switched on for its area
            merged = sorted({*policy.health_conditions, *extra})
            policy = msgspec.structs.replace(policy, health_conditions=merged)
        out.append(
            FacilitySnapshot(
                id=f.id,
                ref=f.ref,
                alias=f.alias,
                kind=f.kind,
                operator_id=f.operator_id,
                municipality_nis=f.municipality_nis,
                policy=policy,
                status=f.status,
                status_until=f.status_until,
                valid_from=f.valid_from,
                planned_end=f.planned_end,
                secret_address=f.secret_address,
                intake_phone=f.intake_phone,
                intake_phone_24h=f.intake_phone_24h,
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
    notices: list[Warning]  # about the search itself (``matcher.area_notices``)


def household_shape(adults: int, children: int) -> str:
    """A coarse bucket (no exact composition is kept): '1A', '2A+1C', '1A+3C+'."""
    a = f"{min(adults, 2)}A" + ("+" if adults > 2 else "")
    if children == 0:
        return a
    return f"{a}+{min(children, 3)}C" + ("+" if children > 3 else "")


async def search(
    db: Database,
    cache: SnapshotCache,
    request: SearchRequest,
    *,
    requester_kind: str,
    operator_id: int | None,
    now: datetime,
    episode_key: EpisodeKey | None = None,
) -> Searched:
    zones = validate_areas(request)  # unknown NIS codes: a clear 422, before any index build
    built = cache.built
    index = await cache.index()
    for attempt in range(2):
        ranking = index.rank(
            request,
            requester_kind=requester_kind,  # type: ignore[arg-type]
            now=now,
            candidates=min(100, request.limit + RECHECK_MARGIN),
            areas=zones,
        )
        live = await cache.live_free(ranking.pool_refs)
        # The index offers one pool per facility, the one it ranks best by the counts it had.
        # A pool filled since then is dropped by the live counts, and with it the facility,
        # even if another of its pools would take the household: the index is brought up to
        # date (once) and the search ranked again, so that pool is considered.
        if attempt or not any(live.get(c.pool.ref, 0) < c.units_needed for c in ranking.candidates):
            break
        index = await cache.refreshed(built)
    result = ranking.result(live)
    recorded = False
    if not result.options:
        recorded = await record_unmet(
            db,
            request,
            result,
            requester_kind=requester_kind,
            operator_id=operator_id,
            now=now,
            episode_key=episode_key,
        )
    return Searched(secrets.token_hex(8), result, recorded, area_notices(zones))


async def record_unmet(
    db: Database,
    request: SearchRequest,
    result: SearchResult,
    *,
    requester_kind: str,
    operator_id: int | None,
    now: datetime,
    episode_key: EpisodeKey | None = None,
) -> bool:
    """Keep an anonymous trace of demand that found no place; once per episode token."""
    hh = request.household
    arr = prov = reg = None
    # the household's area: the preferred one, else the requester's home area (a police zone
    # searching without one), else unknown (R32)
    where = request.preferred_municipality_nis or await registry.operator_home(db, operator_id)
    if where:
        m = areas().municipality(where)
        arr, prov, reg = m.arrondissement_nis, m.province_nis, m.region_nis
    top = [code for code, _n in Counter(result.excluded).most_common(3)]
    episode = None
    if request.episode_token:
        # keyed, as the holds': a PV or case number must not be found again in a dump
        episode = episode_hash(episode_key, operator_id, request.episode_token)
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
