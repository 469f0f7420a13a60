"""Privacy: the task-force answers must not single out a secret refuge when they
are combined, and the safety promises hold on paths the canary test does not reach."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from httpx import AsyncClient

from capacity.commands import PoolCreate
from capacity.settings import Settings
from placement.policy import AccessPolicy
from tests.conftest import World, bearer

LIEGE = "62003"  # arrondissement of Liège (62000), province 60000


async def _sat(client: AsyncClient, h: dict[str, str], kind: str, level: str) -> dict[str, Any]:
    r = await client.get(f"/taskforce/saturation?level={level}&kind={kind}", headers=h)
    assert r.status_code == 200, r.text
    return {c["area"]["nis"]: c for c in r.json()["cells"]}


async def test_planner_free_elsewhere_cannot_be_differenced_with_the_map(
    client: AsyncClient, world: World
) -> None:
    """The planner's 'free elsewhere' splits an area by 'closes within N days', a cut the
    saturation map never checked. Here: three secret refuges, one secret crisis hotel X that
    stays, and three secret schemes closing in 5 days (one of kind 'other', two crisis hotels).
    The map hides crisis hotels and 'other' (1 and 3 secret places, complementary), shows the
    refuges; the planner shows the free places of X + the refuges; the difference is X alone."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("TF", "taskforce")
    now = world.clock.now()
    for i in range(3):
        await world.facility(
            "Refuges",
            f"Refuge {i}",
            municipality=LIEGE,
            pools=[PoolCreate(label="Beds", units_total=10, units_occupied=5)],
        )
    await world.facility(  # X: 7 free places, never to be read alone
        "Refuges",
        "Hotel X",
        kind="crisis_hotel",
        municipality=LIEGE,
        pools=[PoolCreate(label="Beds", units_total=9, units_occupied=2)],
    )
    for i, kind in enumerate(("other", "crisis_hotel", "crisis_hotel")):
        await world.facility(
            "Refuges",
            f"Scheme {i}",
            kind=kind,
            municipality=LIEGE,
            planned_end=now + timedelta(days=5),
            pools=[PoolCreate(label="Beds", units_total=4, units_occupied=1)],
        )
    h = bearer(await world.token("TF", "taskforce"))
    refuges = (await _sat(client, h, "refuge", "arrondissement"))["62000"]
    hotels = (await _sat(client, h, "crisis_hotel", "arrondissement"))["62000"]
    assert hotels["suppressed"]  # the map protects X (with the closing hotels)
    r = await client.get("/taskforce/redirection?days=14&level=arrondissement", headers=h)
    assert r.status_code == 200, r.text
    (area,) = r.json()["areas"]
    assert not refuges["suppressed"] and refuges["free"] == 15
    free = area["freeElsewhere"]
    assert free is None or free["all"] is None or free["all"] - refuges["free"] != 7, (
        "the planner's free places elsewhere minus the map's refuges give hotel X's alone"
    )
    # the closing schemes are three secret places: their occupants stay an aggregate
    assert area["occupants"] is None or area["occupants"]["total"] == 3


async def test_planner_segment_figure_is_not_one_the_map_hides(
    client: AsyncClient, world: World
) -> None:
    """Province of Liège: the arrondissement of Liège has five secret places, three of which
    take undocumented people (free 6 + 5 + 3); no other place of the province does. The map
    shows the arrondissement (26 free) and hides its 'undocumented' cell, since the rest would
    be two refuges. The planner (province level, a public hotel closing) published
    'undocumented: 14' for the province: 26 - 14 = the two refuges' free places."""
    from tests.integration.test_taskforce_api import LIEGE as LIEGE_MUN
    from tests.integration.test_taskforce_api import seed

    s = await seed(world)
    await world.facility(
        "Refuges",
        "Paying P",
        municipality=LIEGE_MUN,
        policy=AccessPolicy(cost="paying", accepts_undocumented=True),
        pools=[PoolCreate(label="Beds", units_total=5, units_occupied=0)],
    )
    await world.facility(
        "Refuges",
        "Low threshold T",
        municipality=LIEGE_MUN,
        policy=AccessPolicy(low_threshold=True, requires_income=True),
        pools=[PoolCreate(label="Beds", units_total=3, units_occupied=0)],
    )
    h = bearer(s["tf"])
    arr = (await _sat(client, h, "all", "arrondissement"))["62000"]
    assert not arr["suppressed"] and arr["free"] == 26
    r = await client.get(
        "/taskforce/saturation?level=arrondissement&segment=undocumented", headers=h
    )
    assert {c["area"]["nis"]: c for c in r.json()["cells"]}["62000"]["suppressed"]
    r = await client.get("/taskforce/redirection?days=7&level=province", headers=h)
    (area,) = r.json()["areas"]
    assert area["freeElsewhere"]["all"] is not None  # the safe totals stay
    undocumented = area["freeElsewhere"]["undocumented"]
    assert undocumented is None or arr["free"] - undocumented != 12, (
        "the map's arrondissement minus the planner's 'undocumented' gives two refuges"
    )


