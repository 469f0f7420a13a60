"""A standing request whose offered place falls through on the place's side goes back in line.

The 1712 operator put a family in line; a room freed up and was held for it. Then the shelter
declined the hold (full after all; the location reported compromised) or marked it no-show
before the family could get there: the request stayed ``offered`` with a dead hold, the family
had lost its turn, and the operator had to start again, at the back. It now goes back to
``waiting`` in its original position (while its own deadline lasts), with the ended hold shown
as ``previousHold`` and a ``standing.waiting`` webhook. A release by the requester or an expiry
of the offered hold is the requester's own doing: the request stays ``offered``. The search it
waits with is kept while the offer may still fall through, and dropped once it is settled.
"""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, insert, select, update

from capacity.commands import PoolCreate
from capacity.models import Hold, Operator, OutboxMessage, Pool, StandingRequest, WebhookEndpoint
from capacity.settings import Settings
from placement import standing_service
from placement.holds_service import counters_agree
from placement.policy import AccessPolicy
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_standing_requests import MOTHER_AND_GIRL, _fill, search


@pytest.fixture
async def setup(world: World) -> dict[str, Any]:
    """One family room at Refuge A-1 (as in test_standing_requests), two helplines, police."""
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    await world.operator("Ligne 0800", "helpline")
    await world.operator("Ligne 1712", "helpline")
    fa = await world.facility(
        "Refuges A",
        "Refuge A-1",
        policy=AccessPolicy(max_boy_age=12, languages=["fr"]),
        pools=[
            PoolCreate(label="Family", unit_kind="family_room", places_per_unit=3, units_total=1)
        ],
    )
    return {
        "fa": fa,
        "family": fa.pools[0].ref,
        "police": await world.token("Zone Nord", "police"),
        "helpline": await world.token("Ligne 0800", "helpline"),
        "helpline2": await world.token("Ligne 1712", "helpline"),
        "staff": await world.token("Refuges A", "staff"),
    }


async def _hook(world: World, name: str) -> None:
    async with world.db.write() as s:
        op_id = await s.scalar(select(Operator.id).where(Operator.name == name))
        await s.execute(
            insert(WebhookEndpoint).values(
                operator_id=op_id,
                url="http://127.0.0.1:9/hook",
                secret_ciphertext="x",
                created_at=world.clock.now(),
            )
        )


