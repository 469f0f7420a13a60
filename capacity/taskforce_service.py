"""Task-force queries: live saturation, its series, unmet demand, exports, redirection planner.

The shell around the pure ``capacity.saturation``: it reads facilities and pools, hands plain
facts to the engine and filters the suppressed cube. Everything leaves in places (persons).
The task force never receives an address, nor an alias or per-facility figure of a secret-
address facility. Public-address facilities (requisitioned hotels, CPAS places) may appear by
alias (never by address) in the redirection planner and the HSDS feed; because of that, the
suppression counts them as known to the reader, so they never shield a secret one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, get_args

from sqlalchemy import DateTime, select, text, type_coerce

from capacity.areas import areas, local_name
from capacity.availability import freshness, stale_threshold
from capacity.clock import BRUSSELS, brussels_date
from capacity.db import Database
from capacity.errors import InvalidInput
from capacity.models import (
    HOLD_STATES,
    PLACEMENT_KINDS,
    Facility,
    Hold,
    Pool,
    SaturationRun,
    SaturationSnapshot,
    UnmetDemand,
)
from capacity.saturation import (
    ALL,
    COUNTRY,
    FIG,
    FIGURES,
    LEVELS,
    Cell,
    CellKey,
    Cube,
    FacilityFacts,
    Item,
    PoolFigures,
    audit_cells,
    build_cube,
    coverage_of,
    facility_figures,
    published_secret_cells,
    saturation_cube,
    segments_of,
    withheld_beside,
)
from capacity.settings import Settings
from placement.policy import AccessPolicy, NeedCategory, RequesterKind, policy_from_json
from placement.snapshot import ADMITTING_STATUSES

UNKNOWN_AREA = "unknown"


def admitting(fac: Facility, now: datetime) -> bool:
    if fac.status not in ADMITTING_STATUSES:
        return False
    if fac.valid_from is not None and fac.valid_from > now:
        return False
    return not (fac.planned_end is not None and fac.planned_end <= now)


def area_path(municipality_nis: str) -> tuple[str, str, str, str]:
    m = areas().municipality(municipality_nis)
    return (COUNTRY, m.region_nis, m.province_nis, m.arrondissement_nis)


@dataclass
class Loaded:
    facts: list[FacilityFacts]
    facilities: dict[int, Facility]
    pools: dict[int, list[Pool]] = field(default_factory=dict)


async def load(db: Database, settings: Settings, now: datetime) -> Loaded:
    async with db.read() as s:
        facs = list(
            (
                await s.scalars(
                    select(Facility)
                    .where(Facility.kind.in_(sorted(PLACEMENT_KINDS)))  # R40
                    .order_by(Facility.id)
                )
            ).all()
        )
        pools = list((await s.scalars(select(Pool).order_by(Pool.id))).all())
    by_fac: dict[int, list[Pool]] = defaultdict(list)
    for p in pools:
        by_fac[p.facility_id].append(p)
    facts = []
    for f in facs:
        threshold = stale_threshold(f, settings.stale_minutes)
        figs = tuple(
            PoolFigures(
                places_per_unit=p.places_per_unit,
                units_total=p.units_total,
                units_occupied=p.units_occupied,
                units_held=p.units_held,
                units_blocked=p.units_blocked,
                surge_24h=p.surge_24h,
                surge_72h=p.surge_72h,
                fresh=not freshness(p, threshold_minutes=threshold, now=now).stale,
            )
            for p in by_fac.get(f.id, [])
        )
        facts.append(
            FacilityFacts(
                id=f.id,
                kind=f.kind,
                path=area_path(f.municipality_nis),
                segments=segments_of(policy_from_json(f.policy)),
                secret=bool(f.secret_address),
                admitting=admitting(f, now),
                pools=figs,
            )
        )
    return Loaded(facts, {f.id: f for f in facs}, dict(by_fac))


async def current_cube(db: Database, settings: Settings, now: datetime) -> Cube:
    loaded = await load(db, settings, now)
    # In a worker thread, like every cube built for a request: the exact audit may take
    # seconds in a large world (its decompositions release the GIL), and searches and holds
    # must not wait behind a task-force page.
    return await asyncio.to_thread(saturation_cube, loaded.facts, k=settings.suppression_k)


# --------------------------------------------------------------------------- reading cells


def areas_at(level: str) -> list[str]:
    if level == "country":
        return [COUNTRY]
    idx = areas()
    codes = sorted(a.nis for a in idx.areas.values() if a.level == level)
    if level == "province":
        codes = sorted([*codes, "04000"])
    return codes


@cache
def parent_of(level: str, nis: str) -> str | None:
    """The area a suppressed cell is merged into, for the reader: its nearest enclosing area
    with more in it than itself. Brussels-Capital is an arrondissement, the "province" of the
    maps and a region, all the same 19 municipalities, and Brabant wallon has one
    arrondissement (Nivelles): pointing a reader from a suppressed cell to an area of the same
    places would point to a cell suppressed just the same."""
    if level == "country":
        return None
    idx = areas()
    own = set(idx.children_of(nis))
    chain = {"arrondissement": 3, "province": 2, "region": 1}[level]
    for m in idx.municipalities.values():
        if m.nis in own:
            for parent in idx.enclosing(m.nis)[chain - 1 :: -1]:
                if parent == COUNTRY or set(idx.children_of(parent)) != own:
                    return parent
    return None


@dataclass
class CellView:
    level: str
    nis: str
    kind: str
    segment: str
    suppressed: bool
    merged_into: str | None
    values: dict[str, int] | None  # None when suppressed
    facilities: int | None


def cell_view(cube: Cube, level: str, nis: str, kind: str, segment: str) -> CellView:
    c: Cell | None = cube.get((level, nis, kind, segment))
    if c is None or c.items == 0:
        return CellView(level, nis, kind, segment, False, None, dict.fromkeys(FIGURES, 0), 0)
    if c.suppressed:
        return CellView(level, nis, kind, segment, True, parent_of(level, nis), None, None)
    return CellView(
        level, nis, kind, segment, False, None, dict(zip(FIGURES, c.values, strict=True)), c.items
    )


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}.", field="level")
    return level


def saturation_cells(
    cube: Cube, *, level: str, kind: str = ALL, segment: str = ALL, nis: str | None = None
) -> list[CellView]:
    check_level(level)
    codes = [nis] if nis else areas_at(level)
    return [cell_view(cube, level, code, kind, segment) for code in codes]


# --------------------------------------------------------------------------- snapshots


SNAPSHOT_COLUMNS = {
    "capacity": "capacity",
    "occupied": "occupied",
    "held": "held",
    "free": "free",
    "fresh": "fresh",
    "stale": "stale",
    "closed": "closed",
    "blocked": "blocked",
    "surge24h": "surge_24h",
    "surge72h": "surge_72h",
}


def snapshot_rows(cube: Cube, at: datetime) -> list[dict[str, Any]]:
    rows = []
    for c in cube.cells.values():
        if c.virtual or c.items == 0:
            continue
        row: dict[str, Any] = {
            "at": at,
            "level": c.level,
            "nis": c.nis,
            "kind": c.category,
            "segment": c.flag,
            "suppressed": c.suppressed,
            "facilities": None if c.suppressed else c.items,
        }
        for name, col in SNAPSHOT_COLUMNS.items():
            row[col] = None if c.suppressed else c.values[FIG[name]]
        rows.append(row)
    return rows


@dataclass(slots=True)
class SeriesPoint:
    at: datetime
    suppressed: bool
    values: dict[str, int] | None
    facilities: int | None


async def series(
    db: Database,
    *,
    level: str,
    kind: str,
    segment: str,
    start: datetime,
    end: datetime,
    nis: str | None = None,
    resolution: str = "auto",
) -> dict[str, list[SeriesPoint]]:
    """Snapshot points per area between ``start`` and ``end`` (inclusive). A run in which an
    area had no facility gives a zero point (every run is listed).

    ``resolution``: ``all`` (every stored run), ``hour`` (the first run of each UTC hour),
    ``day`` (the last run of each Belgian day, as the retention keeps it for years), or
    ``auto``: every run up to 2 days, hourly up to 31 days, daily beyond."""
    check_level(level)
    if nis is not None and nis not in areas_at(level):
        # else every point would read "no facility": an arrondissement asked at province
        # level has no snapshot row of that level, which is not the same as no places
        raise InvalidInput(f"{nis!r} is not an area of level {level}.", field="nis")
    if resolution == "auto":
        span = end - start
        resolution = (
            "all" if span <= timedelta(days=2) else "hour" if span <= timedelta(days=31) else "day"
        )
    if resolution not in ("all", "hour", "day"):
        raise InvalidInput("resolution must be auto, all, hour or day.", field="resolution")
    cols = [getattr(SaturationSnapshot, c) for c in SNAPSHOT_COLUMNS.values()]
    # Instants are read as stored (naive UTC) and made aware once per run below, not once per
    # row (a year of provinces: ~3,000 runs and ~4,000 rows, each a TypeDecorator call).
    q = select(
        SaturationSnapshot.nis,
        type_coerce(SaturationSnapshot.at, DateTime()),
        SaturationSnapshot.suppressed,
        SaturationSnapshot.facilities,
        *cols,
    ).where(
        SaturationSnapshot.level == level,
        SaturationSnapshot.kind == kind,
        SaturationSnapshot.segment == segment,
    )
    if nis:
        q = q.where(SaturationSnapshot.nis == nis)
    async with db.read() as s:
        # Core statements on the session's connection: plain rows, no ORM loading step.
        conn = await s.connection()
        stored: list[datetime] = list(
            (
                await conn.execute(
                    select(type_coerce(SaturationRun.at, DateTime()))
                    .where(SaturationRun.at >= start, SaturationRun.at <= end)
                    .order_by(SaturationRun.at)
                )
            )
            .scalars()
            .all()
        )
        if resolution == "hour":
            seen: set[tuple[int, ...]] = set()
            picked = []
            for at in stored:
                if (key := at.timetuple()[:4]) not in seen:
                    seen.add(key)
                    picked.append(at)
            stored = picked
        elif resolution == "day":
            # The last run of each Belgian day: what the downsampling keeps of a day older
            # than 90 days and what the daily census shows. (The first run of the UTC day,
            # 01:00 or 02:00 in Belgium, showed a recent day as its night and an old one as
            # its evening: at the 90-day seam one evening twice, and years compared unlike.)
            last: dict[date, datetime] = {}
            for at in stored:
                last[brussels_date(at)] = at  # in time order: the day's last stays
            stored = list(last.values())
        runs = [at.replace(tzinfo=UTC) for at in stored]
        if resolution != "all":
            # The picked instants only (the range adds nothing). asyncpg prepares every
            # statement and PostgreSQL switches a prepared statement to a generic plan from
            # its 6th execution on; in that plan the list is made of parameters, so a row the
            # index returns is compared with each of the ~366 instants in turn (a custom plan
            # hashes the list): a year of provinces took 200-300 ms in PostgreSQL instead of
            # ~10 ms. So this transaction plans with the values (one more round trip, ~1 ms of
            # planning).
            q = q.where(SaturationSnapshot.at.in_(runs))
            if not db.sqlite:
                await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        else:
            q = q.where(SaturationSnapshot.at >= start, SaturationSnapshot.at <= end)
        rows = (await conn.execute(q)).all() if runs else []
    found: dict[tuple[str, datetime], Any] = {(r[0], r[1]): r for r in rows}
    zero = dict.fromkeys(SNAPSHOT_COLUMNS, 0)
    names = list(SNAPSHOT_COLUMNS)
    out: dict[str, list[SeriesPoint]] = {}
    for code in [nis] if nis else areas_at(level):
        points = []
        for naive, at in zip(stored, runs, strict=True):
            r = found.get((code, naive))
            if r is None:
                points.append(SeriesPoint(at, False, dict(zero), 0))
            elif r[2]:
                points.append(SeriesPoint(at, True, None, None))
            else:
                points.append(
                    SeriesPoint(at, False, dict(zip(names, r[4:], strict=True)), int(r[3]))
                )
        out[code] = points
    return out


# --------------------------------------------------------------------------- unmet demand

UNMET_BY = ("shape", "reason", "need", "requester")
UNMET_FLAGS = ("undocumented", "withChildren", "noIncome")
PERIODS = ("day", "week", "month")


def period_start(at: datetime, period: str) -> datetime:
    """The start (UTC) of the Belgian day, week (from Monday) or month of ``at``: midnight in
    Brussels, 23:00 or 22:00 UTC the day before, so a search at 00:30 there is that day's."""
    d = brussels_date(at)
    if period == "week":
        d -= timedelta(days=d.weekday())
    elif period == "month":
        d = d.replace(day=1)
    return datetime(d.year, d.month, d.day, tzinfo=BRUSSELS).astimezone(UTC)


