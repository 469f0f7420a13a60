"""The task-force dashboard page without a browser, on SQLite and PostgreSQL: who may see it,
the map's colour classes and figures against ``/taskforce/saturation/map``, suppression,
filters, sorting, the trend chart, unmet demand, languages, and no alias or address of a
facility anywhere in the page."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, insert, select, update

from api.web import i18n
from api.web.taskforce import CLASS_BOUNDS, SAT_CLASSES
from capacity import snapshots
from capacity.commands import PoolCreate
from capacity.models import Facility, Pool, UnmetDemand
from capacity.settings import Settings
from placement.policy import AccessPolicy
from tests.browser.web_helpers import post_form, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_canary_addresses import canary_address

# Province of Liège (60000): arrondissements Huy 61000, Liège 62000, Verviers 63000, Waremme
# 64000 (empty). Limburg (70000): one refuge only, so suppressed; Antwerp (10000, three
# refuges) then too, or Flanders minus Antwerp would give it away. Namur (90000): none.
HUY, LIEGE, VERVIERS, ANTWERP, HASSELT = "61003", "62003", "63001", "11002", "71022"


async def seed_taskforce(world: World) -> dict[str, Any]:
    """Seven secret refuges in Liège province (3 + 3 + 1 by arrondissement), three in Antwerp
    and one in Limburg,
    each with a canary alias and address; task-force, staff, helpline and police tokens."""
    await world.operator("Refuges Canary", "shelter_operator")
    await world.operator("Task Force", "taskforce")
    await world.operator("Ligne", "helpline")
    await world.operator("Zone", "police")
    await world.operator("Federal Admin", "admin")
    needles: list[str] = []
    facs = []
    plan = (
        [(LIEGE, 10, 8, i == 0) for i in range(3)]
        + [(VERVIERS, 8, 4, False) for _ in range(3)]
        + [(HUY, 7, 6, False), (HASSELT, 5, 5, False)]
        + [(ANTWERP, 4, 1, False) for _ in range(3)]
    )
    for i, (nis, total, occupied, undocumented) in enumerate(plan):
        addr, found = canary_address()
        alias = f"CANARYALIAS{found[0][-8:]}X{i}"
        needles += [*found, alias]
        facs.append(
            await world.facility(
                "Refuges Canary",
                alias,
                municipality=nis,
                address=addr,
                policy=AccessPolicy(accepts_undocumented=undocumented),
                pools=[PoolCreate(label="Beds", units_total=total, units_occupied=occupied)],
            )
        )
    return {
        "needles": needles,
        "facs": facs,
        "tf": await world.token("Task Force", "taskforce"),
        "admin": await world.token("Federal Admin", "admin"),
        "staff": await world.token("Refuges Canary", "staff"),
        "helpline": await world.token("Ligne", "helpline"),
        "police": await world.token("Zone", "police"),
    }


def expected_class(props: dict[str, Any]) -> str:
    """The colour class the page must give an area, computed from the API's figures."""
    if props["suppressed"]:
        return "suppressed"
    if not props["capacity"] or props["saturation"] is None:
        return "nodata"
    return SAT_CLASSES[sum(props["saturation"] >= b for b in CLASS_BOUNDS)]


def map_areas(page: str) -> dict[str, dict[str, str]]:
    """data-nis -> {class, saturation, title} of every shape of the SVG map."""
    svg = re.search(r'<svg id="tf-map".*?</svg>', page, re.S)
    assert svg, "no map"
    out = {}
    for m in re.finditer(
        r'<path d="[^"]+" class="area [^"]*" data-nis="(\d+)" data-class="([\w-]+)" '
        r'data-saturation="([^"]*)"><title>([^<]*)</title>',
        svg[0],
    ):
        out[m.group(1)] = {"class": m.group(2), "saturation": m.group(3), "title": m.group(4)}
    return out


def table_rows(page: str) -> list[tuple[str, list[str]]]:
    body = re.search(r'<table id="tf-table".*?<tbody>(.*?)</tbody>', page, re.S)
    assert body
    rows = []
    for m in re.finditer(r'<tr data-nis="(\d+)".*?</tr>', body[1], re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", m[0])
        ]
        rows.append((m.group(1), cells))
    return rows