async def _wait(client: AsyncClient, token: str, minutes: int = 600) -> dict[str, Any]:
    r = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": minutes},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _get(client: AsyncClient, token: str, ref: str) -> dict[str, Any]:
    r = await client.get(f"/standing-requests/{ref}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


async def _search_kept(world: World, ref: str) -> bool:
    async with world.db.read() as s:
        return (
            await s.scalar(select(StandingRequest.search).where(StandingRequest.ref == ref))
        ) is not None


async def test_a_declined_offer_goes_back_in_line_in_its_original_place(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    await _hook(world, "Ligne 0800")
    held = await _fill(client, setup)
    first = await _wait(client, setup["helpline"])
    world.clock.advance(minutes=5)
    second = await _wait(client, setup["helpline2"])
    r = await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    assert r.status_code == 200, r.text
    offered = await _get(client, setup["helpline"], first["ref"])
    assert offered["state"] == "offered" and offered["previousHold"] is None
    h1 = offered["hold"]["ref"]
    # The shelter is full after all.
    r = await client.post(
        f"/staff/holds/{h1}/decline",
        headers=bearer(setup["staff"]),
        json={"reason": "Full after all"},
    )
    assert r.status_code == 200, r.text
    back = await _get(client, setup["helpline"], first["ref"])
    assert back["state"] == "waiting", back
    assert back["createdAt"] == first["createdAt"] and back["minutesLeft"] > 0
    assert back["hold"] is None
    assert back["previousHold"]["ref"] == h1
    assert back["previousHold"]["state"] == "declined"
    assert back["previousHold"]["closeCode"] == "declined"
    assert await _search_kept(world, first["ref"])
    # The place that declined it is not offered to it again: the younger request gets it.
    assert (await _get(client, setup["helpline2"], second["ref"]))["state"] == "offered"
    async with world.db.read() as s:
        told = (
            await s.execute(select(OutboxMessage.event, OutboxMessage.payload).order_by("id"))
        ).all()
    events = [(e, p["ref"], p.get("holdRef"), p.get("reason")) for e, p in told]
    assert events == [
        ("standing.offered", first["ref"], h1, None),
        ("hold.declined", h1, None, "declined"),
        ("standing.waiting", first["ref"], h1, "declined"),
    ]
    assert "household" not in str([p for _, p in told])
    # A room frees up elsewhere while a third family is put in line after it: the first
    # family, back in its place, gets it.
    await world.facility(
        "Refuges A",
        "Refuge A-3",
        policy=AccessPolicy(languages=["fr"]),
        pools=[
            PoolCreate(label="Family", unit_kind="family_room", places_per_unit=3, units_total=1)
        ],
    )
    world.clock.advance(minutes=1)
    third = await _wait(client, setup["police"])
    again = await _get(client, setup["helpline"], first["ref"])
    assert again["state"] == "offered" and again["hold"]["ref"] != h1
    assert again["hold"]["place"]["alias"] == "Refuge A-3"
    assert (await _get(client, setup["police"], third["ref"]))["state"] == "waiting"
    assert await counters_agree(world.db) == []


async def test_no_show_and_compromised_put_it_back_release_and_lateness_do_not(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    held = await _fill(client, setup)
    first = await _wait(client, setup["helpline"])
    await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    h1 = (await _get(client, setup["helpline"], first["ref"]))["hold"]["ref"]
    # No-show: back in line, and the same room (still free, not refused) is held again.
    r = await client.post(f"/staff/holds/{h1}/no-show", headers=bearer(setup["staff"]))
    assert r.status_code == 200, r.text
    again = await _get(client, setup["helpline"], first["ref"])
    assert again["state"] == "offered", again
    h2 = again["hold"]["ref"]
    assert h2 != h1 and again["hold"]["place"]["alias"] == "Refuge A-1"
    # The place's location is reported compromised: back in line, told not to go there.
    r = await client.put(
        f"/staff/facilities/{setup['fa'].facility.id}/status",
        headers=bearer(setup["staff"]),
        json={"status": "location_compromised", "reason": "Partner seen outside"},
    )
    assert r.status_code == 200, r.text
    back = await _get(client, setup["helpline"], first["ref"])
    assert back["state"] == "waiting", back
    assert back["previousHold"]["ref"] == h2
    assert back["previousHold"]["closeCode"] == "location_compromised"
    assert back["createdAt"] == first["createdAt"]
    r = await client.post(
        f"/standing-requests/{first['ref']}/cancel", headers=bearer(setup["helpline"])
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert not await _search_kept(world, first["ref"])


async def test_a_release_or_a_late_decline_leaves_it_offered_and_drops_the_search(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    second_room = await world.facility(
        "Refuges A",
        "Refuge A-2",
        policy=AccessPolicy(languages=["fr"]),
        pools=[
            PoolCreate(label="Family", unit_kind="family_room", places_per_unit=3, units_total=1)
        ],
    )
    held = await _fill(client, setup)
    r = await client.post(
        "/holds",
        headers={**bearer(setup["police"]), "Idempotency-Key": "fill-the-room-2"},
        json={"poolRef": second_room.pools[0].ref, "need": "ipv", "household": MOTHER_AND_GIRL},
    )
    assert r.status_code == 201, r.text
    other = r.json()["ref"]
    mine = await _wait(client, setup["helpline"])
    late = await _wait(client, setup["helpline2"], minutes=30)
    await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    h1 = (await _get(client, setup["helpline"], mine["ref"]))["hold"]["ref"]
    # The operator releases it (the family found a place itself): stays offered, search gone.
    r = await client.post(f"/holds/{h1}/release", headers=bearer(setup["helpline"]))
    assert r.status_code == 200, r.text
    assert (await _get(client, setup["helpline"], mine["ref"]))["state"] == "offered"
    assert not await _search_kept(world, mine["ref"])
    # The younger one got the room; its own deadline passes, then the place declines.
    offered = await _get(client, setup["helpline2"], late["ref"])
    assert offered["state"] == "offered", offered
    world.clock.advance(minutes=31)
    r = await client.post(
        f"/staff/holds/{offered['hold']['ref']}/decline",
        headers=bearer(setup["staff"]),
        json={"reason": "Full after all"},
    )
    assert r.status_code == 200, r.text
    assert (await _get(client, setup["helpline2"], late["ref"]))["state"] == "offered"
    assert not await _search_kept(world, late["ref"])
    assert other


async def test_a_decline_racing_a_round_never_gives_two_holds_nor_loses_the_turn(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """The decline and standing rounds run at once, on both databases: the request is never
    offered two holds at once, and stays ahead of a younger one."""
    second_room = await world.facility(
        "Refuges A",
        "Refuge A-2",
        policy=AccessPolicy(languages=["fr"]),
        pools=[
            PoolCreate(label="Family", unit_kind="family_room", places_per_unit=3, units_total=1)
        ],
    )
    police_a1 = await _fill(client, setup)  # A-1 held by the police
    r = await client.post(
        "/holds",
        headers={**bearer(setup["police"]), "Idempotency-Key": "fill-the-room-2"},
        json={"poolRef": second_room.pools[0].ref, "need": "ipv", "household": MOTHER_AND_GIRL},
    )
    blocking = r.json()["ref"]
    first = await _wait(client, setup["helpline"])
    world.clock.advance(minutes=1)
    younger = await _wait(client, setup["helpline2"])
    await client.post(f"/holds/{police_a1}/release", headers=bearer(setup["police"]))
    h1 = (await _get(client, setup["helpline"], first["ref"]))["hold"]["ref"]
    # A-2 frees up behind the API's back (as a feed would): no round has run for it yet.
    async with world.db.write() as s:
        await s.execute(update(Hold).where(Hold.ref == blocking).values(state="released"))
        await s.execute(
            update(Pool).where(Pool.ref == second_room.pools[0].ref).values(units_held=0)
        )
    settings = Settings(database_url=world.db.url)
    now = world.clock.now()

    async def decline() -> None:
        r = await client.post(
            f"/staff/holds/{h1}/decline",
            headers=bearer(setup["staff"]),
            json={"reason": "Full after all"},
        )
        assert r.status_code == 200, r.text

    await asyncio.gather(
        standing_service.run_round(world.db, settings, now=now),
        decline(),
        standing_service.run_round(world.db, settings, now=now),
        standing_service.run_round(world.db, settings, now=now),
    )
    await standing_service.run_round(world.db, settings, now=now)
    mine = await _get(client, setup["helpline"], first["ref"])
    theirs = await _get(client, setup["helpline2"], younger["ref"])
    assert mine["createdAt"] == first["createdAt"]
    async with world.db.read() as s:
        for ref in (first["ref"], younger["ref"]):
            held_for = await s.scalar(
                select(func.count())
                .select_from(Hold)
                .where(Hold.state == "held", Hold.idempotency_key.like(f"standing:{ref}%"))
            )
            assert held_for <= 1, ref
    # A-1 declined it: A-2 is the first's, unless a round had given A-2 to the younger one
    # before the decline put the first back in line; then the next room is the first's.
    if mine["state"] == "waiting":
        assert mine["previousHold"]["ref"] == h1
        assert theirs["hold"]["place"]["alias"] == "Refuge A-2"
        await world.facility(
            "Refuges A",
            "Refuge A-3",
            policy=AccessPolicy(languages=["fr"]),
            pools=[
                PoolCreate(
                    label="Family", unit_kind="family_room", places_per_unit=3, units_total=1
                )
            ],
        )
        await standing_service.run_round(world.db, settings, now=now)
        mine = await _get(client, setup["helpline"], first["ref"])
        assert mine["hold"]["place"]["alias"] == "Refuge A-3"
    else:
        assert mine["state"] == "offered" and mine["hold"]["place"]["alias"] == "Refuge A-2"
    assert await counters_agree(world.db) == []


async def test_the_console_shows_it_back_in_line_and_why(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """The 1712 operator's console: the request is waiting again (with its time left and
    "Stop waiting"), saying the place declined, or, for a compromised location, not to go."""
    held = await _fill(client, setup)
    first = await _wait(client, setup["helpline"])
    await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    h1 = (await _get(client, setup["helpline"], first["ref"]))["hold"]["ref"]
    client.headers["Accept-Language"] = "fr"
    await web_sign_in(client, setup["helpline"])
    # offered: the open console keeps looking (the place may still let it down)
    console = (await client.get("/web/console")).text
    assert f'id="standing-{first["ref"]}" data-state="offered"' in console
    assert re.search(r'<section[^>]*id="standing"[^>]*data-waiting="1"', console)
    r = await client.put(
        f"/staff/facilities/{setup['fa'].facility.id}/status",
        headers=bearer(setup["staff"]),
        json={"status": "location_compromised", "reason": "Partner seen outside"},
    )
    assert r.status_code == 200, r.text
    console = (await client.get("/web/console")).text
    item = re.search(
        rf'<li id="standing-{first["ref"]}" data-state="waiting">.*?</li>', console, re.S
    )
    assert item, console
    text = html.unescape(item.group(0))
    assert f"De retour dans la file, à sa place : le lieu qui lui était réservé ({h1})" in text
    assert "N'y allez pas." in text and 'class="back-in-line error"' in text
    assert "Arrêter d'attendre" in text and "Partner seen outside" not in console
