"""POST /placements/search: ranked, explained options, live-checked, unmet demand recorded."""

from __future__ import annotations

import msgspec
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update

from api.placement.controllers import SEARCH_EXAMPLE
from capacity.commands import PoolCreate
from capacity.models import Pool, UnmetDemand
from capacity.settings import Settings
from ops.demo import load_demo
from placement.household import SearchRequest
from placement.policy import AccessPolicy
from placement.search_service import SnapshotCache, household_shape, search
from tests.conftest import World, bearer

WOMAN = {"adults": [{"gender": "female"}], "residenceStatus": "documented", "income": "yes"}


@pytest.fixture
async def tokens(world: World) -> dict[str, str]:
    await world.operator("Zone", "police")
    await world.operator("Line", "helpline")
    await world.operator("TF", "taskforce")
    await world.operator("Refuges", "shelter_operator")
    return {
        "police": await world.token("Zone", "police"),
        "helpline": await world.token("Line", "helpline"),
        "taskforce": await world.token("TF", "taskforce"),
        "staff": await world.token("Refuges", "staff"),
    }


async def test_openapi_example_finds_places_in_the_demo_world(
    client: AsyncClient, world: World
) -> None:
    toks = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    r = await client.post("/placements/search", json=SEARCH_EXAMPLE, headers=bearer(toks["police"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["options"], body
    for o in body["options"]:
        assert o["freeUnits"] >= o["unitsNeeded"] >= 1
        assert set(o) >= {
            "facilityRef",
            "poolRef",
            "alias",
            "kind",
            "areaName",
            "intakePhone",
            "handoverProtocol",
            "warnings",
            "reasons",
            "scoreParts",
            "specialisations",
        }
        assert o["specialisations"] == sorted(o["specialisations"])
        assert not o["specialised"] or o["specialisations"]  # specialised: it says in what
        assert not {"address", "street", "latitude", "lat", "municipalityNis"} & set(o)
    assert body["exclusions"][0]["text"].startswith(str(body["exclusions"][0]["count"]))
    assert "documents_required" in body["excluded"]
    doc = (await client.get("/schema/openapi.json")).json()
    op = doc["paths"]["/placements/search"]["post"]
    assert op["requestBody"]["content"]["application/json"]["examples"]


async def test_roles(client: AsyncClient, tokens: dict[str, str]) -> None:
    body = {"household": WOMAN, "need": "homelessness"}
    for role in ("police", "helpline"):
        r = await client.post("/placements/search", json=body, headers=bearer(tokens[role]))
        assert r.status_code == 200
    for role in ("taskforce", "staff"):
        r = await client.post("/placements/search", json=body, headers=bearer(tokens[role]))
        assert r.status_code == 403


async def test_bad_input_is_a_clear_422(client: AsyncClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["police"])
    cases = [
        ({"household": {"adults": []}, "need": "ipv"}, None),
        (
            {"household": WOMAN, "need": "ipv", "avoid": {"municipalities": ["99999"]}},
            "avoid.municipalities[0]",
        ),
        ({"household": WOMAN, "need": "ipv", "preferredMunicipalityNis": "00000"}, None),
        ({"household": {**WOMAN, "name": "Jane"}, "need": "ipv"}, None),  # no names, ever
        ({"household": WOMAN, "need": "burglary"}, None),
    ]
    for body, field in cases:
        r = await client.post("/placements/search", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        if field:
            assert r.json()["field"] == field


async def test_live_recheck_drops_a_place_that_filled_since_the_cache(
    world: World, tokens: dict[str, str], settings: Settings
) -> None:
    view = await world.facility(
        "Refuges", "R1", policy=AccessPolicy(), pools=[PoolCreate(label="Beds", units_total=2)]
    )
    cache = SnapshotCache(world.db, settings, max_age=3600)
    req = msgspec.convert({"household": WOMAN, "need": "homelessness"}, SearchRequest)
    found = await search(
        world.db, cache, req, requester_kind="police", operator_id=1, now=world.clock.now()
    )
    assert [o.pool_ref for o in found.result.options] == [view.pools[0].ref]
    async with world.db.write() as s:
        await s.execute(update(Pool).where(Pool.id == view.pools[0].id).values(units_occupied=2))
    found = await search(
        world.db, cache, req, requester_kind="police", operator_id=1, now=world.clock.now()
    )
    assert found.result.options == []  # the cache still thought it free; the live check did not


async def test_unmet_demand_recorded_once_per_episode(
    client: AsyncClient, world: World, tokens: dict[str, str]
) -> None:
    await world.facility(
        "Refuges",
        "Full",
        policy=AccessPolicy(),
        pools=[PoolCreate(label="Beds", units_total=1, units_occupied=1)],
    )
    body = {
        "household": {**WOMAN, "children": [{"age": 3}, {"age": 5}]},
        "need": "ipv",
        "preferredMunicipalityNis": "62063",
        "episodeToken": "case-77",
    }
    for _ in range(3):
        r = await client.post("/placements/search", json=body, headers=bearer(tokens["police"]))
        assert r.json()["options"] == []
    assert r.json()["unmetRecorded"] is False
    r = await client.post(
        "/placements/search",
        json={**body, "episodeToken": None},
        headers=bearer(tokens["helpline"]),
    )
    assert r.json()["unmetRecorded"] is True
    async with world.db.read() as s:
        rows = (await s.scalars(select(UnmetDemand).order_by(UnmetDemand.id))).all()
        n = await s.scalar(select(func.count()).select_from(UnmetDemand))
    assert n == 2
    first = rows[0]
    assert first.province_nis == "60000" and first.arrondissement_nis == "62000"
    assert first.household_shape == "1A+2C" and first.need == "ipv"
    assert first.requester_kind == "police" and first.segments["withChildren"] is True
    assert "no_room" in first.top_reasons
    assert first.episode_hash and "case-77" not in first.episode_hash


def test_household_shape_buckets() -> None:
    assert household_shape(1, 0) == "1A"
    assert household_shape(2, 1) == "2A+1C"
    assert household_shape(3, 5) == "2A++3C+"


async def test_a_preferred_area_inside_an_area_to_avoid_is_pointed_out(
    client: AsyncClient, world: World
) -> None:
    """A police zone's home area left as the preferred area while the perpetrator lives there:
    the places are ranked by their distance from where the person must keep away from. The
    answer says so (a notice about the search, not about any place); the search still runs."""
    await world.operator("Refuges", "shelter_operator")
    await world.facility("Refuges", "Refuge Liège", municipality="62063")
    await world.operator("Zone", "police")
    h = bearer(await world.token("Zone", "police"))
    body = {
        "household": {"adults": [{"gender": "female"}]},
        "need": "ipv",
        "preferredMunicipalityNis": "21015",
    }
    cases = [
        ({"municipalities": ["21015"]}, True),
        ({"arrondissements": ["21000"]}, True),  # Brussels: Schaerbeek is in it
        ({"radius": [{"municipalityNis": "21006", "km": 5}]}, True),  # Evere, next door
        ({"municipalities": ["62063"]}, False),
        ({}, False),
    ]
    for avoid, noticed in cases:
        r = await client.post("/placements/search", json={**body, "avoid": avoid}, headers=h)
        assert r.status_code == 200, r.text
        codes = [n["code"] for n in r.json()["notices"]]
        assert codes == (["preferred_area_avoided"] if noticed else []), (avoid, codes)