@dataclass
class UnmetCell:
    period: datetime
    level: str
    nis: str
    value: str
    segment: str
    suppressed: bool
    count: int | None


def _unmet_value(r: UnmetDemand, by: str) -> str:
    if by == "shape":
        return r.household_shape
    if by == "need":
        return r.need
    if by == "requester":  # police, helpline, cpas...: who met the gap (R33)
        return r.requester_kind
    return r.top_reasons[0] if r.top_reasons else "none"


#: Distinguishable groups of searches the four unmet tables are audited over at most (one
#: decomposition of that size per round: ~0.3 s here); above it, detail is withdrawn first.
UNMET_AUDIT_LIMIT = 1500
#: Audit rounds before detail is withdrawn instead (each round may find only a few groups).
UNMET_AUDIT_ROUNDS = 12


def _joint_unmet_cubes(
    records: Sequence[UnmetDemand], k: int, audit_limit: int = UNMET_AUDIT_LIMIT
) -> dict[str, Cube]:
    """One cube per breakdown (shape, reason, need, requester) of the same searches, with
    their shared cells (every area's total and segment totals) suppressed alike: a total one
    breakdown must hide is hidden in all, else one table would publish what another hides and
    the difference would single out a search. Then the four tables are audited *together*
    (each cube's own audit sees one table; a reader may combine all four): a finding
    suppresses one more cell in its table, and all is rebuilt. Suppressions only grow, so it
    ends."""
    items: dict[str, list[Item]] = {b: [] for b in UNMET_BY}
    for r in records:
        path = (
            COUNTRY,
            r.region_nis or UNKNOWN_AREA,
            r.province_nis or UNKNOWN_AREA,
            r.arrondissement_nis or UNKNOWN_AREA,
        )
        flags = frozenset(f for f in UNMET_FLAGS if (r.segments or {}).get(f))
        for b in UNMET_BY:
            items[b].append(
                Item(
                    key=r.id,
                    path=path,
                    category=_unmet_value(r, b),
                    flags=flags,
                    secret=True,
                    values=(1,),
                )
            )
    # Each table's own suppression (its audit is the joint one below), built once; then
    # suppressions are only added.
    cubes = {
        b: build_cube(items[b], k=k, flags=UNMET_FLAGS, n_values=1, audit=False) for b in UNMET_BY
    }
    forced: set[CellKey] = set()  # shared cells, suppressed in every breakdown
    rounds = 0
    while True:
        shared = {
            key
            for cube in cubes.values()
            for key, c in cube.cells.items()
            if c.category == ALL and c.suppressed and not c.virtual
        }
        if not shared <= forced:
            forced |= shared
            for cube in cubes.values():
                cube.suppress_more(cube.cells[key] for key in shared if key in cube.cells)
            continue
        owner: dict[int, Cube] = {}
        published: list[Cell] = []
        for cube in cubes.values():
            for c in published_secret_cells(cube):
                owner[id(c)] = cube
                published.append(c)
        rounds += 1
        leaks = audit_cells(published, k, audit_limit) if rounds <= UNMET_AUDIT_ROUNDS else None
        if leaks is None:
            # Too much detail to check together (or still leaking after many rounds, at k =
            # 4-5): withdraw the breakdowns' cells (not the area and segment totals, which
            # are few and shared) at the finest level that still has some, and check again.
            if not published:
                return cubes
            rounds = 0  # a fresh budget for what is left
            detail = [c for c in published if c.category != ALL] or published
            finest = max(LEVELS.index(c.level) for c in detail)
            leaks = [c for c in detail if LEVELS.index(c.level) == finest]
        elif not leaks:
            return cubes
        for cube in cubes.values():
            cube.suppress_more(c for c in leaks if owner[id(c)] is cube)


