"""The task-force dashboard page (issue 5, item 7): a map of Belgium coloured by saturation, a
trend chart, a sortable table, unmet demand and filters for kind and segment.

Everything is drawn on the server: the map is inline SVG projected from the GeoJSON shipped
in ``capacity/data`` (equirectangular, scaled by cos 50.5° for Belgium's latitude), the chart
an SVG polyline from the snapshot series. No map library, no CDN, no script: works offline
under the strict CSP. The figures come from the same services as ``/taskforce/saturation``,
``/taskforce/saturation/map``, ``/taskforce/saturation/series`` and ``/taskforce/unmet-demand``
(``capacity.taskforce_service``, read through ``api.taskforce.schemas.cell_read``): this page
decides nothing, it only arranges. Aggregates only: never an alias or an address.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlencode

from babel.dates import get_month_names
from litestar import Controller, Request, Response

from api.routing import get
from api.taskforce.controllers import (
    BRIEFING_COLUMNS,
    briefing_rows,
    build_briefing,
    csv_response,
)
from api.taskforce.schemas import SaturationCell, cell_read, point_read, tf_area
from api.web import session as sess
from api.web.controllers import LABELS, _guard, _lang, _render, local_when
from capacity import taskforce_service as tf
from capacity.areas import area_shapes, display_name, fold
from capacity.clock import BRUSSELS
from capacity.saturation import COUNTRY, KINDS, SEGMENTS
from placement.rules import EXCLUSION_TEXT

TASKFORCE_ROLES = frozenset({"taskforce", "admin"})  # as api.auth.requires_taskforce
LEVELS = ("region", "province", "arrondissement")
KIND_CHOICES = ("all", *KINDS)
SEGMENT_CHOICES = ("all", *SEGMENTS)
SORT_COLUMNS = (
    "area",
    "capacity",
    "occupied",
    "held",
    "free",
    "stale",
    "closed",
    "coverage",
    "saturation",
)
DAY_CHOICES = (1, 7, 30, 90, 365)
#: Lower bounds of saturation classes 2..5 (class 1 below 50 %); shown in the legend.
CLASS_BOUNDS = (0.5, 0.7, 0.85, 0.95)
SAT_CLASSES = ("sat-1", "sat-2", "sat-3", "sat-4", "sat-5")
COS_LAT = math.cos(math.radians(50.5))
MAP_WIDTH = 600.0
CHART_W, CHART_H = 600.0, 220.0
CHART_PAD = (44.0, 12.0, 12.0, 28.0)  # left, top, right, bottom
UNMET_DAYS = 30
UNMET_ROWS = 30
PLANNER_DAYS = 30  # schemes whose planned end falls within this many days
#: The breakdowns of the unmet-demand table (R32-R34): what blocked, who asked, for what need.
UNMET_BY = ("reason", "requester", "need")
REQUESTER_LABELS = {
    "police": "Police",
    "helpline": "Helplines",
    "cpas": "CPAS / OCMW",
    "shelter_operator": "Shelters",
    "hotel_partner": "Hotel partners",
    "caw": "CAW welfare centres",
    "fjc": "Family justice centres",
    "sac": "Sexual assault care centres",
    "prosecutor": "Prosecutors",
    "admin": "Administrators",
}
YOY_YEARS = 3  # the same month in this many years, under the trend chart (R35)


def year_table(months: list[tf.MonthFigures], lang: str) -> dict[str, Any] | None:
    """Months down, years across, saturation in each cell ("–" no snapshot, "suppressed" when
    every day was); None when no month of any year has a snapshot."""
    if not any(m.days or m.suppressed_days for m in months):
        return None
    years = sorted({m.year for m in months})
    by = {(m.year, m.month): m for m in months}
    names = get_month_names("wide", locale=lang)
    rows = []
    for month in range(1, 13):
        cells = []
        for year in years:
            m = by.get((year, month))
            if m is None or (m.days == 0 and m.suppressed_days == 0):
                cells.append({"text": "–", "suppressed": False})
            elif m.days == 0:
                cells.append({"text": None, "suppressed": True})
            else:
                cells.append({"text": percent(m.saturation) or "–", "suppressed": False})
        rows.append({"month": names[month], "cells": cells})
    return {"years": years, "rows": rows}


def saturation_class(cell: SaturationCell) -> str:
    """The colour class of an area: ``suppressed``, ``nodata`` (no place or no fresh figure)
    or ``sat-1`` .. ``sat-5`` by the saturation the API reports."""
    if cell.suppressed:
        return "suppressed"
    if not cell.capacity or cell.saturation is None:
        return "nodata"
    return SAT_CLASSES[sum(cell.saturation >= b for b in CLASS_BOUNDS)]


def percent(value: float | None) -> str:
    return "" if value is None else f"{round(value * 100)} %"


# --------------------------------------------------------------------------- map


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    if geometry["type"] == "Polygon":
        return list(geometry["coordinates"])
    return [ring for poly in geometry["coordinates"] for ring in poly]


def _in_province(props: dict[str, Any], province: str) -> bool:
    parent = props.get("prov_nis") or props.get("reg_nis")
    return bool(parent == province)


@dataclass(frozen=True)
class Shapes:
    width: float
    height: float
    paths: tuple[tuple[str, str], ...]  # (nis, SVG path data)


@cache
def map_shapes(level: str, province: str | None) -> Shapes:
    """The areas of ``level`` (only those in ``province`` if given) as SVG paths, projected
    with x = lon * cos(50.5°), y = -lat and scaled to ``MAP_WIDTH``. Regions are drawn as
    their provinces (Brussels is its own), one path each."""
    feats = [
        f
        for f in area_shapes("province" if level == "region" else level)["features"]
        if province is None or _in_province(f["properties"], province)
    ]
    pts = [(x * COS_LAT, -y) for f in feats for r in _rings(f["geometry"]) for x, y in r]
    min_x, max_x = min(p[0] for p in pts), max(p[0] for p in pts)
    min_y, max_y = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = 4.0
    scale = (MAP_WIDTH - 2 * pad) / (max_x - min_x)
    height = round((max_y - min_y) * scale + 2 * pad, 1)
    paths = []
    for f in feats:
        parts = []
        for ring in _rings(f["geometry"]):
            out: list[str] = []
            last = (math.inf, math.inf)
            for lon, lat in ring:  # drop points under half a pixel from the last one kept
                x, y = (lon * COS_LAT - min_x) * scale + pad, (-lat - min_y) * scale + pad
                if abs(x - last[0]) + abs(y - last[1]) >= 0.5:
                    out.append(f"{x:.1f},{y:.1f}")
                    last = (x, y)
            if len(out) >= 3:
                parts.append("M" + "L".join(out) + "Z")
        key = f["properties"]["reg_nis"] if level == "region" else f["properties"]["nis"]
        paths.append((str(key), "".join(parts)))
    merged: dict[str, str] = {}
    for key, d in paths:  # a region: its provinces' rings in one path
        merged[key] = merged.get(key, "") + d
    return Shapes(MAP_WIDTH, height, tuple(sorted(merged.items())))


# --------------------------------------------------------------------------- chart


def trend_chart(points: list[Any], start: datetime, end: datetime) -> dict[str, Any]:
    """Polylines (broken at suppressed or unknown points) of saturation in % over time."""
    left, top, right, bottom = CHART_PAD
    values = [(p.at, p.saturation) for p in points if not p.suppressed]
    known = [v for _, v in values if v is not None]
    y_max = max(1.0, *known) if known else 1.0
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = CHART_W - left - right, CHART_H - top - bottom

    def xy(at: datetime, v: float) -> str:
        x = left + (at - start).total_seconds() / span * plot_w
        y = top + plot_h - v / y_max * plot_h
        return f"{x:.1f},{y:.1f}"

    lines: list[list[str]] = [[]]
    for p in points:
        if p.suppressed or p.saturation is None:
            if lines[-1]:
                lines.append([])
            continue
        lines[-1].append(xy(p.at, p.saturation))
    lines = [line for line in lines if line]
    shown = [pt for line in lines for pt in line]
    # a dot per point when there are few (or a point stands alone): a short run stays visible
    dots = shown if len(shown) <= 60 else [pt for line in lines if len(line) == 1 for pt in line]
    ticks = [
        {"y": f"{top + plot_h - t / y_max * plot_h:.1f}", "label": f"{round(t * 100)} %"}
        for t in (0.0, 0.5, 1.0)
        if t <= y_max
    ]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": left,
        "right": CHART_W - right,
        "top": top,
        "bottom": top + plot_h,
        "lines": [" ".join(line) for line in lines],
        "dots": [d.split(",") for d in dots],
        "ticks": ticks,
        "n_points": len(points),
        "n_shown": sum(len(line) for line in lines),
        "n_suppressed": sum(1 for p in points if p.suppressed),
        "start": start,
        "end": end,
        "last": next((v for _, v in reversed(values) if v is not None), None),
        # the chart's text alternative: where the trend started and ended, how low and high
        "summary": {
            "first": percent(known[0]),
            "last": percent(known[-1]),
            "low": percent(min(known)),
            "high": percent(max(known)),
        }
        if known
        else None,
    }


# --------------------------------------------------------------------------- table


def sort_rows(rows: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by a column; areas without a figure after, suppressed ones last."""
    if column == "area":
        return sorted(rows, key=lambda r: fold(r["name"]), reverse=descending)
    known = [r for r in rows if getattr(r["cell"], column) is not None]
    unknown = [r for r in rows if getattr(r["cell"], column) is None]
    known.sort(key=lambda r: (getattr(r["cell"], column), fold(r["name"])), reverse=descending)
    return known + sorted(unknown, key=lambda r: (r["cell"].suppressed, fold(r["name"])))