async def api_map(client: AsyncClient, token: str, **params: str) -> dict[str, dict[str, Any]]:
    r = await client.get("/taskforce/saturation/map", params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return {f["properties"]["nis"]: f["properties"] for f in r.json()["features"]}


async def test_only_taskforce_and_admin_get_the_dashboard(
    client: AsyncClient, world: World
) -> None:
    s = await seed_taskforce(world)
    assert (await client.get("/web/taskforce")).status_code == 303  # not signed in
    for role in ("staff", "helpline", "police"):
        client.cookies.clear()
        await web_sign_in(client, s[role])
        r = await client.get("/web/taskforce")
        assert r.status_code == 403, role
        assert "tf-map" not in r.text
    for role in ("tf", "admin"):
        client.cookies.clear()
        r = await web_sign_in(client, s[role])
        assert r.status_code == 303
        if role == "tf":  # a task-force sign-in lands on the dashboard
            assert r.headers["location"] == "/web/taskforce"
            assert (await client.get("/web/")).headers["location"] == "/web/taskforce"
        assert (await client.get("/web/taskforce")).status_code == 200, role
    # the bearer token alone opens no page
    client.cookies.clear()
    r = await client.get("/web/taskforce", headers=bearer(s["tf"]))
    assert r.status_code == 303
    assert (await client.get("/web/taskforce/briefing.csv")).status_code == 303
    await web_sign_in(client, s["police"])
    assert (await client.get("/web/taskforce/briefing.csv")).status_code == 403


async def test_the_briefing_download_is_the_api_export(client: AsyncClient, world: World) -> None:
    """The dashboard's "Briefing" links give the API's CSV (same figures, same suppression),
    with the pages' no-store headers, and nothing that names or locates a refuge."""
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    page = await client.get("/web/taskforce")
    link = re.search(r'id="briefing-province" href="([^"]+)"', page.text)
    assert link, page.text
    r = await client.get(html.unescape(link.group(1)))
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    api = await client.get(
        "/taskforce/exports/briefing",
        params={"level": "province", "format": "csv"},
        headers=bearer(s["tf"]),
    )
    assert api.status_code == 200
    assert api.text.splitlines()[0].startswith("section,level,nis")  # the API: RFC 4180
    # The download is opened by double-click in Excel set to a Belgian locale: a UTF-8 BOM
    # (else "Liège" reads "LiÃ¨ge"), ";" between fields (else each row fills one column)
    # and a decimal comma (else a saturation of 0.66 is text); the same figures otherwise.
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:20]
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("section;level;nis;name_fr")
    assert "Liège;Luik;Lüttich" in text
    sheet = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    rows = list(csv.DictReader(io.StringIO(api.text)))
    assert len(sheet) == len(rows) > 0
    decimals = 0
    for got, want in zip(sheet, rows, strict=True):
        if re.fullmatch(r"-?\d+\.\d+", want["value"]):
            decimals += 1
            assert got["value"] == want["value"].replace(".", ","), (got, want)
        else:
            assert got == want
    assert decimals > 0  # saturation and coverage
    for needle in s["needles"]:
        assert needle not in r.text
    assert "CANARY" not in r.text.upper()


