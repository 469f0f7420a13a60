"""Why a hold ended, as a stable code on the requester's and the staff's reads (``closeCode``).

A police dispatch system whose webhook receiver was down longer than the retries read its
holds back with GET /holds: a hold declined because the place's location is compromised ("do
not go there") and one declined because the place is full had the same ``state`` and differed
only by an English sentence in ``closeReason``. Each ending now stores its code, shown as
``closeCode`` (the webhook's ``reason`` is the same stored code)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update

from capacity import retention
from capacity.clock import FrozenClock
from capacity.commands import PoolCreate
from capacity.models import Facility, Hold, OutboxMessage
from placement.holds_service import decline_held_at_compromised, expire_due_holds
from placement.policy import AccessPolicy
from tests.conftest import World, bearer

HOUSEHOLD = {
    "adults": [{"gender": "female"}],
    "children": [{"age": 4}],
    "residenceStatus": "undocumented",
    "income": "no",
    "languages": ["fr"],
}
CLOSE_CODES = {
    "released",
    "released_by_admin",
    "declined",
    "location_compromised",
    "expired",
    "no_show",
    "departed",
}


@pytest.fixture
async def setup(world: World) -> dict[str, Any]:
    ids = {
        "admin": await world.operator("Admin", "admin"),
        "police": await world.operator("Zone Nord", "police"),
    }
    await world.operator("Refuges A", "shelter_operator")
    places = {}
    for alias in ("Refuge A-1", "Refuge A-2", "Refuge A-3"):
        fac = await world.facility(
            "Refuges A",
            alias,
            policy=AccessPolicy(accepts_undocumented=True, languages=["fr"]),
            pools=[
                PoolCreate(
                    label="Family", unit_kind="family_room", places_per_unit=4, units_total=9
                )
            ],
        )
        places[alias] = (fac.facility.id, fac.pools[0].ref)
    return {
        "ids": ids,
        "places": places,
        "admin": bearer(await world.token("Admin", "admin")),
        "police": bearer(await world.token("Zone Nord", "police")),
        "staff": bearer(await world.token("Refuges A", "staff")),
    }


_keys = iter(range(1_000_000))


async def make_hold(client: AsyncClient, s: dict[str, Any], alias: str = "Refuge A-1") -> str:
    body = {"poolRef": s["places"][alias][1], "need": "ipv", "household": HOUSEHOLD}
    h = {**s["police"], "Idempotency-Key": f"close-code-{next(_keys):06d}"}
    r = await client.post("/holds", headers=h, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["closeCode"] is None  # open
    return r.json()["ref"]


async def code_of(client: AsyncClient, s: dict[str, Any], ref: str) -> str | None:
    """The code as the requester reads it, the same from GET /holds/{ref} and GET /holds."""
    one = await client.get(f"/holds/{ref}", headers=s["police"])
    assert one.status_code == 200, one.text
    listed = {h["ref"]: h for h in (await client.get("/holds", headers=s["police"])).json()}
    assert listed[ref]["closeCode"] == one.json()["closeCode"]
    return one.json()["closeCode"]


async def stored(world: World, ref: str) -> str | None:
    async with world.db.read() as s:
        return await s.scalar(select(Hold.close_code).where(Hold.ref == ref))


async def test_each_ending_shows_its_code_to_the_requester(
    client: AsyncClient, setup: dict[str, Any], world: World, clock: FrozenClock
) -> None:
    s, st = setup, setup["staff"]
    r = await client.put(
        f"/admin/operators/{s['ids']['police']}/webhook",
        headers=s["admin"],
        json={"url": "https://hooks.example/dispatch"},
    )
    assert r.status_code == 200, r.text
    own, by_admin, full, no_show, stays, leaves = [await make_hold(client, s) for _ in range(6)]
    # The requester's own release (on PostgreSQL the one-statement path) and an admin's.
    r = await client.post(f"/holds/{own}/release", headers=s["police"])
    assert r.status_code == 200 and r.json()["closeCode"] == "released", r.text
    r = await client.post(f"/holds/{by_admin}/release", headers=s["admin"])
    assert r.status_code == 200 and r.json()["closeCode"] == "released_by_admin", r.text
    # Staff: a decline in their own words, a no-show, an arrival (not ended), a departure.
    r = await client.post(
        f"/staff/holds/{full}/decline", headers=st, json={"reason": "Full tonight, ask Mme X"}
    )
    assert r.status_code == 200, r.text
    assert (await client.post(f"/staff/holds/{no_show}/no-show", headers=st)).status_code == 200
    for ref in (stays, leaves):
        assert (await client.post(f"/staff/holds/{ref}/arrived", headers=st)).status_code == 200
    assert (await client.post(f"/staff/holds/{leaves}/departed", headers=st)).status_code == 200
    # The place reports its location compromised: the hold on its way there is declined.
    compromised = await make_hold(client, s, "Refuge A-2")
    r = await client.put(
        f"/staff/facilities/{s['places']['Refuge A-2'][0]}/status",
        headers=st,
        json={"status": "location_compromised", "reason": "Perpetrator seen outside"},
    )
    assert r.status_code == 200, r.text
    expected = {
        own: "released",
        by_admin: "released_by_admin",
        full: "declined",
        no_show: "no_show",
        stays: None,
        leaves: "departed",
        compromised: "location_compromised",
    }
    for ref, code in expected.items():
        assert await code_of(client, s, ref) == code, ref
        assert await stored(world, ref) == code, ref
        # The place's staff read the same code (they had only the requester's words).
        mine = await client.get(f"/staff/holds/{ref}", headers=st)
        assert mine.status_code == 200 and mine.json()["closeCode"] == code, (ref, mine.text)
        assert (mine.json()["closedAt"] is None) == (code is None), mine.text
    # The webhook says the same stored code; never the staff's words as a code.
    async with world.db.read() as session:
        sent = {
            (m.payload["ref"], m.payload["reason"])
            for m in await session.scalars(select(OutboxMessage))
        }
    assert sent == {
        (by_admin, "released_by_admin"),
        (full, "declined"),
        (no_show, "no_show"),
        (stays, None),  # hold.arrived
        (leaves, None),  # hold.arrived (its departure sends nothing)
        (compromised, "location_compromised"),
    }
    listed = (await client.get("/holds", headers=s["police"])).json()
    assert {h["closeCode"] for h in listed} <= CLOSE_CODES | {None}


async def test_an_expiry_shows_expired_before_and_after_the_sweeper(
    client: AsyncClient, setup: dict[str, Any], world: World, clock: FrozenClock
) -> None:
    s = setup
    swept, lazily, opened = [await make_hold(client, s) for _ in range(3)]
    clock.advance(hours=4)  # past the police deadlines; no sweeper has run
    for ref in (swept, lazily, opened):
        assert await code_of(client, s, ref) == "expired"  # as shown, before any write
        assert await stored(world, ref) is None
    # Acting on a due hold expires it in that transaction (the bulk UPDATE of its pool).
    r = await client.post(f"/holds/{opened}/extend", headers=s["police"], json={})
    assert r.status_code in (409, 410), r.text
    for ref in (swept, lazily, opened):
        assert await stored(world, ref) == "expired"
    assert await expire_due_holds(world.db, clock.now()) == 0


async def test_the_sweeper_writes_expired(
    client: AsyncClient, setup: dict[str, Any], world: World, clock: FrozenClock
) -> None:
    ref = await make_hold(client, setup)
    clock.advance(hours=4)
    assert await expire_due_holds(world.db, clock.now()) >= 1
    assert await stored(world, ref) == "expired"
    assert await code_of(client, setup, ref) == "expired"


async def test_the_expiry_jobs_catch_up_decline_says_location_compromised(
    client: AsyncClient, setup: dict[str, Any], world: World, clock: FrozenClock
) -> None:
    """A process died between the status change and its declines: the expiry job's catch-up
    declines the hold still on its way there, with the same code as the status change."""
    facility_id = setup["places"]["Refuge A-3"][0]
    ref = await make_hold(client, setup, "Refuge A-3")
    async with world.db.write() as session:  # the status written, the declines never run
        await session.execute(
            update(Facility).where(Facility.id == facility_id).values(status="location_compromised")
        )
    assert await decline_held_at_compromised(world.db, now=clock.now()) == 1
    assert await stored(world, ref) == "location_compromised"
    assert await code_of(client, setup, ref) == "location_compromised"


async def test_the_retention_purge_keeps_the_code(
    client: AsyncClient, setup: dict[str, Any], world: World, clock: FrozenClock
) -> None:
    """The code is no personal data (the staff's own words are, and go)."""
    ref = await make_hold(client, setup)
    r = await client.post(
        f"/staff/holds/{ref}/decline", headers=setup["staff"], json={"reason": "Full, Mme X"}
    )
    assert r.status_code == 200, r.text
    clock.advance(days=400)
    await retention.purge(world.db, now=clock.now(), days=90)
    async with world.db.read() as session:
        row = (await session.execute(select(Hold.close_reason, Hold.close_code))).one()
    assert tuple(row) == (None, "declined")


async def test_the_openapi_document_lists_the_codes(client: AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    for name in ("HoldRead", "StaffHoldRead"):
        schema = doc["components"]["schemas"][name]
        assert "closeCode" in schema["required"]
        prop = schema["properties"]["closeCode"]
        assert set(prop["type"]) == {"string", "null"}
        assert set(prop["enum"]) == CLOSE_CODES | {None}
        assert "location_compromised" in prop["description"]