async def unmet_demand(
    db: Database,
    *,
    k: int,
    level: str,
    period: str,
    by: str,
    segment: str,
    start: datetime,
    end: datetime,
) -> list[UnmetCell]:
    """Counts of searches that found no place, per period x area x (shape | main blocking rule
    | need | requester kind), suppressed like saturation (every record counts as a person to
    protect)."""
    found = await unmet_breakdowns(
        db, k=k, level=level, period=period, bys=(by,), segment=segment, start=start, end=end
    )
    return found[by]


async def unmet_breakdowns(
    db: Database,
    *,
    k: int,
    level: str,
    period: str,
    bys: Sequence[str],
    segment: str,
    start: datetime,
    end: datetime,
) -> dict[str, list[UnmetCell]]:
    """``unmet_demand`` for several breakdowns at once (the briefing's), from one read and one
    joint suppression."""
    check_level(level)
    if period not in (*PERIODS, "total"):  # "total": one bucket for the whole window
        raise InvalidInput("period must be day, week or month.", field="period")
    if any(by not in UNMET_BY for by in bys):
        raise InvalidInput("by must be shape, reason, need or requester.", field="by")
    if segment != ALL and segment not in UNMET_FLAGS:
        raise InvalidInput(f"segment must be all or one of {UNMET_FLAGS}.", field="segment")
    async with db.read() as s:
        rows = (
            await s.scalars(
                select(UnmetDemand).where(UnmetDemand.at >= start, UnmetDemand.at < end)
            )
        ).all()
    buckets: dict[datetime, list[Any]] = defaultdict(list)
    for r in rows:
        buckets[start if period == "total" else period_start(r.at, period)].append(r)
    out: dict[str, list[UnmetCell]] = {by: [] for by in bys}
    for p_start in sorted(buckets):
        cubes = await asyncio.to_thread(_joint_unmet_cubes, buckets[p_start], k)
        for by in bys:
            cells = sorted(cubes[by].cells.values(), key=lambda c: (c.nis, c.category))
            out[by].extend(
                UnmetCell(
                    p_start,
                    level,
                    c.nis,
                    c.category,
                    segment,
                    c.suppressed,
                    None if c.suppressed else c.items,
                )
                for c in cells
                if c.level == level and c.flag == segment and not c.virtual
            )
    return out


