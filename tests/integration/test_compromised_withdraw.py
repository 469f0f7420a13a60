"""After a refuge reports its location compromised, nothing a requester reads of a hold there
points at it any more: no intake phone, no handover protocol, and a "do not go there" flag —
the hold's code, state and close code stay. Staff and admins keep everything."""

from __future__ import annotations

import html
import re
from typing import Any

import msgspec
import pytest
from httpx import AsyncClient
from sqlalchemy import update

from capacity.commands import PoolCreate
from capacity.models import Facility
from clients import sdk
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer

ONE_WOMAN = {"adults": [{"gender": "female"}], "languages": ["fr"]}
PHONE = "+32 2 555 01 01"  # the world's facilities'
PROTOCOL = "Call the intake phone with the reference code."


@pytest.fixture
async def refuge(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    await world.operator("Admin", "admin")
    r = await world.facility(
        "Refuges A",
        "Refuge R",
        pools=[PoolCreate(label="Beds", units_total=3)],
    )
    return {
        "facility": r.facility.id,
        "pool": r.pools[0].ref,
        "police": await world.token("Zone Nord", "police"),
        "staff": await world.token("Refuges A", "staff"),
        "admin": await world.token("Admin", "admin"),
    }


async def _hold(client: AsyncClient, refuge: dict[str, Any], key: str) -> str:
    r = await client.post(
        "/holds",
        json={"poolRef": refuge["pool"], "need": "ipv", "household": ONE_WOMAN},
        headers={**bearer(refuge["police"]), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    assert r.json()["intakePhone"] == PHONE and r.json()["doNotGo"] is False
    return str(r.json()["ref"])


async def _report(client: AsyncClient, refuge: dict[str, Any]) -> None:
    r = await client.put(
        f"/staff/facilities/{refuge['facility']}/status",
        headers=bearer(refuge["staff"]),
        json={"status": "location_compromised", "reason": "Partner seen outside"},
    )
    assert r.status_code == 200, r.text


def _withdrawn(body: dict[str, Any]) -> None:
    assert body["doNotGo"] is True, body
    assert body["intakePhone"] is None and body["intakePhone24h"] is None, body
    assert body["handoverProtocol"] is None, body
    assert PHONE not in str(body) and PROTOCOL not in str(body), body
    decoded = msgspec.json.decode(msgspec.json.encode(body), type=sdk.Hold)
    assert decoded.do_not_go and decoded.intake_phone is None


async def test_a_hold_declined_at_a_compromised_place_gives_no_phone_or_protocol(
    client: AsyncClient, world: World, refuge: dict[str, Any]
) -> None:
    """The patrol's hold, declined because the refuge's location was compromised, still gave
    the refuge's intake phone and handover protocol (GET /holds/{ref}, GET /holds, the hold's
    page, the SDK): an officer could call it or drive there. Now neither is given; the code,
    state, close code and a doNotGo flag are."""
    ref = await _hold(client, refuge, "withdraw-1")
    world.clock.advance(minutes=3)
    await _report(client, refuge)

    one = await client.get(f"/holds/{ref}", headers=bearer(refuge["police"]))
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["ref"], body["state"], body["closeCode"]) == (
        ref,
        "declined",
        "location_compromised",
    )
    _withdrawn(body)
    listed = await client.get("/holds", headers=bearer(refuge["police"]))
    (mine,) = [h for h in listed.json() if h["ref"] == ref]
    _withdrawn(mine)

    # staff (their own place) keep what they had
    staff = await client.get(f"/staff/holds/{ref}", headers=bearer(refuge["staff"]))
    assert staff.status_code == 200 and staff.json()["state"] == "declined"

    await web_sign_in(client, refuge["police"])
    page = await client.get(f"/web/console/holds/{ref}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert PHONE not in text and PHONE.replace(" ", "") not in text
    assert PROTOCOL not in text
    assert re.search(r'role="alert" id="close-reason"', page.text), page.text
    console = await client.get("/web/console")
    assert PHONE not in html.unescape(console.text)


async def test_an_arrived_hold_at_a_compromised_place_says_do_not_go_there(
    client: AsyncClient, world: World, refuge: dict[str, Any]
) -> None:
    """A household already in the house stays (the shelter moves it by its own protocol), but
    its officer's hold still gave the handover protocol and intake phone of a place an abuser
    now knows, with nothing saying so. The hold stays `arrived`, flagged do not go there."""
    ref = await _hold(client, refuge, "withdraw-2")
    r = await client.post(f"/staff/holds/{ref}/arrived", headers=bearer(refuge["staff"]))
    assert r.status_code == 200, r.text
    await _report(client, refuge)

    body = (await client.get(f"/holds/{ref}", headers=bearer(refuge["police"]))).json()
    assert body["state"] == "arrived" and body["closeCode"] is None
    _withdrawn(body)

    await web_sign_in(client, refuge["police"])
    page = await client.get(f"/web/console/holds/{ref}")
    text = html.unescape(page.text)
    assert PHONE not in text and PROTOCOL not in text
    assert 'id="do-not-go"' in page.text, page.text


async def test_a_hold_at_a_compromised_place_cannot_be_extended(
    client: AsyncClient, world: World, refuge: dict[str, Any]
) -> None:
    """Between the report and its declines (a process that died in between: the expiry job
    declines what is left within 30 s) the patrol's hold was still `held`, and "Extend" gave
    it more time at a place an abuser knows. It is now refused, saying not to go there."""
    ref = await _hold(client, refuge, "withdraw-3")
    async with world.db.write() as s:  # the status committed, its declines not yet
        await s.execute(
            update(Facility)
            .where(Facility.id == refuge["facility"])
            .values(status="location_compromised", status_reason="Partner seen outside")
        )
    before = (await client.get(f"/holds/{ref}", headers=bearer(refuge["police"]))).json()
    assert before["state"] == "held" and before["doNotGo"] is True
    world.clock.advance(minutes=60)
    r = await client.post(f"/holds/{ref}/extend", headers=bearer(refuge["police"]), json={})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "not-admitting" and "do not go there" in r.json()["detail"]
    after = (await client.get(f"/holds/{ref}", headers=bearer(refuge["police"]))).json()
    assert (after["deadline"], after["extensions"]) == (before["deadline"], 0)
    await web_sign_in(client, refuge["police"])
    page = await client.get(f"/web/console/holds/{ref}")
    assert f"/web/console/holds/{ref}/extend" not in page.text
    assert 'id="do-not-go"' in page.text
