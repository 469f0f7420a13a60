"""The task force's days, weeks and months are Belgian ones (Europe/Brussels, with summer
time), on SQLite and PostgreSQL: a search at half past midnight on 1 December in Brussels
(23:30 UTC on 30 November) is December's, a census day ends at midnight in Brussels. Many
searches for a refuge come around midnight, so UTC periods moved them to the day, week or
month before in the minister's weekly figures."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import insert

from api.web.controllers import local_when
from capacity import snapshots
from capacity.commands import PoolCreate
from capacity.models import UnmetDemand
from capacity.settings import Settings
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer


def search(at: datetime) -> dict[str, Any]:
    return dict(
        at=at,
        requester_kind="police",
        need="ipv",
        arrondissement_nis="62000",
        province_nis="60000",
        region_nis="03000",
        household_shape="1A+2C",
        segments={"undocumented": False, "withChildren": True, "noIncome": False},
        top_reasons=["no_room"],
        episode_hash=None,
    )


async def three_refuges(world: World) -> None:
    await world.operator("Refuges", "shelter_operator")
    for i in range(3):
        await world.facility(
            "Refuges",
            f"Refuge {i}",
            municipality="62063",
            pools=[PoolCreate(label="Beds", units_total=10, units_occupied=4)],
        )


async def unmet(client: AsyncClient, h: dict[str, str], period: str, **extra: str) -> Any:
    params = {
        "level": "province",
        "by": "reason",
        "period": period,
        "from": "2026-05-01T00:00:00Z",
        "to": "2026-12-31T00:00:00Z",
        **extra,
    }
    return await client.get("/taskforce/unmet-demand", params=params, headers=h)


async def test_unmet_demand_periods_are_brussels_days_weeks_and_months(
    client: AsyncClient, world: World
) -> None:
    await world.operator("TF", "taskforce")
    h = bearer(await world.token("TF", "taskforce"))
    world.clock.set(datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    # 00:30 on Tuesday 1 December in Brussels (winter, UTC+1) and 00:30 on Monday 15 June
    # (summer, UTC+2): three searches each.
    december = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    june = datetime(2026, 6, 14, 22, 30, tzinfo=UTC)
    async with world.db.write() as s:
        await s.execute(insert(UnmetDemand), [search(t) for t in (december, june) for _ in "abc"])

    def liege(r: Any) -> dict[str, str]:
        assert r.status_code == 200, r.text
        rows = csv.DictReader(io.StringIO(r.text))
        return {
            x["period"]: x["count"] for x in rows if x["nis"] == "60000" and x["value"] == "all"
        }

    expected = {
        "day": {"2026-06-15": "3", "2026-12-01": "3"},
        "week": {"2026-06-15": "3", "2026-11-30": "3"},  # weeks start on Monday
        "month": {"2026-06-01": "3", "2026-12-01": "3"},
    }
    for period, want in expected.items():
        assert liege(await unmet(client, h, period, format="csv")) == want, period
    # JSON: the instant each period starts (UTC, as every time the API writes)
    r = await unmet(client, h, "month")
    starts = {c["period"] for c in r.json()["cells"] if c["area"]["nis"] == "60000"}
    assert starts == {"2026-05-31T22:00:00Z", "2026-11-30T23:00:00Z"}
    # The dashboard's table (last 30 days, by month) says December too.
    await world.operator("Admin", "admin")
    await web_sign_in(client, await world.token("Admin", "admin"))
    client.cookies.set("abri_lang", "en", path="/web")
    page = await client.get("/web/taskforce")
    assert page.status_code == 200
    assert "<td>2026-12</td>" in page.text and "<td>2026-11</td>" not in page.text


async def test_the_daily_census_dates_are_brussels_days(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    await three_refuges(world)
    await world.operator("TF", "taskforce")
    h = bearer(await world.token("TF", "taskforce"))
    # 00:30 on 15 January in Brussels: the night of the 14th to the 15th, after midnight
    await snapshots.take_snapshot(world.db, settings, datetime(2026, 1, 14, 23, 30, tzinfo=UTC))
    world.clock.set(datetime(2026, 1, 15, 1, 30, tzinfo=UTC))
    r = await client.get(
        "/taskforce/exports/daily-census",
        params={"level": "province", "from": "2026-01-14T00:00:00Z"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    dates = {x["date"] for x in csv.DictReader(io.StringIO(r.text)) if x["area_nis"] == "60000"}
    assert dates == {"2026-01-15"}
    # "Today" is the Brussels day: at 23:30 there (22:30 UTC) the snapshot is today's; at
    # 00:30 on the 16th there (23:30 UTC on the 15th) today has live figures, no snapshot.
    world.clock.set(datetime(2026, 1, 15, 22, 30, tzinfo=UTC))
    r = await client.get(
        "/taskforce/exports/daily-census",
        params={"level": "province", "from": "2026-01-14T00:00:00Z"},
        headers=h,
    )
    dates = {x["date"] for x in csv.DictReader(io.StringIO(r.text)) if x["area_nis"] == "60000"}
    assert dates == {"2026-01-15"}
    world.clock.set(datetime(2026, 1, 15, 23, 30, tzinfo=UTC))
    r = await client.get(
        "/taskforce/exports/daily-census",
        params={"level": "province", "from": "2026-01-14T00:00:00Z"},
        headers=h,
    )
    dates = {x["date"] for x in csv.DictReader(io.StringIO(r.text)) if x["area_nis"] == "60000"}
    assert dates == {"2026-01-15", "2026-01-16"}


async def test_the_dashboard_tells_the_time_in_brussels(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """ "As of" and the trend chart's dates are Belgian, as on every other page: at 00:30 in
    Brussels the dashboard said "as of" the day before, 23:30 UTC, and ended its chart there."""
    await three_refuges(world)
    await world.operator("Admin", "admin")
    token = await world.token("Admin", "admin")
    for now, shown, day in (
        (datetime(2026, 1, 14, 23, 30, tzinfo=UTC), "2026-01-15 00:30", "2026-01-15"),
        (datetime(2026, 7, 1, 22, 30, tzinfo=UTC), "2026-07-02 00:30", "2026-07-02"),
    ):
        world.clock.set(now)
        await snapshots.take_snapshot(world.db, settings, now)  # a point for the chart
        client.cookies.clear()
        await web_sign_in(client, token)
        for lang, said in (
            ("en", "as of {} (Belgian time)"),
            ("fr", "au {} (heure belge)"),
            ("nl", "op {} (Belgische tijd)"),
            ("de", "Stand {} (belgische Zeit)"),
        ):
            client.cookies.set("abri_lang", lang, path="/web")
            r = await client.get("/web/taskforce")
            assert r.status_code == 200, r.text
            page = html.unescape(r.text)
            # the day and time in Brussels, written as the reader's language writes them
            assert shown[11:] in local_when(now, lang, now)
            assert said.format(local_when(now, lang, now)) in page, lang
            end = re.search(r'<text class="date end"[^>]*>([^<]+)</text>', page)
            assert end and end.group(1) == day