def area_name(nis: str, lang: str) -> str:
    """An area's name on the dashboard: also the country and the "unknown area" of unmet
    searches that named none."""
    if nis in (COUNTRY, tf.UNKNOWN_AREA):
        a = tf_area(nis)
        names = {"fr": a.name_fr, "nl": a.name_nl, "de": a.name_de}
        return names.get(lang) or ("Belgium" if nis == COUNTRY else "Unknown area")
    return display_name(nis, lang)


def _choice(raw: str | None, choices: tuple[str, ...], default: str) -> str:
    return raw if raw in choices else default


def _days(raw: str | None) -> int:
    """The period asked for, in days: one of ``DAY_CHOICES``, else 7."""
    return int(raw) if raw and re.fullmatch(r"[0-9]{1,3}", raw) and int(raw) in DAY_CHOICES else 7


def chart_level(nis: str) -> str | None:
    if nis == COUNTRY:
        return "country"
    for level in ("province", "region", "arrondissement"):
        if nis in tf.areas_at(level):
            return level
    return None


class TaskforcePageController(Controller):
    path = "/web/taskforce"
    include_in_schema = False

    @get("/briefing.csv")
    async def briefing(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The API's briefing export (``/taskforce/exports/briefing``) for a signed-in page,
        written for a spreadsheet in a Belgian locale: it is opened in Excel for the meeting."""
        ws, _actor, stop = await _guard(request, TASKFORCE_ROLES)
        if stop:
            return stop
        state = request.app.state
        now = state.clock.now()
        q = request.query_params
        level = _choice(q.get("level"), ("country", "region", *LEVELS), "region")
        days = _days(q.get("days"))
        report = await build_briefing(
            state.db, state.settings, now, now - timedelta(days=days), now, level
        )
        resp = csv_response(
            briefing_rows(report), f"briefing-{level}.csv", BRIEFING_COLUMNS, spreadsheet=True
        )
        return sess.apply(request, resp, ws)  # no-store and the other page headers

    @get("/")
    async def dashboard(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, _actor, stop = await _guard(request, TASKFORCE_ROLES)
        if stop:
            return stop
        state = request.app.state
        now = state.clock.now()
        lang = _lang(request)
        q = request.query_params
        kind = _choice(q.get("kind"), KIND_CHOICES, "all")
        segment = _choice(q.get("segment"), SEGMENT_CHOICES, "all")
        provinces = tf.areas_at("province")
        province = q.get("province") if q.get("province") in provinces else None
        level = "arrondissement" if province else _choice(q.get("level"), LEVELS, "province")
        sort = _choice(q.get("sort"), SORT_COLUMNS, "saturation")
        descending = q.get("dir", "desc" if sort != "area" else "asc") != "asc"
        days = _days(q.get("days"))
        unmet_by = _choice(q.get("unmet"), UNMET_BY, "reason")
        area = q.get("area") or province or COUNTRY
        a_level = chart_level(area)
        if a_level is None:
            area, a_level = province or COUNTRY, "province" if province else "country"
        params = {
            "level": level if not province else None,
            "province": province,
            "kind": kind,
            "segment": segment,
            "sort": sort,
            "dir": "desc" if descending else "asc",
            "days": str(days),
            "area": area if area != (province or COUNTRY) else None,
            "unmet": unmet_by if unmet_by != "reason" else None,
        }

        def link(**changes: Any) -> str:
            merged = {**params, **changes}
            kept = {k: v for k, v in merged.items() if v not in (None, "")}
            return "/web/taskforce?" + urlencode(kept) if kept else "/web/taskforce"

        # the same cube and cells as /taskforce/saturation and /taskforce/saturation/map
        cube = await tf.current_cube(state.db, state.settings, now)
        shapes = map_shapes(level, province)
        rows = []
        for nis, d in shapes.paths:
            cell = cell_read(tf.cell_view(cube, level, nis, kind, segment))
            rows.append(
                {
                    "nis": nis,
                    "name": area_name(nis, lang),
                    "cell": cell,
                    "cls": saturation_class(cell),
                    "d": d,
                    "sat": percent(cell.saturation),
                    "cov": percent(cell.coverage),
                }
            )
        parent_nis = province or COUNTRY
        parent_level = "province" if province else "country"
        parent = cell_read(tf.cell_view(cube, parent_level, parent_nis, kind, segment))
        start, end = now - timedelta(days=days), now
        series = await tf.series(
            state.db, level=a_level, kind=kind, segment=segment, start=start, end=end, nis=area
        )
        points = [point_read(p) for p in series.get(area, [])]
        yoy = year_table(
            await tf.year_on_year(
                state.db,
                level=a_level,
                nis=area,
                kind=kind,
                segment=segment,
                years=YOY_YEARS,
                now=now,
            ),
            lang,
        )
        unmet_start = now - timedelta(days=UNMET_DAYS)
        in_view = {r["nis"] for r in rows}
        unmet = [
            {
                "period": c.period.astimezone(BRUSSELS),  # a Belgian month
                "name": area_name(c.nis, lang) if c.nis != tf.UNKNOWN_AREA else None,
                "reason": EXCLUSION_TEXT.get(c.value) if unmet_by == "reason" else None,
                "label": (REQUESTER_LABELS if unmet_by == "requester" else LABELS["need"]).get(
                    c.value
                )
                if unmet_by != "reason"
                else None,
                "code": c.value,
                "suppressed": c.suppressed,
                "count": c.count,
            }
            for c in await tf.unmet_demand(
                state.db,
                k=state.settings.suppression_k,
                level=level,
                period="month",
                by=unmet_by,
                segment="all",
                start=unmet_start,
                end=now,
            )
            if c.nis in in_view or (c.nis == tf.UNKNOWN_AREA and province is None)
        ]
        unmet.sort(key=lambda u: (u["suppressed"], -(u["count"] or 0), fold(u["name"] or "")))
        # R37: schemes ending soon, their occupants by segment against free places elsewhere
        # in the area (as /taskforce/redirection, without the aliases: aggregates only here).
        planner = [
            {
                "nis": a.nis,
                "name": area_name(a.nis, lang),
                "schemes": len(a.closing_public),
                "secret": a.closing_secret,
                "occupants": a.occupants,
                "free": a.free_elsewhere,
                "free_quality": a.free_elsewhere_quality,
                "suppressed": a.suppressed,
            }
            for a in await tf.redirection(
                state.db, state.settings, now=now, days=PLANNER_DAYS, level=level, cube=cube
            )
            if a.nis in in_view
        ]
        return _render(
            request,
            ws,
            "taskforce.html",
            brussels=BRUSSELS,  # times and dates shown as in Belgium, as on the other pages
            # Belgian time, in the reader's language, as the staff page writes it
            as_of_text=local_when(now, lang, now),
            k=state.settings.suppression_k,
            kind=kind,
            segment=segment,
            level=level,
            province=province,
            province_name=area_name(province, lang) if province else None,
            provinces=[(p, area_name(p, lang)) for p in provinces],
            kinds=KIND_CHOICES,
            segments=SEGMENT_CHOICES,
            day_choices=DAY_CHOICES,
            days=days,
            sort=sort,
            descending=descending,
            columns=SORT_COLUMNS,
            shapes=shapes,
            rows=sort_rows(rows, sort, descending),
            map_rows=rows,
            parent={"name": area_name(parent_nis, lang), "cell": parent, "nis": parent_nis},
            parent_sat=percent(parent.saturation),
            parent_cov=percent(parent.coverage),
            area=area,
            area_label=area_name(area, lang),
            chart=trend_chart(points, start, end),
            unmet=unmet[:UNMET_ROWS],
            unmet_more=max(0, len(unmet) - UNMET_ROWS),
            unmet_days=UNMET_DAYS,
            unmet_by=unmet_by,
            planner=planner,
            # why rows read "suppressed" (the demo's only ending scheme is a secret one)
            planner_suppressed=any(
                p["occupants"] is None
                or p["free"] is None
                or any(v is None for v in p["free"].values())
                for p in planner
            ),
            yoy=yoy,
            planner_days=PLANNER_DAYS,
            classes=(*SAT_CLASSES, "suppressed", "nodata"),
            bounds=[round(b * 100) for b in CLASS_BOUNDS],
            link=link,
            params=params,
        )