async def test_map_table_and_chart_match_the_api(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    s = await seed_taskforce(world)
    now = world.clock.now()
    for hours in (3, 2, 1, 0):  # four hourly snapshots for the trend chart
        await snapshots.take_snapshot(world.db, settings, now - timedelta(hours=hours))
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    r = await client.get("/web/taskforce")
    assert r.status_code == 200
    page = r.text
    assert "<script>" not in page and " style=" not in page  # strict CSP: nothing inline
    areas = map_areas(page)
    assert len(areas) == 11  # 10 provinces and the Brussels region
    api = await api_map(client, s["tf"], level="province")
    assert set(areas) == set(api)
    for nis, props in api.items():
        assert areas[nis]["class"] == expected_class(props), nis
        want = "" if props["saturation"] is None else str(props["saturation"])
        assert areas[nis]["saturation"] == want, nis
    # Liège province: 7 refuges, 61 places, 42 occupied -> 69 %, class 2 (50 to 70 %)
    liege = api["60000"]
    assert not liege["suppressed"] and liege["capacity"] == 61 and liege["occupied"] == 42
    assert areas["60000"]["class"] == "sat-2"
    assert "69 %" in html.unescape(areas["60000"]["title"])
    # R36: coverage beside the figure (the share of places reporting fresh figures)
    assert f"coverage {round(liege['coverage'] * 100)} %" in html.unescape(areas["60000"]["title"])
    # Limburg: a single refuge, suppressed on the map and in the table; Antwerp as well
    for nis in ("70000", "10000"):
        assert areas[nis]["class"] == "suppressed" and "suppressed" in areas[nis]["title"]
    rows = dict(table_rows(page))
    assert rows["70000"] == ["suppressed"] * 8
    assert rows["60000"][:6] == ["61", "42", "0", "19", "0", "0"]  # ..., stale, closed
    assert rows["60000"][-1] == "69 %"
    assert rows["90000"][0] == "0"  # Namur: no place -> no data
    assert areas["90000"]["class"] == "nodata"
    # default sort: saturation, highest first, suppressed last
    order = [nis for nis, _ in table_rows(page)]
    assert order[0] == "60000" and set(order[-2:]) == {"10000", "70000"}
    # the trend chart: four points of Belgium's saturation
    chart = re.search(r'<svg id="tf-chart"[^>]*data-points="(\d+)"[^>]*>(.*?)</svg>', page, re.S)
    assert chart and chart.group(1) == "4"
    pts = re.findall(r'<polyline class="trend" points="([^"]+)"', chart.group(2))
    assert len(pts) == 1 and len(pts[0].split()) == 4
    # zoom into Liège: its four arrondissements, as /taskforce/saturation/map says
    r = await client.get("/web/taskforce", params={"province": "60000"})
    arr = map_areas(r.text)
    assert set(arr) == {"61000", "62000", "63000", "64000"}
    api_arr = await api_map(client, s["tf"], level="arrondissement")
    for nis, a in arr.items():
        assert a["class"] == expected_class(api_arr[nis]), nis
    assert arr["61000"]["class"] == "suppressed"  # Huy: one refuge
    assert arr["64000"]["class"] == "nodata"  # Waremme: none
    # complementary suppression shows through: Liège or Verviers is suppressed too
    assert sorted([arr["62000"]["class"], arr["63000"]["class"]]).count("suppressed") == 1
    chart = re.search(r'<svg id="tf-chart"[^>]*data-points="(\d+)"', r.text)
    assert chart and chart.group(1) == "4"  # the province's trend
    # sorting by a column, both ways, through links (no script)
    r = await client.get("/web/taskforce", params={"province": "60000", "sort": "area"})
    names = [n for n, _ in table_rows(r.text)]
    assert names == ["61000", "62000", "63000", "64000"]  # Huy, Liège, Verviers, Waremme
    assert 'aria-sort="ascending"' in r.text
    r = await client.get(
        "/web/taskforce", params={"province": "60000", "sort": "area", "dir": "desc"}
    )
    assert [n for n, _ in table_rows(r.text)] == names[::-1]
    # the arrondissement level over all of Belgium
    r = await client.get("/web/taskforce", params={"level": "arrondissement"})
    assert len(map_areas(r.text)) == 43


async def test_filters_change_the_figures(client: AsyncClient, world: World) -> None:
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    base = map_areas((await client.get("/web/taskforce")).text)
    assert base["60000"]["class"] == "sat-2"
    # only one Liège refuge accepts undocumented people: suppressed, like the API says
    r = await client.get("/web/taskforce", params={"segment": "undocumented"})
    areas = map_areas(r.text)
    api = await api_map(client, s["tf"], level="province", segment="undocumented")
    assert areas["60000"]["class"] == expected_class(api["60000"]) == "suppressed"
    assert '<option value="undocumented" selected>' in r.text
    # no crisis hotel anywhere: no data
    r = await client.get("/web/taskforce", params={"kind": "crisis_hotel"})
    areas = map_areas(r.text)
    assert areas["60000"]["class"] == "nodata"
    assert dict(table_rows(r.text))["60000"][0] == "0"
    # unknown filter values fall back to all
    r = await client.get("/web/taskforce", params={"kind": "<script>", "segment": "x"})
    assert r.status_code == 200 and map_areas(r.text)["60000"]["class"] == "sat-2"


async def test_unmet_demand_summary_is_suppressed_below_k(
    client: AsyncClient, world: World
) -> None:
    s = await seed_taskforce(world)
    now = world.clock.now()
    rows = [
        dict(
            at=now - timedelta(hours=2),
            requester_kind="helpline",
            need="ipv",
            arrondissement_nis="62000",
            province_nis="60000",
            region_nis="03000",
            household_shape="1A+2C",
            segments={"withChildren": True},
            top_reasons=["children_not_accepted" if i < 4 else "no_room"],
            episode_hash=None,
        )
        for i in range(6)
    ]
    async with world.db.write() as sess:
        await sess.execute(insert(UnmetDemand), rows)
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    page = (await client.get("/web/taskforce")).text
    table = re.search(r'<table id="tf-unmet".*?</table>', page, re.S)
    assert table
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(table[0])))
    # the total row: a reader took "All rules together" for "blocked by every rule at once"
    assert "Liège Total (all rules) 6 " in text
    # 2 'no room' searches: suppressed; the 4 others too, or 6 - 4 would give them away
    assert "do not accept children suppressed" in text
    assert "have no free unit that fits the household suppressed" in text
    r = await client.get("/web/taskforce", params={"province": "60000"})
    table = re.search(r'<table id="tf-unmet".*?</table>', r.text, re.S)
    assert table and "Liège" in table[0] and "suppressed" in table[0]
    # R33/R34: the same searches by who asked and by need, through links (no script)
    assert 'href="/web/taskforce?' in page and "unmet=requester" in page
    for by, label in (("requester", "Helplines"), ("need", "Intimate partner violence")):
        r = await client.get("/web/taskforce", params={"unmet": by})
        table = re.search(r'<table id="tf-unmet".*?</table>', r.text, re.S)
        assert table
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(table[0])))
        assert f"Liège {label} 6 " in text, text
        assert '<strong aria-current="true">' in r.text


