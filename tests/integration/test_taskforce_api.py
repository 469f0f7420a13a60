"""Task-force API on SQLite and PostgreSQL: aggregates (JSON, CSV) with coverage and
suppression, snapshots and series, unmet demand, exports, redirection planner, map."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import insert, select, update

from capacity import snapshots
from capacity.commands import PoolCreate
from capacity.models import Hold, Pool, SaturationRun, UnmetDemand
from capacity.settings import Settings
from placement.policy import AccessPolicy
from tests.conftest import TEST_EPISODE, World, bearer

# Province of Liège (60000): arrondissements Huy, Liège, Verviers, Waremme.
HUY, LIEGE, VERVIERS, WAREMME = "61003", "62003", "63001", "64008"


async def seed(world: World) -> dict[str, Any]:
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Hotels", "hotel_partner")
    await world.operator("TF", "taskforce")
    await world.operator("Line", "helpline")
    now = world.clock.now()
    facs = []
    # Liège arrondissement: three secret refuges (shown), one accepts undocumented.
    for i in range(3):
        facs.append(
            await world.facility(
                "Refuges",
                f"Refuge L{i}",
                municipality=LIEGE,
                policy=AccessPolicy(accepts_undocumented=i == 0),
                pools=[PoolCreate(label="Beds", units_total=10, units_occupied=4)],
            )
        )
    # Verviers: three secret refuges. Huy: ONE secret refuge (must never be readable).
    for i in range(3):
        facs.append(
            await world.facility(
                "Refuges",
                f"Refuge V{i}",
                municipality=VERVIERS,
                pools=[
                    PoolCreate(
                        label="Family",
                        unit_kind="family_room",
                        places_per_unit=4,
                        units_total=2,
                        units_occupied=1,
                    )
                ],
            )
        )
    lone = await world.facility(
        "Refuges",
        "Refuge Huy Secret",
        municipality=HUY,
        pools=[PoolCreate(label="Beds", units_total=7, units_occupied=6)],
    )
    # Waremme: a public requisitioned hotel closing in 5 days.
    hotel = await world.facility(
        "Hotels",
        "Hotel Requisition W",
        kind="crisis_hotel",
        municipality=WAREMME,
        secret=False,
        planned_end=now + timedelta(days=5),
        policy=AccessPolicy(accepts_undocumented=True),
        pools=[
            PoolCreate(
                label="Rooms",
                unit_kind="room",
                places_per_unit=2,
                units_total=20,
                units_occupied=15,
            )
        ],
    )
    return {
        "tf": await world.token("TF", "taskforce"),
        "line": await world.token("Line", "helpline"),
        "lone": lone,
        "hotel": hotel,
        "facs": facs,
    }


def cells_by_nis(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["area"]["nis"]: c for c in body["cells"]}


async def test_saturation_json_csv_coverage_and_suppression(
    client: AsyncClient, world: World
) -> None:
    s = await seed(world)
    h = bearer(s["tf"])
    r = await client.get("/taskforce/saturation?level=arrondissement", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"] == "places" and body["k"] == 3
    cells = cells_by_nis(body)
    # Huy holds one secret refuge: suppressed. Waremme holds one (public) hotel: also below k.
    assert cells["61000"]["suppressed"] and cells["61000"]["occupied"] is None
    assert cells["61000"]["mergedInto"] == "60000"
    assert cells["64000"]["suppressed"]
    # Complementary suppression: Liège or Verviers (3 refuges each) is suppressed too, or the
    # province minus the published arrondissements would give Huy's refuge away.
    liege, verviers = cells["62000"], cells["63000"]
    assert liege["suppressed"] != verviers["suppressed"]
    shown = liege if not liege["suppressed"] else verviers
    if shown is liege:
        assert shown["capacity"] == 30 and shown["occupied"] == 12 and shown["free"] == 18
        assert shown["saturation"] == 0.4
    else:
        assert shown["capacity"] == 24 and shown["occupied"] == 12  # places, not units
    assert shown["coverage"] == 1.0 and shown["facilities"] == 3
    prov = cells_by_nis(
        (await client.get("/taskforce/saturation?level=province", headers=h)).json()
    )["60000"]
    assert not prov["suppressed"]  # 7 secret refuges
    published = [c for n, c in cells.items() if n.startswith("6") and not c["suppressed"]]
    assert prov["occupied"] - sum(c["occupied"] for c in published) != 6
    # Segment differencing: 'undocumented' in the province has one secret refuge (and the
    # public hotel): suppressed.
    und = cells_by_nis(
        (
            await client.get("/taskforce/saturation?level=province&segment=undocumented", headers=h)
        ).json()
    )["60000"]
    assert und["suppressed"]
    # CSV, both ways of asking.
    for kwargs in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        hh = {**h, **kwargs.get("headers", {})}
        r = await client.get(
            "/taskforce/saturation",
            params={"level": "arrondissement", **kwargs.get("params", {})},
            headers=hh,
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        # one charset parameter: 'text/csv; charset=utf-8; charset=utf-8' repeats it (RFC 9110)
        assert r.headers["content-type"] == "text/csv; charset=utf-8", r.headers
        rows = list(csv.DictReader(io.StringIO(r.text)))
        row = next(x for x in rows if x["nis"] == shown["area"]["nis"])
        assert row["capacity"] == str(shown["capacity"]) and row["coverage"] == "1.0"
        # names in the three languages, as the JSON gives them (German for Eupen's analysts)
        assert (row["name_fr"], row["name_nl"], row["name_de"]) == (
            shown["area"]["nameFr"],
            shown["area"]["nameNl"],
            shown["area"]["nameDe"],
        )
        assert next(x for x in rows if x["nis"] == "61000")["occupied"] == ""
    # Stale data is unknown, not free: age the Liège pools.
    world.clock.advance(hours=13)
    cells = cells_by_nis(
        (await client.get("/taskforce/saturation?level=arrondissement", headers=h)).json()
    )
    aged = cells[shown["area"]["nis"]]
    assert aged["stale"] == shown["capacity"] and aged["free"] == 0
    assert aged["coverage"] == 0.0 and aged["saturation"] is None
    # Only the task force and admins.
    r = await client.get("/taskforce/saturation", headers=bearer(s["line"]))
    assert r.status_code == 403
    # Never an alias of a secret refuge, anywhere.
    for path in (
        "/taskforce/saturation?level=arrondissement",
        "/taskforce/saturation/map?level=arrondissement",
        "/taskforce/exports/hsds/service-capacity",
        "/taskforce/redirection?days=30",
    ):
        text = (await client.get(path, headers=h)).text
        assert "Refuge" not in text, path


async def test_snapshots_series_downsampling_and_census(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    s = await seed(world)
    h = bearer(s["tf"])
    start = world.clock.now()
    n = await snapshots.take_snapshot(world.db, settings, start)
    assert n > 0
    assert await snapshots.take_snapshot(world.db, settings, start) == 0  # idempotent per bucket
    async with world.db.write() as sess:
        await sess.execute(update(Pool).values(units_occupied=Pool.units_occupied + 1))
    world.clock.advance(minutes=15)
    await snapshots.take_snapshot(world.db, settings, world.clock.now())
    r = await client.get(
        "/taskforce/saturation/series",
        params={
            "level": "province",
            "nis": "60000",
            "from": (start - timedelta(hours=1)).isoformat(),
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    pts = r.json()["areas"][0]["points"]
    assert [p["occupied"] for p in pts] == [60, 78]
    r = await client.get("/taskforce/saturation/series?level=province&format=csv", headers=h)
    assert r.status_code == 200 and "60000" in r.text
    row = next(x for x in csv.DictReader(io.StringIO(r.text)) if x["nis"] == "60000")
    assert (row["name_fr"], row["name_nl"], row["name_de"]) == ("Liège", "Luik", "Lüttich")
    # Census CSV: one row per day and area.
    r = await client.get("/taskforce/exports/daily-census?level=province", headers=h)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    row = next(x for x in rows if x["area_nis"] == "60000")
    assert row["occupied"] == "78" and row["date"] == world.clock.now().date().isoformat()
    # Downsampling: 15-min points older than 7 days become hourly, older than 90 daily (the
    # last of each Belgian day, what the census shows for it).
    runs = [start + timedelta(minutes=15 * i) for i in range(8)]  # 01:30 ... 03:15
    hourly = snapshots.thin(runs, start + timedelta(days=8))
    assert [t.strftime("%H:%M") for t in hourly] == ["01:45", "02:15", "02:30", "02:45", "03:15"]
    assert snapshots.thin(runs, start + timedelta(days=100)) == runs[:-1]
    async with world.db.write() as sess:
        for t in runs[2:]:
            await sess.execute(insert(SaturationRun).values(at=t, k=3, cells=0))
    assert await snapshots.downsample(world.db, start + timedelta(days=100)) == 7
    assert await snapshots.downsample(world.db, start + timedelta(days=100)) == 0
    async with world.db.read() as sess:
        left = (await sess.scalars(select(SaturationRun.at))).all()
    assert [t.replace(tzinfo=None) for t in left] == [runs[-1].replace(tzinfo=None)]


async def test_unmet_demand_with_suppression(client: AsyncClient, world: World) -> None:
    s = await seed(world)
    now = world.clock.now()
    rows = []
    for i in range(7):
        rows.append(
            dict(
                at=now - timedelta(hours=1),
                requester_kind="helpline",
                need="ipv",
                arrondissement_nis="62000",
                province_nis="60000",
                region_nis="03000",
                household_shape="1A+2C" if i < 5 else "1A",
                segments={"undocumented": i < 4, "withChildren": i < 5, "noIncome": False},
                top_reasons=["children_not_accepted" if i < 5 else "full"],
                episode_hash=None,
            )
        )
    rows.append(
        dict(
            at=now - timedelta(hours=1),
            requester_kind="police",
            need="ipv",
            arrondissement_nis="61000",
            province_nis="60000",
            region_nis="03000",
            household_shape="1A",
            segments={},
            top_reasons=["full"],
            episode_hash=None,
        )
    )
    async with world.db.write() as sess:
        await sess.execute(insert(UnmetDemand), rows)
    h = bearer(s["tf"])
    r = await client.get("/taskforce/unmet-demand?level=arrondissement&by=reason", headers=h)
    assert r.status_code == 200, r.text
    cells = {(c["area"]["nis"], c["value"]): c for c in r.json()["cells"]}
    assert cells[("62000", "full")]["suppressed"]  # 2 searches
    assert cells[("61000", "full")]["suppressed"]  # 1 search
    assert cells[("61000", "all")]["suppressed"]
    assert cells[("62000", "all")]["suppressed"]  # else province - 62000 = the lone search
    assert all(c["suppressed"] or c["count"] >= 3 for c in cells.values())
    r = await client.get("/taskforce/unmet-demand?level=province&by=shape", headers=h)
    prov = {(c["area"]["nis"], c["value"]): c for c in r.json()["cells"]}
    assert prov[("60000", "all")]["count"] == 8
    r = await client.get("/taskforce/unmet-demand?level=province&by=shape&format=csv", headers=h)
    assert r.status_code == 200 and "1A+2C" in r.text
    row = next(x for x in csv.DictReader(io.StringIO(r.text)) if x["nis"] == "60000")
    assert (row["name_fr"], row["name_nl"], row["name_de"]) == ("Liège", "Luik", "Lüttich")


async def test_redirection_planner_and_hsds(client: AsyncClient, world: World) -> None:
    s = await seed(world)
    hotel = s["hotel"]
    now = world.clock.now()
    line_op = await world.operator("Line2", "helpline")
    async with world.db.write() as sess:
        for i, segs in enumerate(
            (
                {"undocumented": True, "withChildren": True, "noIncome": True},
                {"undocumented": False, "withChildren": True, "noIncome": False},
            )
        ):
            await sess.execute(
                insert(Hold).values(
                    ref=f"HX{i}",
                    pool_id=hotel.pools[0].id,
                    facility_id=hotel.facility.id,
                    requester_operator_id=line_op,
                    requester_kind="helpline",
                    units=1,
                    state="arrived",
                    household=None,
                    segments=segs,
                    need="ipv",
                    idempotency_key=f"k{i}",
                    request_hash="x",
                    created_at=now,
                    deadline=now,
                    arrived_at=now,
                )
            )
    h = bearer(s["tf"])
    r = await client.get("/taskforce/redirection?days=7&level=province", headers=h)
    assert r.status_code == 200, r.text
    (area,) = r.json()["areas"]
    assert area["area"]["nis"] == "60000"
    (closing,) = area["closingPublic"]
    assert closing["alias"] == "Hotel Requisition W"
    assert closing["occupied"] == 30
    assert closing["bySegment"] == {"undocumented": 2, "withChildren": 4, "noIncome": 2}
    assert closing["segmentUnknown"] == 26
    assert area["closingSecret"] == "none"
    # Elsewhere in the province: 7 secret refuges (>= k), free places by segment.
    assert area["freeElsewhere"]["all"] == 18 + 12 + 1
    # only one secret refuge takes undocumented people: its free places are not shown apart
    assert area["freeElsewhere"]["undocumented"] is None
    assert area["freeElsewhere"]["withChildren"] == area["freeElsewhere"]["all"]
    r = await client.get("/taskforce/redirection?days=3", headers=h)
    assert r.json()["areas"] == []
    # HSDS: the public hotel with a municipality-level location; secret places without one.
    feed = (await client.get("/taskforce/exports/hsds/service-capacity", headers=h)).json()
    by_id = {x["id"]: x for x in feed["services"]}
    hot = by_id[f"abri:facility:{hotel.facility.ref}"]
    assert hot["service_capacity"][0]["maximum"] == 40
    assert hot["service_at_locations"][0]["location"]["addresses"] == []
    secret = by_id["abri:secret:60000:refuge"]
    assert secret["service_at_locations"] == []
    assert secret["service_capacity"][0]["maximum"] == 30 + 24 + 7


async def test_planner_counts_occupants_of_a_scheme_closed_to_admissions_and_paying_places(
    client: AsyncClient, world: World
) -> None:
    """A scheme that winds down is closed to new admissions, and its occupants are still
    there: they count (by the last report, flagged when it is stale). A paying place is no
    free place for a household without income, as in the matcher."""
    from capacity.models import Facility

    s = await seed(world)
    hotel = s["hotel"]
    await world.facility(
        "Refuges",
        "Paying P",
        municipality=LIEGE,
        policy=AccessPolicy(cost="paying", accepts_undocumented=True),
        pools=[PoolCreate(label="Beds", units_total=5, units_occupied=0)],
    )
    await world.facility(
        "Refuges",
        "Low threshold T",
        municipality=LIEGE,
        policy=AccessPolicy(low_threshold=True, requires_income=True),
        pools=[PoolCreate(label="Beds", units_total=3, units_occupied=0)],
    )
    long_ago = world.clock.now() - timedelta(days=10)
    async with world.db.write() as sess:
        await sess.execute(
            update(Facility)
            .where(Facility.id == hotel.facility.id)
            .values(status="closed_to_admissions", status_reason="Scheme ends")
        )
        await sess.execute(
            update(Pool)
            .where(Pool.facility_id == hotel.facility.id)
            .values(reported_at=long_ago, confirmed_at=long_ago)
        )
    r = await client.get("/taskforce/redirection?days=7&level=province", headers=bearer(s["tf"]))
    assert r.status_code == 200, r.text
    (area,) = r.json()["areas"]
    (closing,) = area["closingPublic"]
    assert closing["occupied"] == 30 and closing["occupiedFromStaleReports"] == 30
    assert closing["segmentUnknown"] == 30
    assert area["occupants"]["total"] == 30 and area["occupants"]["fromStaleReports"] == 30
    free = area["freeElsewhere"]
    assert free["all"] == 31 + 5 + 3
    # the paying place alone does not serve households without income: 'all - noIncome' would
    # be its free places, so that figure is hidden
    assert free["noIncome"] is None
    # the low-threshold place asks for no papers, so three secret places take undocumented
    # people (6 + 5 + 3 free); but the map shows the arrondissement of Liège (26 free) and
    # hides its undocumented cell: 26 - 14 would be the two other refuges' free places
    assert free["undocumented"] is None
    quality = area["freeElsewhereQuality"]
    assert quality == {"inService": 30 + 24 + 7 + 5 + 3, "stale": 0, "coverage": 1.0}
    # R36: a refuge whose figures went stale frees nothing in the count; the quality says so
    async with world.db.write() as sess:
        await sess.execute(
            update(Pool)
            .where(Pool.facility_id == s["facs"][0].facility.id)
            .values(reported_at=long_ago, confirmed_at=long_ago)
        )
    r = await client.get("/taskforce/redirection?days=7&level=province", headers=bearer(s["tf"]))
    (area,) = r.json()["areas"]
    assert area["freeElsewhere"]["all"] == 31 + 5 + 3 - 6
    assert area["freeElsewhereQuality"] == {"inService": 69, "stale": 10, "coverage": 0.8551}


async def test_map_joins_shapes_with_suppressed_figures(client: AsyncClient, world: World) -> None:
    s = await seed(world)
    r = await client.get("/taskforce/saturation/map?level=province", headers=bearer(s["tf"]))
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 11
    props = {f["properties"]["nis"]: f["properties"] for f in body["features"]}
    assert props["60000"]["capacity"] == 30 + 24 + 7 + 40 or props["60000"]["suppressed"]
    assert props["10000"]["capacity"] == 0 and not props["10000"]["suppressed"]


@pytest.mark.parametrize(
    "path", ["/taskforce/saturation?level=nowhere", "/taskforce/unmet-demand?by=x"]
)
async def test_bad_parameters_are_422_or_400(client: AsyncClient, world: World, path: str) -> None:
    s = await seed(world)
    r = await client.get(path, headers=bearer(s["tf"]))
    assert r.status_code in (400, 422)


async def test_briefing_follows_the_agenda_and_never_singles_out_a_refuge(
    client: AsyncClient, world: World
) -> None:
    """R38: demand signals, then capacity and saturation by area and segment, then unmet
    demand; JSON and CSV; the lone secret refuge of Huy cannot be read off, neither from the
    arrondissement cells nor by subtracting them from their province."""
    from capacity.models import Operator

    s = await seed(world)
    now = world.clock.now()
    async with world.db.read() as sess:
        line = await sess.scalar(select(Operator.id).where(Operator.name == "Line"))
    plan = [  # (facility view, need, state now)
        *((f, "ipv", "arrived") for f in s["facs"][:3]),  # Liège: 3 refuges
        (s["facs"][0], "family_violence", "declined"),
        (s["facs"][1], "ipv", "held"),  # past its deadline, not yet swept: counts as expired
        *((f, "homelessness", "released") for f in s["facs"][3:6]),  # Verviers: 3 refuges
        (s["lone"], "ipv", "arrived"),  # Huy: the lone secret refuge
        (s["lone"], "sexual_violence", "no_show"),
        (s["hotel"], "homelessness", "arrived"),  # Waremme: the public hotel
    ]
    rows = [
        dict(
            ref=f"BRF{i:05d}",
            pool_id=f.pools[0].id,
            facility_id=f.facility.id,
            requester_operator_id=line,
            requester_kind="helpline",
            units=1,
            state=state,
            household={},
            segments={},
            need=need,
            idempotency_key=f"briefing-{i:04d}",
            request_hash="x",
            created_at=now - timedelta(days=1),
            deadline=now - timedelta(hours=20),
            extensions=0,
        )
        for i, (f, need, state) in enumerate(plan)
    ]
    rows.append(
        {
            **rows[0],
            "ref": "BRFOLD01",
            "idempotency_key": "old",
            "created_at": now - timedelta(days=30),
        }
    )
    async with world.db.write() as sess:
        await sess.execute(insert(Hold), rows)
        await sess.execute(
            insert(UnmetDemand),
            [
                dict(
                    at=now - timedelta(hours=2),
                    requester_kind="police",
                    need="ipv",
                    arrondissement_nis="62000",
                    province_nis="60000",
                    region_nis="03000",
                    household_shape="1A+2C",
                    segments={"withChildren": True},
                    top_reasons=["children_not_accepted"],
                    episode_hash=None,
                )
                for _ in range(4)
            ]
            + [
                dict(
                    at=now - timedelta(hours=3),
                    requester_kind="helpline",
                    need="sexual_violence",
                    arrondissement_nis="62000",
                    province_nis="60000",
                    region_nis="03000",
                    household_shape="1A",
                    segments={},
                    top_reasons=["no_free_unit"],
                    episode_hash=None,
                )
                for _ in range(3)
            ],
        )
    h = bearer(s["tf"])
    r = await client.get("/taskforce/exports/briefing?level=arrondissement", headers=h)
    assert r.status_code == 200, r.text
    b = r.json()
    assert list(b)[:5] == ["asOf", "windowStart", "windowEnd", "level", "k"]
    demand = {d["area"]["nis"]: d for d in b["demand"]}
    assert demand["61000"]["suppressed"] and demand["61000"]["requested"] is None  # Huy
    # Huy alone is suppressed, so one more cell of the province must be (complementary
    # suppression): else Huy = province - the other arrondissements. The public hotel of
    # Waremme is known to the reader (it is listed by alias elsewhere), so hiding Waremme's
    # cell does not protect Huy.
    province = await client.get("/taskforce/exports/briefing?level=province", headers=h)
    liege_prov = {d["area"]["nis"]: d for d in province.json()["demand"]}["60000"]
    assert demand["64000"]["suppressed"]  # one facility, even a public one: fewer than k
    hidden = [a for a in ("62000", "63000") if demand[a]["suppressed"]]
    assert liege_prov["suppressed"] or hidden
    expected = {  # facilities, requested, ipv, arrived
        "62000": (3, 5, 4, 3),  # Liège: 3 refuges
        "63000": (3, 3, 0, 0),  # Verviers: 3 refuges
    }
    shown = [a for a in ("62000", "63000") if a not in hidden]
    assert shown, "one of the two can be shown"
    for nis in shown:
        d = demand[nis]
        got = (d["facilities"], d["requested"], d["byNeed"]["ipv"], d["outcomes"]["arrived"])
        assert got == expected[nis], (nis, d)
        assert sum(d["byNeed"].values()) == sum(d["outcomes"].values()) == d["requested"]
        if nis == "62000":
            assert d["outcomes"]["expired"] == 1 and d["outcomes"]["held"] == 0
    if not liege_prov["suppressed"]:
        assert liege_prov["requested"] == 11
    # 2. capacity: every area x (all + each segment), Huy's suppressed
    capacity = {(c["area"]["nis"], c["segment"]): c for c in b["capacity"]}
    assert capacity[("61000", "all")]["suppressed"]
    saturation = await client.get("/taskforce/saturation?level=arrondissement", headers=h)
    for nis, cell in cells_by_nis(saturation.json()).items():  # the same cube, the same cells
        assert capacity[(nis, "all")] == cell, nis
    und = await client.get(
        "/taskforce/saturation?level=arrondissement&segment=undocumented", headers=h
    )
    for nis, cell in cells_by_nis(und.json()).items():
        assert capacity[(nis, "undocumented")] == cell, nis
    assert {seg for (_n, seg) in capacity} == {
        "all",
        "undocumented",
        "women_with_children",
        "undocumented_women_with_children",
        "boys_over_12",
        "low_threshold",
        "free_of_charge",
    }
    # 1b and 3: the searches that found nothing, by need and by what blocked them
    assert {(u["area"]["nis"], u["value"]): u["count"] for u in b["unmetByNeed"]}[
        ("62000", "ipv")
    ] == 4
    assert ("62000", "children_not_accepted") in {
        (u["area"]["nis"], u["value"]) for u in b["unmetByReason"]
    }
    # ... and by who asked (R33: police and helplines are not merged)
    by_requester = {(u["area"]["nis"], u["value"]): u["count"] for u in b["unmetByRequester"]}
    assert by_requester[("62000", "police")] == 4 and by_requester[("62000", "helpline")] == 3
    r = await client.get(
        "/taskforce/unmet-demand?by=requester&level=arrondissement&period=month", headers=h
    )
    assert r.status_code == 200, r.text
    cells = [c for c in r.json()["cells"] if c["area"]["nis"] == "62000"]
    assert {c["value"]: c["count"] for c in cells} == {"all": 7, "helpline": 3, "police": 4}
    # CSV: one row per figure, in the agenda's order, nothing that names a refuge
    r = await client.get("/taskforce/exports/briefing?level=arrondissement&format=csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    sections = [row["section"] for row in table]
    assert sections.index("capacity") > max(i for i, x in enumerate(sections) if x == "demand")
    assert sections[-1] == "unmet"
    huy = [row for row in table if row["nis"] == "61000" and row["section"] == "demand"]
    assert huy and all(row["suppressed"] == "True" and row["value"] == "" for row in huy)
    assert {row["name_de"] for row in huy} == {"Huy"}
    assert "Refuge" not in r.text and "Huy Secret" not in r.text
    # the window: last week only (the 30-day-old hold is outside)
    r = await client.get("/taskforce/exports/briefing?level=country", headers=h)
    assert r.json()["demand"][0]["requested"] == len(plan)
    outcomes = r.json()["demand"][0]["outcomes"]
    assert outcomes["held"] == 0 and outcomes["expired"] == 1  # due, though not yet swept
    bad = await client.get("/taskforce/exports/briefing?level=street", headers=h)
    assert bad.status_code == 422 and bad.json()["errors"]
    assert (
        await client.get("/taskforce/exports/briefing", headers=bearer(s["line"]))
    ).status_code == 403


async def test_year_on_year_compares_the_same_month_across_years(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """R35: January last year against January this year, from the snapshots, with the same
    figures as the series; months without a snapshot are empty, not zero; bad areas are 422."""
    from datetime import datetime

    from capacity.models import Pool as PoolRow

    s = await seed(world)
    now = world.clock.now()  # 2026-01-15
    last_year = [
        datetime(2025, 1, 10, 12, tzinfo=now.tzinfo),
        datetime(2025, 1, 20, 12, tzinfo=now.tzinfo),
    ]
    for at in last_year:
        await snapshots.take_snapshot(world.db, settings, at)
    async with world.db.write() as sess:  # fuller this year
        await sess.execute(update(PoolRow).values(units_occupied=PoolRow.units_total))
    await snapshots.take_snapshot(world.db, settings, now - timedelta(days=1))
    h = bearer(s["tf"])
    r = await client.get(
        "/taskforce/saturation/year-on-year",
        params={"level": "province", "nis": "60000", "years": 2},
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["years"] == [2025, 2026] and body["area"]["nis"] == "60000"
    months = {(m["year"], m["month"]): m for m in body["months"]}
    assert len(months) == 12 + 1  # January 2025 to January 2026
    series = await client.get(
        "/taskforce/saturation/series",
        params={
            "level": "province",
            "nis": "60000",
            "from": "2025-01-01T00:00:00Z",
            "to": now.isoformat(),
            "resolution": "all",
        },
        headers=h,
    )
    points = series.json()["areas"][0]["points"]
    old = [p for p in points if p["at"].startswith("2025-01")]
    assert len(old) == 2 and months[(2025, 1)]["days"] == 2
    busy = sum(p["occupied"] + p["held"] for p in old)
    assert months[(2025, 1)]["saturation"] == round(busy / sum(p["fresh"] for p in old), 4)
    assert months[(2026, 1)]["saturation"] == 1.0 > months[(2025, 1)]["saturation"]
    assert months[(2025, 6)]["days"] == 0 and months[(2025, 6)]["saturation"] is None
    # Huy holds one refuge: every day suppressed, no figure, the days counted.
    r = await client.get(
        "/taskforce/saturation/year-on-year",
        params={"level": "arrondissement", "nis": "61000", "years": 2},
        headers=h,
    )
    huy = {(m["year"], m["month"]): m for m in r.json()["months"]}
    assert huy[(2025, 1)]["saturation"] is None and huy[(2025, 1)]["suppressedDays"] == 2
    csv_r = await client.get(
        "/taskforce/saturation/year-on-year",
        params={"level": "province", "nis": "60000", "years": 2, "format": "csv"},
        headers=h,
    )
    assert csv_r.headers["content-type"].startswith("text/csv") and "2025" in csv_r.text
    for bad in ({"level": "province", "nis": "62000"}, {"nis": "60000", "years": 11}):
        r = await client.get("/taskforce/saturation/year-on-year", params=bad, headers=h)
        assert r.status_code in (400, 422), (bad, r.text)
    r = await client.get(
        "/taskforce/saturation/year-on-year", params={"nis": "60000"}, headers=bearer(s["line"])
    )
    assert r.status_code == 403


@pytest.mark.parametrize("seed", range(4))
async def test_unmet_breakdowns_hide_the_same_totals(world: World, seed: int) -> None:
    """The same searches are published by shape, blocking rule, need and requester. A total
    (an area's, or a segment's) that one breakdown must hide is hidden in all four: else
    comparing two tables recovers a hidden count of 1 or 2 searches (a review found this
    between need and requester)."""
    import random

    from capacity import taskforce_service as tf

    rng = random.Random(seed)
    places = [  # (region, province, arrondissement)
        ("03000", "60000", "62000"),
        ("03000", "60000", "63000"),
        ("03000", "80000", "81000"),
        ("03000", "90000", "91000"),
        ("02000", "10000", "11000"),
    ]
    now = world.clock.now()
    rows = []
    for _ in range(45):
        reg, prov, arr = rng.choice(places)
        rows.append(
            dict(
                at=now - timedelta(hours=rng.randint(1, 100)),
                requester_kind=rng.choice(["police", "helpline", "caw", "sac"]),
                need=rng.choice(["ipv", "homelessness", "sexual_violence"]),
                arrondissement_nis=arr,
                province_nis=prov,
                region_nis=reg,
                household_shape=rng.choice(["1A", "1A+1C", "1A+2C", "2A+3C"]),
                segments={f: rng.random() < 0.4 for f in tf.UNMET_FLAGS},
                top_reasons=[rng.choice(["no_room", "boy_too_old", "documents_required"])],
                episode_hash=None,
            )
        )
    async with world.db.write() as sess:
        await sess.execute(insert(UnmetDemand), rows)
    start, end = now - timedelta(days=30), now + timedelta(hours=1)
    for level in ("region", "province", "arrondissement"):
        for segment in ("all", *tf.UNMET_FLAGS):
            hidden = {}
            for by in tf.UNMET_BY:
                cells = await tf.unmet_demand(
                    world.db,
                    k=3,
                    level=level,
                    period="total",
                    by=by,
                    segment=segment,
                    start=start,
                    end=end,
                )
                hidden[by] = {c.nis: c.suppressed for c in cells if c.value == "all"}
                for c in cells:
                    assert c.suppressed or c.count is None or c.count >= 3 or c.count == 0
            first = hidden["reason"]
            for by, h in hidden.items():
                assert h == first, (level, segment, by)


async def test_hold_demand_counts_households_not_holds_and_who_asked(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """R33: a household moved from one refuge to another (a hold released, another taken)
    under the same episodeToken is one household in the task force's hold demand; the same
    token from another operator is another household; a hold without a token counts as one.
    Police and helplines are not merged. The token is never stored, and its hash goes with the
    retention purge."""
    from capacity import retention
    from capacity.models import Operator
    from placement.holds_service import episode_hash

    s = await seed(world)
    await world.operator("Zone", "police")
    line, zone = bearer(s["line"]), bearer(await world.token("Zone", "police"))
    liege = [f.pools[0].ref for f in s["facs"][:3]]
    household = {"adults": [{"gender": "female"}], "residenceStatus": "documented"}

    async def hold(h: dict[str, str], key: str, pool: str, token: str | None) -> Any:
        body: dict[str, Any] = {"poolRef": pool, "household": household, "need": "ipv"}
        if token is not None:
            body["episodeToken"] = token
        return await client.post("/holds", headers={**h, "Idempotency-Key": key}, json=body)

    first = await hold(line, "move-0001", liege[0], "family-A")
    assert first.status_code == 201, first.text
    assert (await client.post(f"/holds/{first.json()['ref']}/release", headers=line)).is_success
    assert (await hold(line, "move-0002", liege[1], "family-A")).status_code == 201
    assert (await hold(line, "other-0001", liege[2], None)).status_code == 201
    assert (await hold(zone, "zone-0001", liege[2], "family-A")).status_code == 201
    # a replay is the same hold; the same key with another episode is another request
    assert (await hold(line, "move-0002", liege[1], "family-A")).status_code == 200
    assert (await hold(line, "move-0002", liege[1], "family-B")).status_code == 422
    world.clock.advance(minutes=1)

    r = await client.get(
        "/taskforce/exports/briefing?level=arrondissement", headers=bearer(s["tf"])
    )
    assert r.status_code == 200, r.text
    d = {x["area"]["nis"]: x for x in r.json()["demand"]}["62000"]
    assert (d["requested"], d["households"]) == (4, 3)
    assert d["byRequester"]["helpline"] == 3 and d["byRequester"]["police"] == 1
    assert sum(d["byRequester"].values()) == d["requested"]
    country = await client.get("/taskforce/exports/briefing?level=country", headers=bearer(s["tf"]))
    (all_be,) = country.json()["demand"]
    assert (all_be["requested"], all_be["households"]) == (4, 3)
    csv_rows = await client.get(
        "/taskforce/exports/briefing?level=country&format=csv", headers=bearer(s["tf"])
    )
    table = list(csv.DictReader(io.StringIO(csv_rows.text)))
    assert {(r["measure"], r["breakdown"], r["value"]) for r in table} >= {
        ("households_holding", "", "3"),
        ("holds_requested", "requester:police", "1"),
    }

    async with world.db.read() as sess:
        hashes = [h for h in (await sess.scalars(select(Hold.episode_hash))).all() if h]
        line_id = await sess.scalar(select(Operator.id).where(Operator.name == "Line"))
        zone_id = await sess.scalar(select(Operator.id).where(Operator.name == "Zone"))
    # the token is kept only as a hash with its operator: the same token, two households
    assert sorted(hashes) == sorted(
        [episode_hash(TEST_EPISODE, line_id, "family-A")] * 2
        + [episode_hash(TEST_EPISODE, zone_id, "family-A")]
    )
    # once the holds ended long enough ago, the hash gives way to a random mark shared by the
    # episode's holds: nothing ties them to the token any longer, the counts stay the same
    async with world.db.write() as sess:
        await sess.execute(update(Hold).values(state="released", closed_at=world.clock.now()))
    world.clock.advance(days=settings.retention_days + 1)
    await retention.purge(world.db, now=world.clock.now(), days=settings.retention_days)
    async with world.db.read() as sess:
        marks = [h for h in (await sess.scalars(select(Hold.episode_hash))).all() if h]
    assert len(marks) == 3 and len(set(marks)) == 2 and not set(marks) & set(hashes)
    assert all(m.startswith("#") for m in marks)
    week = (world.clock.now() - timedelta(days=settings.retention_days + 3)).isoformat()
    r = await client.get(
        "/taskforce/exports/briefing",
        params={"level": "country", "from": week, "to": world.clock.now().isoformat()},
        headers=bearer(s["tf"]),
    )
    assert r.status_code == 200, r.text
    (again,) = r.json()["demand"]
    assert (again["requested"], again["households"]) == (4, 3)
    await retention.purge(world.db, now=world.clock.now(), days=settings.retention_days)
    async with world.db.read() as sess:  # a second purge leaves the marks alone
        assert sorted(h for h in (await sess.scalars(select(Hold.episode_hash))).all() if h) == (
            sorted(marks)
        )


def test_hold_demand_has_a_column_for_every_kind_of_requester() -> None:
    """An administrator's holds (the console is open to admins) are counted too: every kind a
    hold can be made under has its byRequester figure, so they add up to holds requested."""
    from capacity.taskforce_service import REQUESTERS
    from placement.holds import DURATIONS

    assert set(DURATIONS) <= set(REQUESTERS)


async def test_exports_name_places_as_people_there_do(client: AsyncClient, world: World) -> None:
    """The HSDS feed and the daily census named every place in French: a Flemish social map
    read "Anvers" for a night shelter in Antwerpen, a census row "Flandre orientale". They now
    carry the name of the place in its own language(s), as the English pages do."""
    from capacity.commands import PoolCreate as Pool_

    await world.operator("Admin", "admin")
    await world.operator("CAW", "shelter_operator")
    tf = await world.operator("TF", "taskforce")
    assert tf
    await world.facility(
        "CAW",
        "Nachtopvang A",
        municipality="11002",
        kind="night_shelter",
        secret=False,
        pools=[Pool_(label="Beds", units_total=20)],
    )
    h = bearer(await world.token("TF", "taskforce"))
    feed = (await client.get("/taskforce/exports/hsds/service-capacity", headers=h)).json()
    (svc,) = [x for x in feed["services"] if x["name"] == "Nachtopvang A"]
    assert svc["service_at_locations"][0]["location"]["name"] == "Antwerpen"
    r = await client.get("/taskforce/exports/daily-census?level=province", headers=h)
    names = {x["area_nis"]: x["area_name"] for x in csv.DictReader(io.StringIO(r.text))}
    assert names["10000"] == "Antwerpen", names


async def test_a_window_outside_2000_2100_is_a_422_not_a_500(
    client: AsyncClient, world: World
) -> None:
    """A year mistyped into `from`/`to` (year 1 at +01:00, year 9999 at -01:00: before or
    after every instant Python can write in UTC) is refused with the field named, as the
    other instants of the API are, rather than overflowing while the query is bound."""
    await world.operator("TF", "taskforce")
    h = bearer(await world.token("TF", "taskforce"))
    windows = (
        {"from": "0001-01-01T00:00:00+01:00", "to": "0001-01-02T00:00:00+01:00"},
        {"from": "9999-12-31T00:00:00-01:00", "to": "9999-12-31T23:00:00-01:00"},
    )
    for params in windows:
        for path in (
            "/taskforce/unmet-demand",
            "/taskforce/exports/daily-census",
            "/taskforce/exports/briefing",
            "/taskforce/saturation/series",
        ):
            r = await client.get(path, params=params, headers=h)
            assert r.status_code == 422, (path, params, r.text)
            assert r.json()["field"] == "from", r.json()