async def test_series_of_an_area_of_another_level_is_refused_not_zero(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """The arrondissement of Liège asked at level province (the default level): the answer
    was 200 with every point 'facilities 0, capacity 0', as if the area had no place at all,
    where year-on-year refuses the same question with a 422."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("TF", "taskforce")
    for i in range(3):
        await world.facility("Refuges", f"Refuge {i}", municipality=LIEGE)
    from capacity import snapshots

    await snapshots.take_snapshot(world.db, settings, world.clock.now())
    h = bearer(await world.token("TF", "taskforce"))
    ok = await client.get("/taskforce/saturation/series?level=arrondissement&nis=62000", headers=h)
    assert ok.status_code == 200 and ok.json()["areas"][0]["points"][0]["capacity"] == 21
    for query in ("level=province&nis=62000", "level=region&nis=60000", "level=province&nis=BE"):
        for fmt in ("", "&format=csv"):
            r = await client.get(f"/taskforce/saturation/series?{query}{fmt}", headers=h)
            assert r.status_code == 422, (query, fmt, r.text[:200])
    r = await client.get("/taskforce/exports/daily-census?level=province", headers=h)
    assert r.status_code == 200


async def test_no_route_lets_one_operator_reach_another_operators_objects(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """Every API route with an object in its path, called by operator A's staff and helpline
    tokens with operator B's objects (facility, pool, hold, standing request, link): never a
    2xx, never B's alias, hold or household; and A's lists do not carry B's objects."""
    import re

    from api.app import create_app
    from tests.integration.test_canary_addresses import all_routes

    await world.operator("Shelters A", "shelter_operator")
    await world.operator("Shelters B", "shelter_operator")
    await world.operator("Line A", "helpline")
    await world.operator("Line B", "helpline")
    fa = await world.facility(  # full: B's standing request must not be offered a place here
        "Shelters A",
        "ALPHAALIAS",
        pools=[PoolCreate(label="Beds", units_total=5, units_occupied=5)],
    )
    fb = await world.facility(
        "Shelters B", "BRAVOALIAS", pools=[PoolCreate(label="Beds", units_total=5)]
    )
    tok = {
        "staff_a": await world.token("Shelters A", "staff"),
        "staff_b": await world.token("Shelters B", "staff"),
        "line_a": await world.token("Line A", "helpline"),
        "line_b": await world.token("Line B", "helpline"),
    }
    hh = {"adults": [{"gender": "female"}], "children": [{"age": 9}]}
    r = await client.post(
        "/holds",
        json={
            "poolRef": fb.pools[0].ref,
            "need": "ipv",
            "household": hh,
            "callback": "BRAVOCALLBACK",
        },
        headers={**bearer(tok["line_b"]), "Idempotency-Key": "bravo-hold-1"},
    )
    assert r.status_code == 201, r.text
    hold_b = r.json()["ref"]
    r = await client.post(
        "/standing-requests",
        json={
            "search": {"household": hh, "need": "ipv", "nights": 400 // 400},
            "callback": "BRAVOCALLBACK",
        },
        headers=bearer(tok["line_b"]),
    )
    standing_b = r.json().get("ref") if r.status_code == 201 else "ZZZZ-ZZZZ"
    r = await client.post(
        f"/staff/facilities/{fb.facility.id}/links",
        json={"label": "Night", "hours": 2},
        headers=bearer(tok["staff_b"]),
    )
    assert r.status_code in (200, 201), r.text
    link_b = r.json()["id"]
    ids = {
        "facility_id": fb.facility.id,
        "pool_id": fb.pools[0].id,
        "link_id": link_b,
        "ref": hold_b,
        "action": "arrived",
    }
    needles = ("BRAVOALIAS", "BRAVOCALLBACK", hold_b)
    app = create_app(settings, db=world.db, clock=world.clock)
    bodies = {
        "decline": {"reason": "x"},
        "availability": {"unitsTotal": 1, "unitsOccupied": 1},
        "status": {"status": "suspended", "reason": "x"},
        "links": {"label": "x", "hours": 1},
        "extend": {"minutes": 30},
    }
    leaks = []
    for method, path in all_routes(app):
        if not path.startswith(("/staff", "/holds", "/standing-requests")) or "{" not in path:
            continue
        for who in ("staff_a", "line_a"):
            url = re.sub(
                r"\{(\w+)(?::\w+)?\}",
                lambda m, standing=path.startswith("/standing"): str(
                    standing_b if standing and m.group(1) == "ref" else ids.get(m.group(1), 1)
                ),
                path,
            )
            body = next((b for key, b in bodies.items() if path.endswith(key)), {})
            resp = await client.request(
                method,
                url,
                headers={
                    **bearer(tok[who]),
                    "If-Match": '"1"',
                    "Idempotency-Key": f"a-{len(leaks)}-x",
                },
                **({"json": body} if method in ("POST", "PUT", "PATCH") else {}),
            )
            if resp.status_code < 300 or any(n in resp.text for n in needles):
                leaks.append((who, method, url, resp.status_code, resp.text[:120]))
    assert not leaks, leaks
    for who, path in (
        ("staff_a", "/staff/facilities"),
        ("staff_a", "/staff/holds"),
        ("line_a", "/holds"),
        ("line_a", "/standing-requests"),
        ("staff_a", f"/staff/facilities/{fa.facility.id}/audit"),
        ("staff_a", f"/staff/facilities/{fa.facility.id}/links"),
    ):
        resp = await client.get(path, headers=bearer(tok[who]))
        assert resp.status_code == 200, (path, resp.text)
        assert not any(n in resp.text for n in needles), (who, path, resp.text[:1500])


async def test_a_bad_query_parameter_is_named_as_the_caller_wrote_it(
    client: AsyncClient, world: World
) -> None:
    """`?format=xml` answered 'fmt: Invalid enum value' with field 'fmt', and a malformed
    `?from=` answered field 'start': names the caller never sent and no document mentions."""
    await world.operator("TF", "taskforce")
    h = bearer(await world.token("TF", "taskforce"))
    for url, name in (
        ("/taskforce/saturation?format=xml", "format"),
        ("/taskforce/unmet-demand?from=yesterday", "from"),
        ("/taskforce/saturation/series?to=2026-01-01", "to"),
    ):
        r = await client.get(url, headers=h)
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["field"] == name, (url, problem)
        assert problem["detail"].startswith(f"{name}:"), (url, problem["detail"])


async def test_avoiding_a_municipality_does_not_tell_a_secret_refuges_municipality(
    client: AsyncClient, world: World
) -> None:
    """avoid.municipalities was exact for secret places too: avoiding Schaerbeek left the
    Schaerbeek refuge out, avoiding its neighbour Evere offered it. One search per municipality
    of the province, watching the alias come and go, names the refuge's municipality. A secret
    place now counts as anywhere in its arrondissement (Evere and Schaerbeek are both in
    Brussels'): left out either way."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    await world.facility("Refuges", "Refuge SCHAERBEEK", municipality="21015")  # Schaerbeek
    await world.facility("Refuges", "Refuge UCCLE", municipality="21016")  # Uccle
    h = bearer(await world.token("Zone", "police"))

    async def offered(avoid: dict[str, Any]) -> set[str]:
        r = await client.post(
            "/placements/search",
            json={
                "household": {"adults": [{"gender": "female"}]},
                "need": "ipv",
                "preferredMunicipalityNis": "21004",
                "avoid": avoid,
            },
            headers=h,
        )
        assert r.status_code == 200, r.text
        return {o["alias"] for o in r.json()["options"]}

    assert await offered({}) == {"Refuge SCHAERBEEK", "Refuge UCCLE"}
    in_it = await offered({"municipalities": ["21015"]})
    assert "Refuge SCHAERBEEK" not in in_it  # the safety rule itself
    next_door = await offered({"municipalities": ["21006"]})  # Evere, bordering Schaerbeek
    assert ("Refuge SCHAERBEEK" in next_door) == ("Refuge SCHAERBEEK" in in_it), (
        "avoiding Schaerbeek and avoiding Evere tell apart where the secret refuge is"
    )
    # the same as a radius of 0 km around Evere
    assert next_door == await offered({"radius": [{"municipalityNis": "21006", "km": 0}]})


async def test_no_series_of_searches_tells_two_secret_refuges_of_one_arrondissement_apart(
    client: AsyncClient, world: World
) -> None:
    """Through the whole search path (the matcher, the live re-check, area conditions, the
    answer's sentences), two secret refuges alike but for their municipality — Schaerbeek and
    Uccle, both in Brussels' arrondissement — answer every search alike: avoiding each
    municipality around them, radii, preferred areas, maximum distances. A public place in
    each is the control: the same searches tell those two apart."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    for muni, name in (("21015", "SCHAERBEEK"), ("21016", "UCCLE")):
        await world.facility("Refuges", f"Refuge {name}", municipality=muni)
        await world.facility("Refuges", f"Shelter {name}", municipality=muni, secret=False)
    h = bearer(await world.token("Zone", "police"))
    around = ["21001", "21006", "21009", "21015", "21016", "23016", "23099", "23101", "24104"]
    searches: list[dict[str, Any]] = [{}]
    searches += [{"avoid": {"municipalities": [c]}} for c in around]
    searches += [
        {"avoid": {"radius": [{"municipalityNis": c, "km": km}]}}
        for c in ("21006", "23099", "23101")
        for km in (0, 2, 5, 10)
    ]
    searches += [
        {"preferredMunicipalityNis": c, "maxDistanceKm": km}
        for c in ("21004", "23016", "24062", "25072")
        for km in (10, 20, 30)
    ]
    unique = {"alias", "poolRef", "facilityRef"}

    def seen(options: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
        """What the searcher learns of one place: its option, all but what names it."""
        for o in options:
            if o["alias"].endswith(name):
                return {k: v for k, v in o.items() if k not in unique}
        return None

    told_apart = 0
    for search in searches:
        r = await client.post(
            "/placements/search",
            json={"household": {"adults": [{"gender": "female"}]}, "need": "ipv", **search},
            headers=h,
        )
        assert r.status_code == 200, r.text
        options = [o for o in r.json()["options"]]
        secret = [
            seen([o for o in options if o["alias"].startswith("Refuge")], n)
            for n in ("SCHAERBEEK", "UCCLE")
        ]
        assert secret[0] == secret[1], search
        public = [
            seen([o for o in options if o["alias"].startswith("Shelter")], n)
            for n in ("SCHAERBEEK", "UCCLE")
        ]
        told_apart += public[0] != public[1]
    assert told_apart >= 10  # the control: the public places are told apart (16 of 34)


async def test_a_municipal_health_condition_does_not_name_a_secret_refuges_municipality(
    client: AsyncClient, world: World
) -> None:
    """A secret place is judged by its arrondissement, never its municipality: no search may
    tell apart two secret refuges of one arrondissement. An area condition switched on for one
    municipality (an outbreak in Ixelles) was put on the secret refuge there alone: the option
    showing "Admission condition to meet" named its municipality, to anyone who knows of the
    measure (an outbreak is public; public places in Ixelles show it too). Every secret place
    of the arrondissement now carries it: a condition to meet is asked of more households,
    never an exclusion. The staff of each see it, so they know why helplines ask."""
    await world.operator("Admin", "admin")
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    admin = bearer(await world.token("Admin", "admin"))
    police = bearer(await world.token("Zone", "police"))
    staff = bearer(await world.token("Refuges", "staff"))
    pools = [PoolCreate(label="B", units_total=4)]
    await world.facility("Refuges", "Refuge IXELLES", municipality="21009", pools=pools)
    await world.facility("Refuges", "Refuge UCCLE", municipality="21016", pools=pools)
    await world.facility(
        "Refuges", "Shelter UCCLE", municipality="21016", pools=pools, secret=False
    )
    await world.facility(
        "Refuges", "Shelter MECHELEN", municipality="12025", pools=pools, secret=False
    )
    r = await client.put(
        "/admin/health-conditions/21009/negative_test", json={"reason": "Outbreak"}, headers=admin
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/placements/search",
        json={"household": {"adults": [{"gender": "female"}]}, "need": "ipv"},
        headers=police,
    )
    assert r.status_code == 200, r.text
    warned = {
        o["alias"]: "health_condition_to_meet" in [w["code"] for w in o["warnings"]]
        for o in r.json()["options"]
    }
    assert warned["Refuge IXELLES"] == warned["Refuge UCCLE"] is True
    # a public place is judged by its own municipality, as before
    assert warned["Shelter UCCLE"] is False and warned["Shelter MECHELEN"] is False
    facilities = (await client.get("/staff/facilities", headers=staff)).json()
    shown = {f["alias"]: [c["condition"] for c in f["areaConditions"]] for f in facilities}
    assert shown["Refuge UCCLE"] == ["negative_test"] and shown["Shelter UCCLE"] == []


async def _planner(
    client: AsyncClient, h: dict[str, str], days: int, level: str
) -> dict[str, dict[str, Any]]:
    r = await client.get(f"/taskforce/redirection?days={days}&level={level}", headers=h)
    assert r.status_code == 200, r.text
    return {a["area"]["nis"]: a for a in r.json()["areas"]}


async def test_planner_horizons_cannot_be_differenced_to_one_secret_scheme(
    client: AsyncClient, world: World
) -> None:
    """Arrondissement of Liège: three secret schemes close in 5 days, a fourth (X, 6 of 8
    places occupied, 2 free) in 20 days, beside three secret refuges that stay. Each answer
    alone is an aggregate of three or more secret places, but 'within 7 days' and 'within 30
    days', asked a second apart, differ by X alone: its occupants and its free places."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("TF", "taskforce")
    now = world.clock.now()
    for i in range(3):
        await world.facility(
            "Refuges",
            f"Refuge {i}",
            municipality=LIEGE,
            pools=[PoolCreate(label="Beds", units_total=10, units_occupied=4 + i)],
        )
    for i in range(3):
        await world.facility(
            "Refuges",
            f"Scheme {i}",
            municipality=LIEGE,
            planned_end=now + timedelta(days=5),
            pools=[PoolCreate(label="Beds", units_total=5, units_occupied=1 + i)],
        )
    await world.facility(
        "Refuges",
        "Scheme X",
        municipality=LIEGE,
        planned_end=now + timedelta(days=20),
        pools=[PoolCreate(label="Beds", units_total=8, units_occupied=6)],
    )
    h = bearer(await world.token("TF", "taskforce"))
    for level, nis in (("arrondissement", "62000"), ("province", "60000")):
        soon = (await _planner(client, h, 7, level))[nis]
        later = (await _planner(client, h, 30, level))[nis]
        # what is safe stays: one of the two aggregates of secret schemes is shown
        assert soon["occupants"] is not None or later["occupants"] is not None
        if soon["occupants"] is not None and later["occupants"] is not None:
            assert later["occupants"]["total"] - soon["occupants"]["total"] != 6, (
                level,
                "the occupants within 30 days minus those within 7 are scheme X's alone",
            )
        if soon["freeElsewhere"] is not None and later["freeElsewhere"] is not None:
            a, b = soon["freeElsewhere"]["all"], later["freeElsewhere"]["all"]
            assert a is None or b is None or a - b != 2, (
                level,
                "the free places elsewhere within 7 days minus within 30 are scheme X's alone",
            )
            a, b = (x["freeElsewhereQuality"]["inService"] for x in (soon, later))
            assert a - b != 8, (level, "and its places in service")


async def test_planner_levels_cannot_be_differenced_to_one_secret_scheme(
    client: AsyncClient, world: World
) -> None:
    """Province of Liège: three secret schemes close in 5 days in the arrondissement of
    Liège, one (X, 6 occupied) in the arrondissement of Huy. Asked by arrondissement, Huy's
    lone scheme is suppressed and Liège's three are shown; asked by province, the four are
    shown: the province minus Liège is X alone."""
    await world.operator("Refuges", "shelter_operator")
    await world.operator("TF", "taskforce")
    now = world.clock.now()
    for muni in (LIEGE, "61031"):  # Liège, Huy
        for i in range(3):
            await world.facility(
                "Refuges",
                f"Refuge {muni} {i}",
                municipality=muni,
                pools=[PoolCreate(label="Beds", units_total=10, units_occupied=4 + i)],
            )
    for i in range(3):
        await world.facility(
            "Refuges",
            f"Scheme {i}",
            municipality=LIEGE,
            planned_end=now + timedelta(days=5),
            pools=[PoolCreate(label="Beds", units_total=5, units_occupied=1 + i)],
        )
    await world.facility(
        "Refuges",
        "Scheme X",
        municipality="61031",
        planned_end=now + timedelta(days=5),
        pools=[PoolCreate(label="Beds", units_total=8, units_occupied=6)],
    )
    h = bearer(await world.token("TF", "taskforce"))
    arr = await _planner(client, h, 7, "arrondissement")
    prov = (await _planner(client, h, 7, "province"))["60000"]
    liege, huy = arr["62000"], arr["61000"]
    assert huy["occupants"] is None  # one secret scheme: never shown alone
    if liege["occupants"] is not None and prov["occupants"] is not None:
        assert prov["occupants"]["total"] - liege["occupants"]["total"] != 6, (
            "the province's occupants minus the arrondissement of Liège's are scheme X's alone"
        )
    assert prov["occupants"] is not None or liege["occupants"] is not None  # the safe one stays
