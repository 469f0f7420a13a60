"""The night worker's link page reports its own facility's location compromised (the worker at
the door is the one most likely to see the partner outside): the staff page's explanation, a
reason and a ticked confirmation, then the API's path (``holds_service.set_facility_status``,
never lifting it), audited as the link's, an alert for admins. Nothing else about the status,
and no other facility."""

from __future__ import annotations

import html
import re
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from capacity import registry
from capacity.audit import CLI
from capacity.clock import FrozenClock
from capacity.commands import StatusChange
from capacity.models import Alert, AuditEntry
from placement.holds_service import counters_agree
from tests.browser.web_helpers import csrf_of, seed_world
from tests.conftest import World, bearer
from tests.integration.test_staff_links import issue, open_link

ONE_WOMAN = {"adults": [{"gender": "female"}]}


async def _hold(client: AsyncClient, token: str, pool_ref: str, key: str) -> str:
    r = await client.post(
        "/holds",
        json={"poolRef": pool_ref, "need": "ipv", "household": ONE_WOMAN},
        headers={**bearer(token), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ref"])


async def _states(client: AsyncClient, token: str, refs: list[str]) -> list[str]:
    return [
        (await client.get(f"/holds/{ref}", headers=bearer(token))).json()["state"] for ref in refs
    ]


async def _status(client: AsyncClient, staff: str, fid: int) -> str:
    r = await client.get(f"/staff/facilities/{fid}", headers=bearer(staff))
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


async def _rows(world: World, *actions: str) -> list[AuditEntry]:
    async with world.db.read() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.id)
                )
            ).all()
        )


async def _alerts(world: World) -> list[Any]:
    async with world.db.read() as s:
        return list((await s.execute(select(Alert.kind, Alert.facility_id))).all())


async def _link_page(client: AsyncClient, w: dict[str, object], **body: Any) -> tuple[int, str]:
    """A night worker's link page open for Refuge Iris: (the link's id, the page's CSRF)."""
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    r, secret = await issue(client, str(w["staff"]), fid, **body)
    assert r.status_code == 201, r.text
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    assert page.status_code == 200
    return int(r.json()["id"]), csrf_of(page.text)