@pytest.mark.parametrize(
    ("lang", "heading", "suppressed", "held"),
    [
        ("fr", "Tableau de bord de la task force", "masqué", "Réservées"),
        ("nl", "Dashboard van de taskforce", "afgeschermd", "Gereserveerd"),
        ("de", "Dashboard des Krisenstabs", "unterdrückt", "Reserviert"),
        ("en", "Task force dashboard", "suppressed", "On hold"),
    ],
)
async def test_language_switch(
    client: AsyncClient, world: World, lang: str, heading: str, suppressed: str, held: str
) -> None:
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    r = await post_form(
        client, "/web/taskforce", "/web/lang", {"lang": lang, "next": "/web/taskforce"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/taskforce"
    page = (await client.get("/web/taskforce")).text
    assert f'<html lang="{lang}">' in page and heading in page
    assert map_areas(page)["70000"]["title"].endswith(suppressed)
    # the column of held places agrees with its neighbours ("Occupées", "Libres"), in each language
    table = re.search(r'<table id="tf-table".*?</thead>', page, re.S)
    assert table and f">{held}<" in table[0].replace("\n", ""), table


async def test_closed_places_and_the_schemes_ending_soon(client: AsyncClient, world: World) -> None:
    """R36: closed places have their own column, as in the API. R37: a requisitioned hotel
    ending in 10 days (closed to admissions already, as they are while winding down) shows
    its occupants and the free places elsewhere in its arrondissement, without its alias."""

    s = await seed_taskforce(world)
    await world.operator("Hotels", "hotel_partner")
    hotel = await world.facility(
        "Hotels",
        "CANARYHOTEL Requis",
        kind="crisis_hotel",
        municipality=LIEGE,
        secret=False,
        planned_end=world.clock.now() + timedelta(days=10),
        pools=[
            PoolCreate(
                label="Rooms", unit_kind="room", places_per_unit=2, units_total=10, units_occupied=9
            )
        ],
    )
    async with world.db.write() as sess:
        await sess.execute(
            update(Facility)
            .where(Facility.id == hotel.facility.id)
            .values(status="closed_to_admissions", status_reason="Scheme ends")
        )
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    r = await client.get("/web/taskforce")
    assert r.status_code == 200
    api = await api_map(client, s["tf"], level="province")
    rows = dict(table_rows(r.text))
    assert api["60000"]["closed"] == 20 and rows["60000"][5] == "20"
    assert api["60000"]["capacity"] == 61  # closed places are not in service
    planner = re.search(r'<table id="tf-planner".*?</table>', r.text, re.S)
    assert planner, "no planner table"
    row = re.search(r'<tr data-nis="60000">(.*?)</tr>', planner[0], re.S)
    assert row
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]
    # 18 occupants, segments unknown (nobody placed through Abri); free elsewhere in the
    # province: Liège 3 x 2, Verviers 3 x 4, Huy 1; the one undocumented-friendly refuge's
    # 2 free places are not shown apart (a single secret place).
    assert cells == ["18", "0", "0", "0", "18", "19", "suppressed", "19", "19"]
    assert "CANARY" not in r.text.upper()
    # R36: places elsewhere whose figures went stale are not counted free, and the row says so
    async with world.db.write() as sess:
        await sess.execute(
            update(Pool)
            .where(Pool.facility_id != hotel.facility.id)
            .where(Pool.id == select(func.min(Pool.id)).scalar_subquery())
            .values(reported_at=world.clock.now() - timedelta(days=9), confirmed_at=None)
        )
    page = (await client.get("/web/taskforce")).text
    row = re.search(r'<tr data-nis="60000">(.*?)</tr>', page, re.S)
    assert row and re.search(
        r"coverage \d+ %; \d+ places with stale figures, not counted", " ".join(row[1].split())
    ), row[1]
    api_plan = await client.get(
        "/taskforce/redirection", params={"days": 30}, headers=bearer(s["tf"])
    )
    (area,) = api_plan.json()["areas"]
    assert area["occupants"]["total"] == 18 and area["area"]["nis"] == "62000"
    # Nothing ends in Limburg: no row; elsewhere in time, the empty message.
    r = await client.get("/web/taskforce", params={"province": "70000"})
    assert 'id="tf-planner-empty"' in r.text


async def test_same_month_in_other_years_under_the_trend(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """R35: the trend card shows each month's saturation by year, as the API computes it."""
    from datetime import datetime

    s = await seed_taskforce(world)
    now = world.clock.now()
    await snapshots.take_snapshot(world.db, settings, datetime(2025, 1, 10, 12, tzinfo=now.tzinfo))
    await snapshots.take_snapshot(world.db, settings, now - timedelta(hours=1))
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    r = await client.get("/web/taskforce", params={"province": "60000"})
    table = re.search(r'<table id="tf-yoy".*?</table>', r.text, re.S)
    assert table, "no year-on-year table"
    assert re.findall(r'<th scope="col">(\d{4})</th>', table[0]) == ["2024", "2025", "2026"]
    january = re.search(r'<th scope="row">January</th>(.*?)</tr>', table[0], re.S)
    assert january
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", january[1])]
    api = await client.get(
        "/taskforce/saturation/year-on-year",
        params={"level": "province", "nis": "60000", "years": 3},
        headers=bearer(s["tf"]),
    )
    want = {(m["year"], m["month"]): m["saturation"] for m in api.json()["months"]}
    assert cells[0] == "–"  # no snapshot in January 2024
    assert cells[1] == f"{round(want[(2025, 1)] * 100)} %"
    assert cells[2] == f"{round(want[(2026, 1)] * 100)} %"
    # Huy alone: suppressed, never a figure.
    r = await client.get("/web/taskforce", params={"province": "60000", "area": "61000"})
    table = re.search(r'<table id="tf-yoy".*?</table>', r.text, re.S)
    assert table and "%" not in table[0] and "suppressed" in table[0]


async def test_regions_side_by_side(client: AsyncClient, world: World) -> None:
    """R30: regions run different systems and must be compared: the dashboard has a region
    level (each region drawn as its provinces), with the API's figures and suppression."""
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    r = await client.get("/web/taskforce", params={"level": "region"})
    assert r.status_code == 200 and "Saturation by region" in r.text
    areas = map_areas(r.text)
    assert set(areas) == {"02000", "03000", "04000"}
    api = await client.get(
        "/taskforce/saturation", params={"level": "region"}, headers=bearer(s["tf"])
    )
    cells = {c["area"]["nis"]: c for c in api.json()["cells"]}
    for nis, a in areas.items():
        assert a["class"] == expected_class(cells[nis]), nis
    rows = dict(table_rows(r.text))
    wallonia = cells["03000"]
    assert not wallonia["suppressed"] and rows["03000"][0] == str(wallonia["capacity"])
    # Flanders: 3 + 1 refuges (Antwerp and Limburg) -> shown; Brussels: none -> no data
    assert areas["04000"]["class"] == "nodata"
    # a region's trend from its link
    from api.web.taskforce import area_name

    r = await client.get("/web/taskforce", params={"level": "region", "area": "03000"})
    assert r.status_code == 200
    assert f"Trend: {area_name('03000', 'en')}" in html.unescape(r.text)


def test_every_dashboard_message_is_translated() -> None:
    """Besides the template scan of test_web_pages: every msgid of taskforce.html in all
    four catalogues, with the same placeholders."""
    from pathlib import Path

    text = (Path(i18n.__file__).parent / "templates" / "taskforce.html").read_text()
    ids = set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"\s*\)', text))
    ids |= set(re.findall(r"_\(\s*'((?:[^'\\]|\\.)*)'\s*\)", text))
    assert len(ids) > 40
    for lang in i18n.LANGS:
        table = i18n.catalogue(lang)
        missing = sorted(i for i in ids if i not in table)
        assert not missing, (lang, missing)
        for msgid in ids:
            want = sorted(re.findall(r"%\(\w+\)s|%%", msgid))
            assert sorted(re.findall(r"%\(\w+\)s|%%", table[msgid])) == want, (lang, msgid)


async def test_no_alias_or_address_anywhere_on_the_dashboard(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    s = await seed_taskforce(world)
    await snapshots.take_snapshot(world.db, settings, world.clock.now())
    seen = 0
    for role in ("tf", "admin"):
        client.cookies.clear()
        await web_sign_in(client, s[role])
        for params in (
            {},
            {"province": "60000"},
            {"province": "60000", "area": "62000", "days": "1"},
            {"province": "70000"},
            {"province": "10000", "days": "365"},
            {"level": "arrondissement", "sort": "free", "dir": "asc"},
            {"segment": "undocumented", "kind": "refuge"},
        ):
            for lang in ("fr", "en"):
                client.cookies.set("abri_lang", lang, path="/web")
                r = await client.get("/web/taskforce", params=params)
                assert r.status_code == 200, params
                blob = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
                for needle in s["needles"]:
                    assert needle not in blob, (params, needle)
                assert "CANARY" not in blob.upper()
                seen += 1
    assert seen == 28


async def test_the_planner_hides_free_places_where_the_map_hides_the_area(
    client: AsyncClient, world: World
) -> None:
    """k-anonymity: Huy holds one secret refuge, so the map hides Huy and (complementary
    suppression) one more arrondissement of the province. The planner must not show the free
    places elsewhere (nor their data quality) of an area the map hid: the province minus the
    arrondissements shown would give the lone refuge's figures."""
    s = await seed_taskforce(world)
    await world.operator("Hotels", "hotel_partner")
    for nis, name in ((LIEGE, "Hotel L"), (VERVIERS, "Hotel V")):
        h = await world.facility(
            "Hotels",
            name,
            kind="crisis_hotel",
            municipality=nis,
            secret=False,
            planned_end=world.clock.now() + timedelta(days=10),
            pools=[
                PoolCreate(
                    label="Rooms",
                    unit_kind="room",
                    places_per_unit=2,
                    units_total=5,
                    units_occupied=5,
                )
            ],
        )
        async with world.db.write() as sess:
            await sess.execute(
                update(Facility)
                .where(Facility.id == h.facility.id)
                .values(status="closed_to_admissions")
            )
    arr = await api_map(client, s["tf"], level="arrondissement")
    hidden = {nis for nis in ("62000", "63000") if arr[nis]["suppressed"]}
    assert arr["61000"]["suppressed"] and hidden  # Huy, and one more to protect it
    r = await client.get(
        "/taskforce/redirection",
        params={"days": 30, "level": "arrondissement"},
        headers=bearer(s["tf"]),
    )
    planner = {a["area"]["nis"]: a for a in r.json()["areas"]}
    for nis in ("62000", "63000"):
        shown = planner[nis]["freeElsewhere"] is not None
        assert shown == (nis not in hidden), nis
        assert (planner[nis]["freeElsewhereQuality"] is not None) == shown, nis


@pytest.mark.parametrize(
    ("lang", "stamp"),
    [
        ("fr", "jeu. 15 janv., 02:30 (heure belge)"),
        ("nl", "do 15 jan, 02:30 (Belgische tijd)"),
        ("de", "Do. 15 Jan., 02:30 (belgische Zeit)"),
        ("en", "Thu 15 Jan, 02:30 (Belgian time)"),
    ],
)
async def test_the_figures_are_dated_in_belgian_time(
    client: AsyncClient, world: World, lang: str, stamp: str
) -> None:
    """A Belgian task force reads "as of" on its own clock and in its own language, as the
    staff page does: 01:30 UTC in January is 02:30 in Brussels, not "2026-01-15 01:30 UTC"."""
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    await post_form(client, "/web/taskforce", "/web/lang", {"lang": lang, "next": "/web/taskforce"})
    page = html.unescape((await client.get("/web/taskforce")).text)
    hint = re.search(r'<h1>.*?</h1>\s*<p class="hint">(.*?)</p>', page, re.S)
    assert hint and stamp in hint[1], hint and hint[1]
    assert "UTC" not in hint[1] and "2026-01-15" not in hint[1]


async def test_the_sorted_column_is_said_once_not_with_its_arrow(
    client: AsyncClient, world: World
) -> None:
    """The sorted column's link read "Saturation ▼": a screen reader said the triangle's name
    ("black down-pointing triangle") as well as the header's aria-sort."""
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    r = await client.get("/web/taskforce", params={"sort": "saturation", "dir": "desc"})
    th = re.search(r'<th scope="col" aria-sort="descending">(.*?)</th>', r.text)
    assert th, r.text
    assert '<span aria-hidden="true">▼</span>' in th.group(1)
    assert "▼" not in re.sub(r'<span aria-hidden="true">.*?</span>', "", th.group(1))


async def test_the_dashboard_labels_take_the_french_colon(
    client: AsyncClient, world: World
) -> None:
    """The heading ("Tableau de bord de la task force: Liège") and the map's area titles kept
    a bare colon when the other pages took French typography's space before it."""
    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    await post_form(client, "/web/taskforce", "/web/lang", {"lang": "fr", "next": "/web/taskforce"})
    page = html.unescape((await client.get("/web/taskforce", params={"province": "60000"})).text)
    h1 = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert h1 and h1[1] == "Tableau de bord de la task force\u202f: Liège", h1 and h1[1]
    titles = re.findall(r"<path [^>]*><title>(.*?)</title>", page, re.S)
    assert titles and all(re.match(r"[^:]*\S\u202f: ", t) for t in titles), titles[:3]
    await post_form(client, "/web/taskforce", "/web/lang", {"lang": "en", "next": "/web/taskforce"})
    page = html.unescape((await client.get("/web/taskforce", params={"province": "60000"})).text)
    assert "<h1>Task force dashboard: Liège</h1>" in page


async def test_the_region_map_is_in_the_api_too(client: AsyncClient, world: World) -> None:
    """The dashboard offers the region level; a task-force analyst asking the API for the same
    map (``/taskforce/saturation/map?level=region``) got a 422. The three regions, each as its
    provinces' polygons, with the figures and suppression of ``/taskforce/saturation``."""
    s = await seed_taskforce(world)
    for segment in ("all", "undocumented"):  # undocumented: one refuge in Wallonia, suppressed
        api = await api_map(client, s["tf"], level="region", segment=segment)
        assert set(api) == {"02000", "03000", "04000"}
        r = await client.get(
            "/taskforce/saturation",
            params={"level": "region", "segment": segment},
            headers=bearer(s["tf"]),
        )
        cells = {c["area"]["nis"]: c for c in r.json()["cells"] if c["kind"] == "all"}
        for nis, props in api.items():
            cell = cells[nis]
            assert props["level"] == "region" and props["name_fr"] == cell["area"]["nameFr"]
            assert props["suppressed"] == cell["suppressed"], (segment, nis)
            assert props["mergedInto"] == cell.get("mergedInto"), (segment, nis)
            for col in ("capacity", "occupied", "held", "free", "saturation", "coverage"):
                assert props[col] == cell[col], (segment, nis, col)
        if segment == "undocumented":
            wallonia = api["03000"]
            assert wallonia["suppressed"] and wallonia["capacity"] is None
            assert wallonia["mergedInto"] == "BE"
        else:
            assert api["03000"]["capacity"] == 61 and not api["03000"]["suppressed"]
    r = await client.get(
        "/taskforce/saturation/map", params={"level": "region"}, headers=bearer(s["tf"])
    )
    flanders = next(f for f in r.json()["features"] if f["properties"]["nis"] == "02000")
    assert flanders["geometry"]["type"] == "MultiPolygon"
    assert len(flanders["geometry"]["coordinates"]) >= 5  # its five provinces, at least
    # the same colours as the dashboard's region map
    await web_sign_in(client, s["tf"])
    areas = map_areas((await client.get("/web/taskforce", params={"level": "region"})).text)
    for nis, props in (await api_map(client, s["tf"], level="region")).items():
        assert areas[nis]["class"] == expected_class(props), nis
    # still a clear 4xx for a level with no shapes
    r = await client.get(
        "/taskforce/saturation/map", params={"level": "country"}, headers=bearer(s["tf"])
    )
    assert r.status_code in (400, 422) and "level" in r.text
    # and the OpenAPI document names the three levels
    doc = (await client.get("/schema/openapi.json")).json()
    params = doc["paths"]["/taskforce/saturation/map"]["get"]["parameters"]
    level = next(p for p in params if p["name"] == "level")
    assert set(level["schema"]["enum"]) == {"region", "province", "arrondissement"}


async def test_a_suppressed_planner_says_why(client: AsyncClient, world: World) -> None:
    """On the demo data the only scheme ending soon is a secret refuge, so every planner row
    read "suppressed" with no reason given: to a new analyst the planner looked broken. The
    page and the API now say why (too few secret-address schemes, or figures that could be
    worked out from others: suppressed so no secret place is singled out), without showing
    more."""
    s = await seed_taskforce(world)
    await world.facility(
        "Refuges Canary",
        "CANARYENDING",
        municipality=LIEGE,
        planned_end=world.clock.now() + timedelta(days=10),
        pools=[PoolCreate(label="Beds", units_total=6, units_occupied=5)],
    )
    api = await client.get("/taskforce/redirection", params={"days": 30}, headers=bearer(s["tf"]))
    assert api.status_code == 200
    body = api.json()
    (area,) = body["areas"]
    assert area["suppressed"] and area["occupants"] is None and area["freeElsewhere"] is None
    assert body["k"] == 3
    assert "secret" in body["suppressionNote"] and "fewer than 3" in body["suppressionNote"]
    await web_sign_in(client, s["tf"])
    for lang, words in (("en", "secret address"), ("fr", "adresse secrète")):
        client.cookies.set("abri_lang", lang, path="/web")
        page = (await client.get("/web/taskforce")).text
        planner = re.search(
            r'<section class="card" aria-labelledby="planner-h">.*?</section>', page, re.S
        )
        assert planner and 'id="tf-planner"' in planner[0]
        why = re.search(r'<p class="hint" id="tf-planner-suppressed">(.*?)</p>', planner[0], re.S)
        assert why, planner[0]
        assert words in html.unescape(why[1]) and "3" in why[1], why[1]
        assert "CANARY" not in page.upper()
    # nothing suppressed: no such note, in the page or the API
    r = await client.get("/taskforce/redirection", params={"days": 3}, headers=bearer(s["tf"]))
    assert r.json()["areas"] == [] and r.json()["suppressionNote"] is None