# --------------------------------------------------------------------------- hold demand

NEEDS: tuple[str, ...] = get_args(NeedCategory)
#: every kind a hold's requester can have: those of the access rules, and administrators
#: (who may use the console)
REQUESTERS: tuple[str, ...] = (*get_args(RequesterKind), "admin")
#: what became of the holds requested in a window (their state now)
OUTCOMES: tuple[str, ...] = HOLD_STATES
DEMAND_FIGURES: tuple[str, ...] = (
    "requested",
    "households",
    *(f"need:{n}" for n in NEEDS),
    *(f"by:{r}" for r in REQUESTERS),
    *OUTCOMES,
)


@dataclass
class DemandCell:
    nis: str
    suppressed: bool
    facilities: int | None  # facilities that received holds (None when suppressed)
    figures: dict[str, int] | None  # DEMAND_FIGURES (None when suppressed)


async def hold_demand(
    db: Database,
    *,
    k: int,
    level: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[DemandCell]:
    """Holds requested in ``[start, end)`` per area of the facility: how many, for how many
    households, for which need, by which kind of requester, and what became of them (as of
    ``now``, default ``end``: a hold past its deadline counts as expired even before the
    sweeper has run). R33, households not clicks: holds that carry the same episode (the
    requester's ``episodeToken``) are one household, counted once, at the facility of its first
    hold in the window (so every level adds up); a hold without one counts as a household.
    One item per facility that received holds, suppressed as saturation is (a cell of 1..k-1
    facilities, or of 1..k-1 secret ones, is not shown, with complementary suppression), so
    no single refuge's intake can be read off."""
    check_level(level)
    async with db.read() as s:
        holds = (
            await s.execute(
                select(
                    Hold.facility_id,
                    Hold.need,
                    Hold.state,
                    Hold.deadline,
                    Hold.requester_kind,
                    Hold.episode_hash,
                )
                .where(Hold.created_at >= start, Hold.created_at < end)
                .order_by(Hold.created_at, Hold.id)
            )
        ).all()
        ids = {h.facility_id for h in holds}
        facs = (
            {
                f.id: f
                for f in (
                    await s.execute(
                        select(
                            Facility.id,
                            Facility.kind,
                            Facility.municipality_nis,
                            Facility.secret_address,
                        ).where(Facility.id.in_(ids), Facility.kind.in_(sorted(PLACEMENT_KINDS)))
                    )
                ).all()
            }
            if ids
            else {}
        )
    at = {name: i for i, name in enumerate(DEMAND_FIGURES)}
    per_fac: dict[int, list[int]] = {}
    episodes: set[str] = set()
    for h in holds:
        if h.facility_id not in facs:  # not a victims' place (R40)
            continue
        vec = per_fac.setdefault(h.facility_id, [0] * len(DEMAND_FIGURES))
        vec[at["requested"]] += 1
        if h.episode_hash is None or h.episode_hash not in episodes:
            vec[at["households"]] += 1
            if h.episode_hash is not None:
                episodes.add(h.episode_hash)
        vec[at.get(f"need:{h.need}", at["need:other"])] += 1
        if f"by:{h.requester_kind}" in at:
            vec[at[f"by:{h.requester_kind}"]] += 1
        state = "expired" if h.state == "held" and h.deadline <= (now or end) else h.state
        if state in at:
            vec[at[state]] += 1
    items = [
        Item(
            key=fid,
            path=area_path(facs[fid].municipality_nis),
            category=facs[fid].kind,
            flags=frozenset(),
            secret=bool(facs[fid].secret_address),
            values=tuple(vec),
        )
        for fid, vec in per_fac.items()
    ]
    cube = await asyncio.to_thread(
        build_cube, items, k=k, flags=(), n_values=len(DEMAND_FIGURES)
    )  # off the event loop, as current_cube
    out = []
    for nis in areas_at(level):
        c = cube.get((level, nis, ALL, ALL))
        if c is None or c.items == 0:
            out.append(DemandCell(nis, False, 0, dict.fromkeys(DEMAND_FIGURES, 0)))
        elif c.suppressed:
            out.append(DemandCell(nis, True, None, None))
        else:
            figs = dict(zip(DEMAND_FIGURES, c.values, strict=True))
            out.append(DemandCell(nis, False, c.items, figs))
    return out


# --------------------------------------------------------------------------- year on year


@dataclass(frozen=True)
class MonthFigures:
    """One calendar month (UTC) of an area's daily snapshot points, pooled: saturation is the
    month's occupied + held over its fresh places, coverage its fresh over its places in
    service, ``capacity`` the mean places in service. Suppressed days are left out (and
    counted); a month with no day shown has no figures."""

    year: int
    month: int
    days: int
    suppressed_days: int
    saturation: float | None
    coverage: float | None
    capacity: float | None


async def year_on_year(
    db: Database,
    *,
    level: str,
    nis: str,
    kind: str,
    segment: str,
    years: int,
    now: datetime,
) -> list[MonthFigures]:
    """R35: every month from January ``years - 1`` years ago to this month, so the same
    month can be compared across years (the summer and December peaks, the winter schemes).
    From the daily snapshot points the retention keeps for years."""
    if not 1 <= years <= 10:
        raise InvalidInput("years must be 1 to 10.", field="years")
    if nis not in areas_at(check_level(level)):
        raise InvalidInput(f"{nis!r} is not an area of level {level}.", field="nis")
    start = datetime(now.year - years + 1, 1, 1, tzinfo=UTC)
    data = await series(
        db,
        level=level,
        kind=kind,
        segment=segment,
        start=start,
        end=now,
        nis=nis,
        resolution="day",
    )
    sums: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for p in data.get(nis, []):
        acc = sums[(p.at.year, p.at.month)]
        if p.suppressed or p.values is None:
            acc[1] += 1
            continue
        v = p.values
        acc[0] += 1
        acc[2] += v["occupied"] + v["held"]
        acc[3] += v["fresh"]
        acc[4] += v["capacity"]
    out = []
    year, month = start.year, 1
    while (year, month) <= (now.year, now.month):
        shown, hidden, busy, fresh, capacity, _ = sums.get((year, month), [0, 0, 0, 0, 0, 0])
        out.append(
            MonthFigures(
                year=year,
                month=month,
                days=shown,
                suppressed_days=hidden,
                saturation=round(busy / fresh, 4) if fresh else None,
                coverage=round(fresh / capacity, 4) if capacity else None,
                capacity=round(capacity / shown, 1) if shown else None,
            )
        )
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


# --------------------------------------------------------------------------- redirection

PLANNER_SEGMENTS = ("undocumented", "withChildren", "noIncome")


def serves(fac_segments: frozenset[str], policy: AccessPolicy, segment: str) -> bool:
    """Whether a place takes a household of the planner's segment, by the matcher's rules
    (``placement.rules``): a low threshold lifts the conditions on papers and income, not the
    fee, and a paying place is closed to a household with no income."""
    if segment == "undocumented":
        return "undocumented" in fac_segments
    if segment == "withChildren":
        return "women_with_children" in fac_segments
    return (policy.low_threshold or not policy.requires_income) and policy.cost != "paying"


def occupancy(f: FacilityFacts) -> tuple[int, int]:
    """Places occupied by the last report of every pool, whatever the facility's status (a
    scheme that is winding down is usually closed to new admissions, and its occupants are
    still there), and how many of them come from a stale report."""
    occupied = stale = 0
    for p in f.pools:
        n = p.units_occupied * p.places_per_unit
        occupied += n
        if not p.fresh:
            stale += n
    return occupied, stale


@dataclass
class ClosingFacility:
    """A public-address temporary scheme, shown by alias (never an address)."""

    ref: str
    alias: str
    kind: str
    planned_end: datetime
    occupied: int
    by_segment: dict[str, int]
    segment_unknown: int
    occupied_from_stale_reports: int


@dataclass
class PlannerArea:
    nis: str
    closing_public: list[ClosingFacility]
    closing_secret: str  # "none" | "suppressed" | "shown"
    occupants: dict[str, int] | None  # by segment, "segmentUnknown", "total", "fromStaleReports"
    # free places elsewhere in the area, by segment (a segment's figure None: suppressed)
    free_elsewhere: dict[str, int | None] | None
    suppressed: bool
    # R36, beside the free places (counted from fresh figures only): the places in service
    # elsewhere, those whose figures are stale (not counted as free), and the coverage (fresh
    # over in service); None when the free places are suppressed
    free_elsewhere_quality: dict[str, float | int | None] | None = None


#: The longest horizon the planner answers for (``days``), the API's bound.
PLANNER_MAX_DAYS = 365
#: The levels a planner may be asked at: every one's figures are checked together (another
#: level is answered with everything suppressed).
PLANNER_LEVELS: tuple[str, ...] = ("region", "province", "arrondissement")


@dataclass(frozen=True)
class _PlannerFacts:
    """What the planner's suppression needs of one area: its admitting secret places by id
    (public ones are known to the reader) and whether the saturation map shows the area."""

    map_shows: bool
    admitting_secret: frozenset[int]
    serving_secret: dict[str, frozenset[int]]  # planner segment -> admitting secret serving it


def _planner_groups(
    facts: _PlannerFacts, closing: Collection[int], secret_closing: Collection[int], *, k: int
) -> tuple[bool, bool, dict[str, bool], list[tuple[str, frozenset[int]]]]:
    """An area's primary suppression for one set of closing places: whether its occupants
    are shown, whether its free places elsewhere are, which segments of them are, and the
    groups of secret places each shown figure sums (for the joint audit).

    Secret closing schemes: figures only if at least k of them (else all suppressed); free
    places elsewhere only if their secret places are 0 or >= k, and the secret closing ones
    (which they leave out) are too, and the map shows the area (else, with the map's province
    and its other arrondissements, an area the map hid could be worked out)."""
    others = facts.admitting_secret - frozenset(closing)
    secret_ok = len(secret_closing) == 0 or len(secret_closing) >= k
    elsewhere_ok = secret_ok and facts.map_shows and (len(others) == 0 or len(others) >= k)
    segs: dict[str, bool] = {}
    groups: list[tuple[str, frozenset[int]]] = []
    if secret_ok:
        groups.append(("occupants", frozenset(secret_closing)))
    if elsewhere_ok:
        groups.append(("all", others))
    for seg in PLANNER_SEGMENTS:
        serving = facts.serving_secret[seg] & others
        rest = len(others) - len(serving)
        # A segment's figure is hidden when the secret places serving it, or those not
        # serving it (all minus the segment), are 1 to k-1: either would be a refuge or two.
        segs[seg] = not (0 < len(serving) < k or 0 < rest < k)
        if elsewhere_ok and segs[seg]:
            groups.append((seg, serving))
    return secret_ok, elsewhere_ok, segs, groups


async def redirection(
    db: Database,
    settings: Settings,
    *,
    now: datetime,
    days: int,
    level: str,
    cube: Cube | None = None,
) -> list[PlannerArea]:
    """Temporary schemes whose planned end falls within ``days``: their current occupants by
    segment (from holds in state 'arrived', in places) and the rest of the reported occupancy
    as 'segment unknown', against free capacity elsewhere in the same area that serves each
    segment. Secret-address schemes are only aggregated, with the same k as everywhere.
    ``cube``: the saturation map the caller already built (else it is built here).

    Every horizon and every level is checked together with the map, whichever is asked: two
    answers (within 7 and within 30 days; by province and by arrondissement) differ by the
    schemes between them, so each answer alone being safe is not enough (a province's
    occupants minus its one shown arrondissement would be a lone secret scheme)."""
    check_level(level)
    k = settings.suppression_k
    loaded = await load(db, settings, now)
    latest = now + timedelta(days=PLANNER_MAX_DAYS)
    ends = {
        f.id: f.planned_end
        for f in loaded.facilities.values()
        if f.planned_end is not None and now < f.planned_end <= latest
    }
    horizon = now + timedelta(days=days)
    closing = {fid for fid, end in ends.items() if end <= horizon}
    if not closing:
        return []
    if cube is None:
        cube = await asyncio.to_thread(saturation_cube, loaded.facts, k=k)
    facts = {f.id: f for f in loaded.facts}
    policies = {fid: policy_from_json(f.policy) for fid, f in loaded.facilities.items()}

    def area_facts(lv: str, area: str) -> _PlannerFacts:
        depth = LEVELS.index(lv)
        secret = [f for f in loaded.facts if f.path[depth] == area and f.admitting and f.secret]
        cell = cube.get((lv, area, ALL, ALL))
        return _PlannerFacts(
            cell is None or cell.items == 0 or not cell.suppressed,
            frozenset(f.id for f in secret),
            {
                seg: frozenset(f.id for f in secret if serves(f.segments, policies[f.id], seg))
                for seg in PLANNER_SEGMENTS
            },
        )

    # Every figure any (level, horizon) would publish, as groups of secret places, in one
    # order that depends on the data only: the same answer whichever is asked first.
    groups: dict[frozenset[int], int] = {}
    published: dict[tuple[str, str, datetime, str], int] = {}
    cache: dict[tuple[str, str], _PlannerFacts] = {}
    for lv in PLANNER_LEVELS:
        depth = LEVELS.index(lv)
        by_area: dict[str, list[int]] = defaultdict(list)
        for fid in ends:
            by_area[facts[fid].path[depth]].append(fid)
        for area in sorted(by_area):
            fids = sorted(by_area[area], key=lambda fid: (ends[fid], fid))
            pf = cache[(lv, area)] = area_facts(lv, area)
            for cut in sorted({ends[fid] for fid in fids}):
                shut = [fid for fid in fids if ends[fid] <= cut]
                secret_shut = [fid for fid in shut if facts[fid].secret]
                for what, ids in _planner_groups(pf, shut, secret_shut, k=k)[3]:
                    published[(lv, area, cut, what)] = groups.setdefault(ids, len(groups))
    # In a worker thread, as the cube's own audit: a decomposition per round.
    withheld = await asyncio.to_thread(withheld_beside, cube, list(groups))

    async with db.read() as s:
        holds = (
            await s.execute(
                select(Hold.facility_id, Hold.units, Hold.segments, Pool.places_per_unit)
                .join(Pool, Pool.id == Hold.pool_id)
                .where(Hold.state == "arrived", Hold.facility_id.in_(closing))
            )
        ).all()
    placed: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fid, units, segs, ppu in holds:
        places = units * ppu
        placed[fid]["placed"] += places
        for seg in PLANNER_SEGMENTS:
            if (segs or {}).get(seg):
                placed[fid][seg] += places
    depth = LEVELS.index(level)
    by_area = defaultdict(list)
    for fid in closing:
        by_area[facts[fid].path[depth]].append(fid)
    out: list[PlannerArea] = []
    for area in sorted(by_area):
        fids = by_area[area]
        public = [fid for fid in fids if not facts[fid].secret]
        secret = [fid for fid in fids if facts[fid].secret]
        cut = max(ends[fid] for fid in fids)

        def shown(what: str, area: str = area, cut: datetime = cut) -> bool:
            """Checked with every other horizon and level: not withheld."""
            i = published.get((level, area, cut, what))
            return i is not None and i not in withheld

        pf = cache.get((level, area)) or area_facts(level, area)  # another level: all hidden
        secret_ok, elsewhere_ok, seg_ok, _ = _planner_groups(pf, fids, secret, k=k)
        secret_ok = secret_ok and (not secret or shown("occupants"))
        elsewhere_ok = elsewhere_ok and shown("all")
        closing_public = []
        totals: dict[str, int] = defaultdict(int)
        for fid in fids:
            occupied, stale = occupancy(facts[fid])
            p = placed.get(fid, {})
            by_seg = {seg: p.get(seg, 0) for seg in PLANNER_SEGMENTS}
            unknown = max(0, occupied - p.get("placed", 0))
            for seg, n in by_seg.items():
                totals[seg] += n
            totals["segmentUnknown"] += unknown
            totals["total"] += occupied
            totals["fromStaleReports"] += stale
            if fid in public:
                f = loaded.facilities[fid]
                assert f.planned_end is not None
                closing_public.append(
                    ClosingFacility(
                        f.ref, f.alias, f.kind, f.planned_end, occupied, by_seg, unknown, stale
                    )
                )
        # Free elsewhere: admitting facilities of the area that do not close in the window.
        others = [
            f for f in loaded.facts if f.path[depth] == area and f.id not in closing and f.admitting
        ]
        free: dict[str, int | None] = {"all": 0, **dict.fromkeys(PLANNER_SEGMENTS, 0)}
        quality = [0] * len(FIGURES)
        for f in others:
            figs = facility_figures(f)
            quality = [a + b for a, b in zip(quality, figs, strict=True)]
            fr = figs[FIG["free"]]
            free["all"] += fr  # type: ignore[operator]
            for seg in PLANNER_SEGMENTS:
                if serves(f.segments, policies[f.id], seg):
                    free[seg] += fr  # type: ignore[operator]
        for seg in PLANNER_SEGMENTS:
            if not (seg_ok[seg] and shown(seg)):
                free[seg] = None
        out.append(
            PlannerArea(
                nis=area,
                closing_public=sorted(closing_public, key=lambda c: c.planned_end),
                closing_secret="none" if not secret else ("shown" if secret_ok else "suppressed"),
                occupants=dict(totals) if secret_ok else None,
                free_elsewhere=dict(free) if elsewhere_ok else None,
                suppressed=not secret_ok,
                free_elsewhere_quality={
                    "inService": quality[FIG["capacity"]],
                    "stale": quality[FIG["stale"]],
                    "coverage": coverage_of(quality),
                }
                if elsewhere_ok
                else None,
            )
        )
    return out


# --------------------------------------------------------------------------- HSDS feed


def hsds_service_capacity(loaded: Loaded, cube: Cube, now: datetime) -> dict[str, Any]:
    """An Open Referral HSDS 3.x-style feed: services with their ``service_capacity``.

    Public-address facilities: one service each, with a location reduced to the municipality
    (name and centroid, never a street address). Secret-address places: one service per
    province and kind, with no location at all, and figures only where the saturation cell
    is not suppressed."""
    idx = areas()
    services: list[dict[str, Any]] = []
    for fact in loaded.facts:
        if fact.secret:
            continue
        f = loaded.facilities[fact.id]
        v = facility_figures(fact)
        m = idx.municipality(f.municipality_nis)
        services.append(
            {
                "id": f"abri:facility:{f.ref}",
                "name": f.alias,
                "status": "active" if fact.admitting else "inactive",
                "kind": f.kind,
                "service_capacity": [_capacity(f"abri:cap:{f.ref}", v, now)],
                "service_at_locations": [
                    {
                        "location": {
                            "id": f"abri:municipality:{m.nis}",
                            "name": local_name(m.nis),
                            "latitude": m.lat,
                            "longitude": m.lon,
                            "addresses": [],
                        }
                    }
                ],
            }
        )
    for prov in areas_at("province"):
        for kind in sorted({f.kind for f in loaded.facts if f.secret}):
            secret_facts = [f for f in loaded.facts if f.secret and f.kind == kind]
            if not any(f.path[2] == prov for f in secret_facts):
                continue
            c = cube.get(("province", prov, kind, ALL))
            shown = c is not None and not c.suppressed
            # The cell mixes public and secret places; the public ones are listed above.
            secret_values = [0] * len(FIGURES)
            for f in secret_facts:
                if f.path[2] == prov:
                    for i, x in enumerate(facility_figures(f)):
                        secret_values[i] += x
            services.append(
                {
                    "id": f"abri:secret:{prov}:{kind}",
                    "name": f"Secret-address places ({kind}), {local_name(prov)}",
                    "status": "active",
                    "kind": kind,
                    "service_capacity": (
                        [_capacity(f"abri:cap:secret:{prov}:{kind}", secret_values, now)]
                        if shown
                        else []
                    ),
                    "suppressed": not shown,
                    "service_at_locations": [],
                }
            )
    return {"hsds_version": "3.0", "generated": now.isoformat(), "services": services}


def _capacity(cap_id: str, v: Sequence[int], now: datetime) -> dict[str, Any]:
    return {
        "id": cap_id,
        "unit": {"id": "abri:unit:place", "name": "place", "scheme": "abri", "identifier": "place"},
        "available": v[FIG["free"]],
        "maximum": v[FIG["capacity"]],
        "description": (
            f"occupied {v[FIG['occupied']]}, held {v[FIG['held']]}, stale {v[FIG['stale']]}, "
            f"surge 24h {v[FIG['surge24h']]}, surge 72h {v[FIG['surge72h']]}"
        ),
        "updated": now.isoformat(),
    }