async def test_a_night_worker_reports_the_location_compromised_from_the_link_page(
    client: AsyncClient, world: World
) -> None:
    """The partner is seen outside: the worker at the door, on the link page, reports it for
    the link's facility. The page says what happens and asks for a confirmation (without it
    nothing changes); then, as from the staff page: no new placements, the holds on their way
    declined (their requesters told not to come), households in the house left, an alert for
    admins, audited as the link's (which link did it is recorded with the status change). The
    page then says only an administrator lifts it and offers nothing to lift it."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff, police = str(w["staff"]), str(w["police"])
    iris, nord = w["ixl"].pools[0].ref, w["sch"].pools[0].ref  # type: ignore[attr-defined]
    on_the_way = [await _hold(client, police, iris, f"link-compromised-{i}") for i in range(2)]
    in_house = await _hold(client, police, iris, "link-compromised-in-house")
    r = await client.post(f"/staff/holds/{in_house}/arrived", headers=bearer(staff))
    assert r.status_code == 200, r.text
    elsewhere = await _hold(client, police, nord, "link-compromised-elsewhere")
    client.headers["Accept-Language"] = "en"
    link_id, csrf = await _link_page(client, w)
    page = await client.get("/web/link")
    form = re.search(
        r'<form[^>]*id="compromised-form-' + str(fid) + r'".*?</form>', page.text, re.S
    )
    assert form, page.text
    said = " ".join(html.unescape(form[0]).split())
    assert f'action="/web/link/facilities/{fid}/status"' in said
    assert 'name="status" value="location_compromised"' in said
    assert "no new placements" in said and "declined" in said and "told not to come" in said
    assert "Only an Abri administrator can lift it" in said
    assert 'type="checkbox"' in said and 'name="confirm"' in said and "required" in said
    # the page says what the link may do, this report included
    scope = re.search(r'<p[^>]*id="link-scope">(.*?)</p>', page.text, re.S)
    assert scope and "report the location compromised" in html.unescape(scope[1])
    url = f"/web/link/facilities/{fid}/status"
    report = {"csrf": csrf, "status": "location_compromised", "reason": "Partner seen outside"}

    r = await client.post(url, data=report)  # not confirmed: nothing changes
    assert r.status_code == 422
    assert "Tick the box to confirm that the location is compromised" in r.text
    assert 'value="Partner seen outside"' in r.text  # what was typed is kept
    assert await _status(client, staff, fid) == "open"
    assert await _rows(world, "facility.status", "staff_link.status") == []
    assert await _states(client, police, on_the_way) == ["held", "held"]
    assert await _alerts(world) == []

    r = await client.post(url, data={**report, "confirm": "yes"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/web/link?ok=compromised#status"
    page = await client.get(r.headers["location"])
    assert "Location reported compromised" in page.text
    card = html.unescape(re.search(r'id="status".*?</section>', page.text, re.S)[0])  # type: ignore[index]
    assert "Location compromised" in card and "Only an Abri administrator" in card
    assert "<form" not in card  # nothing offers to lift it
    assert await _status(client, staff, fid) == "location_compromised"
    assert await _states(client, police, on_the_way) == ["declined", "declined"]
    assert await _states(client, police, [in_house, elsewhere]) == ["arrived", "held"]
    closed = (await client.get(f"/holds/{on_the_way[0]}", headers=bearer(police))).json()
    assert "do not go there" in closed["closeReason"] and "Partner" not in closed["closeReason"]
    assert await _alerts(world) == [("location_compromised", fid)]
    (status,) = await _rows(world, "facility.status")
    assert status.actor_role == "link" and status.detail["to"] == "location_compromised"
    assert status.detail["reason"] == "Partner seen outside"
    (which,) = await _rows(world, "staff_link.status")
    assert which.object_id == str(link_id) and which.facility_id == fid
    assert which.actor_role == "link" and which.at == status.at
    assert "Partner" not in str(which.detail)  # the reason once, where retention clears it
    declines = await _rows(world, "hold.declined")
    assert [d.actor_role for d in declines] == ["link", "link"]
    assert await counters_agree(world.db) == []

    # the same form sent again (a second tap): the place as it is, no second alert
    r = await client.post(url, data={**report, "confirm": "yes"})
    assert r.status_code == 303
    assert await _alerts(world) == [("location_compromised", fid)]
    assert await _status(client, staff, fid) == "location_compromised"


async def test_a_link_reports_only_its_own_facility_and_no_other_status(
    client: AsyncClient, world: World
) -> None:
    """Another facility's id — the same operator's other place, or another operator's — is 404
    and changes nothing; any status but ``location_compromised`` is refused (a link never opens,
    closes or suspends a place); the staff page's route stays closed to a link session."""
    w = await seed_world(world)
    staff, police = str(w["staff"]), str(w["police"])
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    nord = w["sch"].facility.id  # type: ignore[attr-defined]
    ref = await _hold(client, police, w["sch"].pools[0].ref, "link-not-mine")  # type: ignore[attr-defined]
    await world.operator("Autre Asbl", "shelter_operator")
    other = await world.facility("Autre Asbl", "Maison B")
    _, csrf = await _link_page(client, w)
    report = {"csrf": csrf, "status": "location_compromised", "reason": "X", "confirm": "yes"}
    for target in (nord, other.facility.id, 999999):
        r = await client.post(f"/web/link/facilities/{target}/status", data=report)
        assert r.status_code == 404, target
        assert "Refuge Nord" not in r.text and "Maison B" not in r.text
    r = await client.post(f"/web/staff/facilities/{nord}/status", data=report)
    assert r.status_code == 403
    for status in ("closed_to_admissions", "suspended", "reduced", "open"):
        r = await client.post(
            f"/web/link/facilities/{fid}/status", data={**report, "status": status}
        )
        assert r.status_code == 422, status
    assert await _states(client, police, [ref]) == ["held"]
    assert [await _status(client, staff, f) for f in (fid, nord)] == ["open", "open"]
    assert await _rows(world, "facility.status", "staff_link.status") == []
    assert await _alerts(world) == []


async def test_a_revoked_or_expired_link_cannot_report_it(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    w = await seed_world(world)
    staff = str(w["staff"])
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    link_id, csrf = await _link_page(client, w)
    r = await client.post(f"/staff/links/{link_id}/revoke", headers=bearer(staff))
    assert r.status_code == 200
    report = {"csrf": csrf, "status": "location_compromised", "reason": "X", "confirm": "yes"}
    r = await client.post(f"/web/link/facilities/{fid}/status", data=report)
    assert r.status_code == 403
    client.cookies.clear()
    _, csrf = await _link_page(client, w, hours=1)
    clock.advance(minutes=61)
    r = await client.post(f"/web/link/facilities/{fid}/status", data={**report, "csrf": csrf})
    assert r.status_code == 403
    assert await _status(client, staff, fid) == "open"
    assert await _rows(world, "facility.status", "staff_link.status") == []
    assert await _alerts(world) == []


async def test_a_link_page_of_a_compromised_place_says_only_an_admin_lifts_it(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    """Reported before the night began (by staff, the API or an admin): the link page says so
    and that only an administrator lifts it, and offers no form for the status."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    await registry.set_status(
        world.db,
        fid,
        StatusChange(status="location_compromised", reason="Seen"),
        actor=CLI,
        now=clock.now(),
    )
    client.headers["Accept-Language"] = "en"
    await _link_page(client, w)
    page = await client.get("/web/link")
    card = html.unescape(re.search(r'id="status".*?</section>', page.text, re.S)[0])  # type: ignore[index]
    assert "Location compromised" in card
    assert "Only an Abri administrator can lift this status" in card
    assert "<form" not in card and 'id="compromised-form' not in page.text
