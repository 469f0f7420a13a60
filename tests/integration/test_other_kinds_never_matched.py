"""R40: the model stays open to a separate "perpetrator accommodation" kind (temporary
residence bans), never co-listed or matchable with victims' places. No such kind can be
created yet (the API, CLI and import take only the known kinds), so the test writes one
straight into the database, as a future version would, and checks that the matcher, the
holds and the task force's figures ignore it."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import update

from capacity.commands import PoolCreate
from capacity.models import FACILITY_KINDS, PLACEMENT_KINDS, Facility
from tests.conftest import World, bearer

HOUSEHOLD = {"adults": [{"gender": "male"}], "residenceStatus": "documented"}


async def test_a_place_of_another_kind_is_never_offered_held_or_counted(
    client: AsyncClient, world: World
) -> None:
    assert set(FACILITY_KINDS) == PLACEMENT_KINDS  # today every kind is a victims' place
    await world.operator("Justice", "shelter_operator")
    await world.operator("Zone", "police")
    await world.operator("TF", "taskforce")
    for i in range(4):  # enough to be shown in the task force's figures, were it counted
        await world.facility(
            "Justice",
            f"Studio {i}",
            municipality="21004",
            pools=[PoolCreate(label="Beds", units_total=5)],
        )
    police = bearer(await world.token("Zone", "police"))
    tf = bearer(await world.token("TF", "taskforce"))
    search = {"household": HOUSEHOLD, "need": "other", "preferredMunicipalityNis": "21004"}
    r = await client.post("/placements/search", headers=police, json=search)
    pool_ref = r.json()["options"][0]["poolRef"]
    assert len(r.json()["options"]) == 4
    before = await client.get("/taskforce/saturation", params={"level": "country"}, headers=tf)
    assert before.json()["cells"][0]["capacity"] == 20

    async with world.db.write() as s:
        world.clock.advance(seconds=5)  # past the matcher's cache
        await s.execute(
            update(Facility).values(kind="perpetrator_accommodation", updated_at=world.clock.now())
        )
    r = await client.post("/placements/search", headers=police, json=search)
    assert r.status_code == 200 and r.json()["options"] == [], r.text
    r = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "other-kind-0001"},
        json={"poolRef": pool_ref, "household": HOUSEHOLD, "need": "other"},
    )
    assert r.status_code == 404, r.text
    after = await client.get("/taskforce/saturation", params={"level": "country"}, headers=tf)
    assert after.json()["cells"][0]["capacity"] == 0
