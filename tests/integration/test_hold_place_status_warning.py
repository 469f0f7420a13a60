"""A hold at a place that has since closed to new admissions, or suspended, says so.

The officer held a bed for a household; an hour later the shelter closed to new admissions
(or suspended its service). The hold stays valid — the place promised that bed, and its staff
can still decline it — and can be extended, but nothing told the officer the place's status had
changed: the patrol would drive there without calling. The requester's view now carries
``placeWarning`` (``closed_to_admissions`` / ``suspended``) while the hold is held, the console's
hold page says "call before going", and the SDK reads it. Never the staff's reason.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from httpx import AsyncClient

from capacity.commands import PoolCreate
from clients import sdk
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer

HOUSEHOLD = {"adults": [{"gender": "female"}], "languages": ["fr"]}


@pytest.fixture
async def place(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    fa = await world.facility(
        "Refuges A", "Refuge A-1", pools=[PoolCreate(label="Beds", units_total=4)]
    )
    return {
        "fid": fa.facility.id,
        "pool": fa.pools[0].ref,
        "police": bearer(await world.token("Zone Nord", "police")),
        "police_token": await world.token("Zone Nord", "police"),
        "staff": bearer(await world.token("Refuges A", "staff")),
    }


async def _status(client: AsyncClient, place: dict[str, Any], status: str) -> None:
    r = await client.put(
        f"/staff/facilities/{place['fid']}/status",
        headers=place["staff"],
        json={"status": status, "reason": "Heating broken in wing B"},
    )
    assert r.status_code == 200, r.text


async def test_the_hold_says_the_place_has_since_stopped_admitting(
    client: AsyncClient, place: dict[str, Any]
) -> None:
    r = await client.post(
        "/holds",
        headers={**place["police"], "Idempotency-Key": "zone-nord-0001"},
        json={"poolRef": place["pool"], "need": "ipv", "household": HOUSEHOLD},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    assert r.json()["placeWarning"] is None
    await _status(client, place, "closed_to_admissions")
    r = await client.get(f"/holds/{ref}", headers=place["police"])
    body = r.json()
    assert body["state"] == "held" and body["placeWarning"] == "closed_to_admissions"
    assert body["intakePhone"]  # still valid: call the place before going
    assert "Heating" not in r.text
    assert msgspec.json.decode(r.content, type=sdk.Hold).place_warning == "closed_to_admissions"
    # still extendable; the warning goes on
    r = await client.post(f"/holds/{ref}/extend", headers=place["police"], json={})
    assert r.status_code == 200, r.text
    assert r.json()["placeWarning"] == "closed_to_admissions"
    listed = (await client.get("/holds?state=held", headers=place["police"])).json()
    assert [h["placeWarning"] for h in listed] == ["closed_to_admissions"]
    # the console's hold page says it
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, place["police_token"])
    page = (await client.get(f"/web/console/holds/{ref}")).text
    warning = re.search(r'<p class="error" role="alert" id="place-status">(.*?)</p>', page, re.S)
    assert warning, page
    assert "The place has since closed to new admissions: call before going." in warning.group(1)
    assert 'data-place-warning="closed_to_admissions"' in page  # the open page looks for it
    assert "Heating" not in page
    client.headers["Accept-Language"] = "fr"
    page = (await client.get(f"/web/console/holds/{ref}")).text
    assert "Ce lieu n'accepte plus de nouvelles admissions depuis : appelez avant d'y aller." in (
        page.replace("&#39;", "'")
    )
    await _status(client, place, "suspended")
    r = await client.get(f"/holds/{ref}", headers=place["police"])
    assert r.json()["placeWarning"] == "suspended"
    client.headers["Accept-Language"] = "en"
    page = (await client.get(f"/web/console/holds/{ref}")).text
    assert "The place has since suspended its service: call before going." in page
    # reopened: nothing to warn about; an ended hold warns of nothing either
    await _status(client, place, "open")
    assert (await client.get(f"/holds/{ref}", headers=place["police"])).json()[
        "placeWarning"
    ] is None
    await _status(client, place, "suspended")
    r = await client.post(f"/holds/{ref}/release", headers=place["police"])
    assert r.status_code == 200 and r.json()["placeWarning"] is None
    page = (await client.get(f"/web/console/holds/{ref}")).text
    assert 'id="place-status"' not in page
