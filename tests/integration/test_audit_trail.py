"""An inspection reads the audit log: "who held the place at Refuge X at 02:13 on Saturday,
who released it, which token read its address, what became of hold KM4T-9RC7?"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient

from capacity.crypto import Address
from tests.conftest import World, bearer

HOUSEHOLD = {"adults": [{"gender": "female"}], "residenceStatus": "documented"}


async def _setting(world: World) -> dict[str, Any]:
    await world.operator("Admin", "admin")
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    refuge = await world.facility(
        "Refuges A", "Refuge X", address=Address(street="Rue Secrète 1", city="Bruxelles")
    )
    return {
        "admin": bearer(await world.token("Admin", "admin")),
        "staff": bearer(await world.token("Refuges A", "staff")),
        "police": bearer(await world.token("Zone Nord", "police")),
        "refuge": refuge,
    }


async def _hold(client: AsyncClient, w: dict[str, Any], key: str) -> str:
    r = await client.post(
        "/holds",
        json={"poolRef": w["refuge"].pools[0].ref, "need": "ipv", "household": HOUSEHOLD},
        headers={**w["police"], "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ref"])


async def test_an_admin_finds_what_happened_at_a_belgian_local_time_and_to_one_hold(
    client: AsyncClient, world: World
) -> None:
    """The audit could only be paged back from the newest entry, by facility, action or token:
    "Saturday 02:13" (Belgian time) meant paging through every address read since, and a
    hold's reference code (what the complaint quotes) found nothing. Now `from`/`to` take an
    instant with its offset (a `+` typed in a URL, read as a space, still counts as `+`) and
    `holdRef` gathers a hold's entries, with the actor's operator named."""
    w = await _setting(world)
    fid = w["refuge"].facility.id
    world.clock.set(datetime(2026, 1, 16, 20, 0, tzinfo=UTC))  # Friday evening: another hold
    friday = await _hold(client, w, "audit-friday-0001")
    world.clock.advance(minutes=10)
    assert (await client.post(f"/holds/{friday}/release", headers=w["police"])).is_success
    world.clock.set(datetime(2026, 1, 17, 1, 13, tzinfo=UTC))  # Saturday 02:13 in Brussels
    saturday = await _hold(client, w, "audit-saturday-01")
    world.clock.advance(minutes=20)
    r = await client.post(f"/holds/{saturday}/release", headers=w["police"])
    assert r.status_code == 200, r.text
    world.clock.advance(hours=3)
    assert (await client.get(f"/admin/facilities/{fid}/address", headers=w["admin"])).is_success

    night = {"from": "2026-01-17T02:00:00+01:00", "to": "2026-01-17T03:00:00+01:00"}
    r = await client.get("/admin/audit", headers=w["admin"], params=night)
    assert r.status_code == 200, r.text
    got = [(e["action"], e["objectId"], e["actorOperator"], e["at"]) for e in r.json()]
    assert got == [
        ("hold.released", saturday, "Zone Nord", "2026-01-17T01:33:00Z"),
        ("hold.created", saturday, "Zone Nord", "2026-01-17T01:13:00Z"),
    ]
    # as typed in a URL by hand: "+01:00" arrives as " 01:00"
    url = "/admin/audit?from=2026-01-17T02:00:00+01:00&to=2026-01-17T03:00:00+01:00"
    assert [e["action"] for e in (await client.get(url, headers=w["admin"])).json()] == [
        "hold.released",
        "hold.created",
    ]
    # one hold, by its code as read out on the phone (lower case, no dash)
    r = await client.get(
        "/admin/audit", headers=w["admin"], params={"holdRef": saturday.lower().replace("-", "")}
    )
    assert [e["action"] for e in r.json()] == ["hold.released", "hold.created"]
    assert {e["objectId"] for e in r.json()} == {saturday}
    r = await client.get(
        "/admin/audit", headers=w["admin"], params={"objectType": "hold", "objectId": friday}
    )
    assert [e["action"] for e in r.json()] == ["hold.released", "hold.created"]
    # the staff see the same on their facility's log
    r = await client.get(
        f"/staff/facilities/{fid}/audit", headers=w["staff"], params={**night, "holdRef": saturday}
    )
    assert [e["action"] for e in r.json()] == ["hold.released", "hold.created"]
    # a time without its offset is ambiguous (winter, summer, UTC?): refused, not guessed
    for bad in ({"from": "2026-01-17T02:00:00"}, {"to": "yesterday"}):
        r = await client.get("/admin/audit", headers=w["admin"], params=bad)
        assert r.status_code in (400, 422), r.text
    # a mistyped year, before or after any instant Python writes in UTC: refused, not a 500
    for bad in ({"from": "0001-01-01T00:00:00+01:00"}, {"to": "9999-12-31T23:00:00-01:00"}):
        r = await client.get("/admin/audit", headers=w["admin"], params=bad)
        assert r.status_code == 422 and r.json()["field"] in bad, r.text
        r = await client.get(f"/staff/facilities/{fid}/audit", headers=w["staff"], params=bad)
        assert r.status_code == 422 and r.json()["field"] in bad, r.text
    r = await client.get("/admin/audit", headers=w["admin"], params={"holdRef": "KM4T-9RC8"})
    assert r.status_code == 422 and r.json()["code"] == "bad-reference"
    r = await client.get(
        "/admin/audit", headers=w["admin"], params={"from": night["to"], "to": night["from"]}
    )
    assert r.status_code == 422


async def test_a_hold_marked_arrived_through_a_night_workers_link_names_the_link(
    client: AsyncClient, world: World
) -> None:
    """`holdRef` also finds the entry saying which night-worker link marked the arrival (its
    id is the entry's `objectId`): the hold's own entry has the role `staff_link` only."""
    from tests.integration.test_link_arrivals_and_streams import (
        _link_page_with_one_expected_hold,
    )

    ref, csrf, _ = await _link_page_with_one_expected_hold(client, world)
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": ref})
    assert r.status_code in (200, 303), r.status_code
    await world.operator("Admin", "admin")
    admin = bearer(await world.token("Admin", "admin"))
    r = await client.get("/admin/audit", headers=admin, params={"holdRef": ref})
    got = [(e["action"], e["objectType"], e["actorRole"]) for e in r.json()]
    assert got == [
        ("staff_link.hold_arrived", "staff_link", "link"),
        ("hold.arrived", "hold", "link"),
        ("hold.created", "hold", "helpline"),
    ]


async def test_every_instant_in_an_audit_entry_is_written_as_its_at_is(
    client: AsyncClient, world: World
) -> None:
    """`at` reads 2026-01-17T01:13:00Z but the instants in `detail` (a hold's deadline, a
    status's `until`, a scheme's planned end, a health condition's end) read
    2026-01-17T05:13:00+00:00: an inspector comparing them, or a script matching the hold's
    `deadline` in its own answer against its audit entry, saw two formats for one instant."""
    w = await _setting(world)
    fid = w["refuge"].facility.id
    world.clock.set(datetime(2026, 1, 17, 1, 13, tzinfo=UTC))
    ref = await _hold(client, w, "audit-format-0001")
    world.clock.advance(minutes=60)
    extended = await client.post(f"/holds/{ref}/extend", headers=w["police"])
    assert extended.status_code == 200, extended.text
    until = {"status": "reduced", "reason": "a wing closed", "until": "2026-01-20T09:00:00+01:00"}
    r = await client.put(f"/staff/facilities/{fid}/status", headers=w["staff"], json=until)
    assert r.status_code == 200, r.text
    r = await client.patch(
        f"/admin/facilities/{fid}", headers=w["admin"], json={"plannedEnd": "2026-03-31T22:00:00Z"}
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        "/admin/health-conditions/21000/negative_test",
        headers=w["admin"],
        json={"reason": "epidemic", "until": "2026-02-28T23:00:00+01:00"},
    )
    assert r.status_code in (200, 201), r.text

    entries = (await client.get("/admin/audit", headers=w["admin"])).json()
    instants = {
        (e["action"], key): value
        for e in entries
        for key, value in (e["detail"] or {}).items()
        if isinstance(value, str) and value[:4].isdigit() and "T" in value
    }
    assert instants[("hold.extended", "deadline")] == extended.json()["deadline"]
    assert instants[("facility.status", "until")] == "2026-01-20T08:00:00Z"
    assert instants[("facility.update", "plannedEnd")] == "2026-03-31T22:00:00Z"
    assert instants[("health_condition.set", "until")] == "2026-02-28T22:00:00Z"
    created = next(e for e in entries if e["action"] == "hold.created")
    assert created["detail"]["deadline"] == "2026-01-17T02:43:00Z"  # police: 90 minutes
    assert all(v.endswith("Z") for v in instants.values()), instants
