"""The night a refuge's location becomes compromised, as each actor meets it: the police
console holding a place there, the helpline's dispatch system (API, SDK), the household
already in the house, the refuge's staff, the admin who lifts it and the task force."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from httpx import AsyncClient

from capacity.commands import PoolCreate
from placement import holds_service
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer

ONE_WOMAN = {"adults": [{"gender": "female"}], "languages": ["fr"]}
COMPROMISED_SAID = {
    "fr": "pour des raisons de sécurité : n'y allez pas",
    "nl": "om veiligheidsredenen",
    "de": "aus Sicherheitsgründen",
    "en": "for safety reasons: do not go there",
}


@pytest.fixture
async def night(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    await world.operator("Ligne 0800", "helpline")
    await world.operator("Admin", "admin")
    r = await world.facility(
        "Refuges A", "Refuge R", pools=[PoolCreate(label="Beds", units_total=3)]
    )
    return {
        "facility": r.facility.id,
        "pool": r.pools[0].ref,
        "police": await world.token("Zone Nord", "police"),
        "helpline": await world.token("Ligne 0800", "helpline"),
        "staff": await world.token("Refuges A", "staff"),
        "admin": await world.token("Admin", "admin"),
    }


async def _hold(client: AsyncClient, token: str, pool: str, key: str) -> str:
    r = await client.post(
        "/holds",
        json={"poolRef": pool, "need": "ipv", "household": ONE_WOMAN},
        headers={**bearer(token), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ref"])


async def _report(client: AsyncClient, night: dict[str, Any]) -> None:
    r = await client.put(
        f"/staff/facilities/{night['facility']}/status",
        headers=bearer(night["staff"]),
        json={"status": "location_compromised", "reason": "Partner seen outside"},
    )
    assert r.status_code == 200, r.text


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_the_police_hold_page_says_do_not_go_there_in_the_officers_language(
    client: AsyncClient, world: World, night: dict[str, Any]
) -> None:
    """The officer's hold page, after the refuge reported its location compromised, said
    "Refusée · Motif : The place can no longer take anyone…" in English on a French console
    (Dutch, German alike), in the same grey notice as "full tonight", and still told the
    patrol to "call the intake phone with the reference code" for the handover. It now says
    it in the officer's language, as an alert, and gives no handover instruction."""
    ref = await _hold(client, night["police"], night["pool"], "night-police-1")
    await web_sign_in(client, night["police"])
    world.clock.advance(minutes=3)
    await _report(client, night)
    for lang, said in COMPROMISED_SAID.items():
        client.headers["Accept-Language"] = lang
        page = await client.get(f"/web/console/holds/{ref}")
        assert page.status_code == 200
        alert = re.search(r'<p class="error" role="alert" id="close-reason">(.*?)</p>', page.text)
        assert alert, page.text
        assert said in html.unescape(alert[1]), (lang, alert[1])
        text = _text(page.text)
        if lang != "en":
            assert "The place can no longer take anyone" not in text, lang
        assert "Call the intake phone with the reference code" not in text, lang
        assert 'data-state="declined"' in page.text  # what the 15-s look reloads on
        console = await client.get("/web/console")
        ended = _text(console.text.split('id="ended-holds"')[1].split("</section>")[0])
        assert ref in ended and said in ended, (lang, ended)


async def test_the_admins_lift_gives_the_place_to_the_oldest_request_in_line_at_once(
    client: AsyncClient, world: World, night: dict[str, Any]
) -> None:
    """While the location is compromised the helpline's request in line is never offered the
    refuge, though its places are free (the holds on their way were declined). When the
    admin lifts it, the request in line got nothing until the worker's next round, and a
    search in those seconds could take the place first; a reopening by the staff (page or
    API) already served the line at once. The admin's lift now does too."""
    police = await _hold(client, night["police"], night["pool"], "night-police-2")
    others = [
        await _hold(client, night["helpline"], night["pool"], f"night-full-{i}") for i in (1, 2)
    ]
    r = await client.post(f"/staff/holds/{others[0]}/arrived", headers=bearer(night["staff"]))
    assert r.status_code == 200, r.text
    line = await client.post(
        "/standing-requests",
        json={"search": {"household": ONE_WOMAN, "need": "ipv"}, "minutes": 720},
        headers={**bearer(night["helpline"]), "Idempotency-Key": "night-line-1"},
    )
    assert line.status_code == 201 and line.json()["state"] == "waiting", line.text
    sref = line.json()["ref"]
    world.clock.advance(minutes=2)
    await _report(client, night)  # declines the two on their way: two beds free at R
    for ref in (police, others[1]):
        hold = await client.get(
            f"/holds/{ref}", headers=bearer(night["helpline"] if ref != police else night["police"])
        )
        assert hold.json()["state"] == "declined"
    waiting = await client.get(f"/standing-requests/{sref}", headers=bearer(night["helpline"]))
    assert waiting.json()["state"] == "waiting", waiting.text  # never offered R

    world.clock.advance(minutes=30)
    r = await client.put(
        f"/admin/facilities/{night['facility']}/status",
        headers=bearer(night["admin"]),
        json={"status": "open", "reason": "Partner in custody"},
    )
    assert r.status_code == 200 and r.json()["status"] == "open", r.text
    offered = await client.get(f"/standing-requests/{sref}", headers=bearer(night["helpline"]))
    assert offered.json()["state"] == "offered", offered.text
    assert offered.json()["hold"]["place"]["alias"] == "Refuge R"


async def test_an_expired_holds_reason_is_in_the_officers_language(
    client: AsyncClient, world: World, night: dict[str, Any]
) -> None:
    """Abri's own reason for an expiry ("deadline passed") was English on every console."""
    ref = await _hold(client, night["police"], night["pool"], "night-police-2")
    world.clock.advance(minutes=91)  # past the police hold's 90 minutes
    await holds_service.expire_due_holds(world.db, world.clock.now())  # the sweeper came
    await web_sign_in(client, night["police"])
    for lang, said in {"fr": "délai dépassé", "nl": "termijn verstreken", "de": "Frist"}.items():
        client.headers["Accept-Language"] = lang
        page = _text((await client.get(f"/web/console/holds/{ref}")).text)
        assert said in page and "deadline passed" not in page, (lang, page)
