"""What the task force receives: aggregates only, in places (persons). Never an address, and
never an alias or per-facility figure of a secret-address facility."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from api.schemas import AreaRef, Out, area_ref
from capacity.saturation import COUNTRY, FIGURES, KINDS, SEGMENTS, coverage_of, saturation_of
from capacity.taskforce_service import (
    NEEDS,
    OUTCOMES,
    REQUESTERS,
    UNKNOWN_AREA,
    CellView,
    DemandCell,
    SeriesPoint,
)

Level = Literal["country", "region", "province", "arrondissement"]
#: the levels with shapes (``capacity/data``): regions drawn as their provinces
MapLevel = Literal["region", "province", "arrondissement"]
KindFilter = Literal[
    "all", "refuge", "crisis_hotel", "cpas_place", "night_shelter", "safe_house", "other"
]
SegmentFilter = Literal[
    "all",
    "undocumented",
    "women_with_children",
    "undocumented_women_with_children",
    "boys_over_12",
    "low_threshold",
    "free_of_charge",
]
Format = Literal["json", "csv"]
assert set(KindFilter.__args__) == {"all", *KINDS}  # type: ignore[attr-defined]
assert set(SegmentFilter.__args__) == {"all", *SEGMENTS}  # type: ignore[attr-defined]


def tf_area(nis: str) -> AreaRef:
    if nis == COUNTRY:
        return AreaRef(
            nis=COUNTRY, level="country", name_fr="Belgique", name_nl="België", name_de="Belgien"
        )
    if nis == UNKNOWN_AREA:
        return AreaRef(
            nis=UNKNOWN_AREA,
            level="unknown",
            name_fr="Zone inconnue",
            name_nl="Onbekend gebied",
            name_de="Unbekanntes Gebiet",
        )
    return area_ref(nis)


class Figures(Out, kw_only=True):
    """Places (persons), not units. Null everywhere when the cell is suppressed."""

    facilities: int | None = None
    capacity: int | None = None  # places in service at admitting facilities (fresh + stale)
    occupied: int | None = None
    held: int | None = None
    free: int | None = None
    fresh: int | None = None
    stale: int | None = None
    closed: int | None = None
    blocked: int | None = None
    surge_24h: int | None = msgspec.field(default=None, name="surge24h")
    surge_72h: int | None = msgspec.field(default=None, name="surge72h")
    saturation: float | None = None  # (occupied + held) / fresh
    coverage: float | None = None  # fresh / capacity (share of places reporting fresh data)


def figures(values: dict[str, int] | None, facilities: int | None) -> dict[str, object]:
    if values is None:
        return {}
    vec = [values[name] for name in FIGURES]
    return {
        "facilities": facilities,
        "capacity": values["capacity"],
        "occupied": values["occupied"],
        "held": values["held"],
        "free": values["free"],
        "fresh": values["fresh"],
        "stale": values["stale"],
        "closed": values["closed"],
        "blocked": values["blocked"],
        "surge_24h": values["surge24h"],
        "surge_72h": values["surge72h"],
        "saturation": saturation_of(vec),
        "coverage": coverage_of(vec),
    }


class SaturationCell(Figures, kw_only=True):
    area: AreaRef
    kind: str
    segment: str
    suppressed: bool
    merged_into: str | None = None  # the parent area whose figures include this cell


def cell_read(v: CellView) -> SaturationCell:
    return SaturationCell(
        area=tf_area(v.nis),
        kind=v.kind,
        segment=v.segment,
        suppressed=v.suppressed,
        merged_into=v.merged_into,
        **figures(v.values, v.facilities),  # type: ignore[arg-type]
    )


class SaturationReport(Out, kw_only=True):
    as_of: datetime
    unit: str = "places"
    coverage_basis: str = "places"
    k: int
    level: str
    kind: str
    segment: str
    cells: list[SaturationCell]


class SeriesPointRead(Figures, kw_only=True):
    at: datetime
    suppressed: bool


def point_read(p: SeriesPoint) -> SeriesPointRead:
    """Same fields as ``figures`` (a test holds them equal), spelled out: a year of series has
    thousands of points and the intermediate dict and ``**`` unpacking doubled the cost."""
    v = p.values
    if v is None:
        return SeriesPointRead(at=p.at, suppressed=p.suppressed)
    vec = [v[name] for name in FIGURES]
    return SeriesPointRead(
        at=p.at,
        suppressed=p.suppressed,
        facilities=p.facilities,
        capacity=v["capacity"],
        occupied=v["occupied"],
        held=v["held"],
        free=v["free"],
        fresh=v["fresh"],
        stale=v["stale"],
        closed=v["closed"],
        blocked=v["blocked"],
        surge_24h=v["surge24h"],
        surge_72h=v["surge72h"],
        saturation=saturation_of(vec),
        coverage=coverage_of(vec),
    )


class AreaSeries(Out, kw_only=True):
    area: AreaRef
    points: list[SeriesPointRead]


class SeriesReport(Out, kw_only=True):
    level: str
    kind: str
    segment: str
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    unit: str = "places"
    areas: list[AreaSeries]


class MonthRead(Out, kw_only=True):
    """One calendar month (UTC), pooled over its daily points; null figures when no day of it
    could be shown (no snapshot, or every one suppressed)."""

    year: int
    month: int
    days: int
    suppressed_days: int
    saturation: float | None
    coverage: float | None
    capacity: float | None  # mean places in service


class YearOnYearReport(Out, kw_only=True):
    area: AreaRef
    kind: str
    segment: str
    years: list[int]
    unit: str = "places"
    months: list[MonthRead]


class UnmetCellRead(Out, kw_only=True):
    period: datetime
    area: AreaRef
    by: str
    value: str
    segment: str
    suppressed: bool
    count: int | None


class UnmetReport(Out, kw_only=True):
    level: str
    period: str
    by: str
    segment: str
    k: int
    cells: list[UnmetCellRead]


class ClosingFacilityRead(Out, kw_only=True):
    """A public-address temporary scheme (e.g. a requisitioned hotel), by alias only."""

    ref: str
    alias: str
    kind: str
    planned_end: datetime
    occupied: int  # by the last report, also when the scheme is closed to admissions
    by_segment: dict[str, int]
    segment_unknown: int
    occupied_from_stale_reports: int  # of ``occupied``: from reports past the staleness limit


class PlannerAreaRead(Out, kw_only=True):
    area: AreaRef
    closing_public: list[ClosingFacilityRead]
    closing_secret: str  # none | shown | suppressed
    occupants: dict[str, int] | None
    free_elsewhere: dict[str, int | None] | None  # a segment null: suppressed
    suppressed: bool
    # beside the free places (fresh figures only): places in service elsewhere, those whose
    # figures are stale, coverage (fresh ÷ in service); null when the free places are
    free_elsewhere_quality: dict[str, float | int | None] | None = None


class PlannerReport(Out, kw_only=True):
    as_of: datetime
    days: int
    level: str
    k: int
    unit: str = "places"
    areas: list[PlannerAreaRead]
    # why figures are null, when any is: a reader meeting only suppressed rows (the demo's
    # one secret scheme ending) otherwise takes the planner for broken
    suppression_note: str | None = None


class DemandRead(Out, kw_only=True):
    """Holds requested in the window at facilities of one area; null when suppressed."""

    area: AreaRef
    suppressed: bool
    facilities: int | None = None  # facilities that received holds
    requested: int | None = None
    # R33: households, not holds: holds with the same episodeToken count once (a hold without
    # one counts as a household), in the area of the household's first hold in the window
    households: int | None = None
    by_need: dict[str, int] | None = None
    by_requester: dict[str, int] | None = None  # police, helpline, cpas...: not merged (R33)
    outcomes: dict[str, int] | None = None  # what became of them, by state now


class UnmetTotalRead(Out, kw_only=True):
    area: AreaRef
    value: str  # the need, or the main blocking rule
    suppressed: bool
    count: int | None


class Briefing(Out, kw_only=True):
    """The task force's agenda in one export: demand signals, then capacity and saturation by
    area and access segment, then the demand that found no place and what blocked it."""

    as_of: datetime
    window_start: datetime
    window_end: datetime
    level: str
    k: int
    unit: str = "places"
    demand: list[DemandRead]
    unmet_by_need: list[UnmetTotalRead]
    unmet_by_requester: list[UnmetTotalRead]  # police, helpline, cpas...: not merged (R33)
    capacity: list[SaturationCell]
    unmet_by_reason: list[UnmetTotalRead]


def demand_read(c: DemandCell) -> DemandRead:
    if c.figures is None:
        return DemandRead(area=tf_area(c.nis), suppressed=True)
    f = c.figures
    return DemandRead(
        area=tf_area(c.nis),
        suppressed=False,
        facilities=c.facilities,
        requested=f["requested"],
        households=f["households"],
        by_need={n: f[f"need:{n}"] for n in NEEDS},
        by_requester={r: f[f"by:{r}"] for r in REQUESTERS},
        outcomes={o: f[o] for o in OUTCOMES},
    )
