"""Shelter staff keep counts up to date; they see only their own operator's places."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from capacity.crypto import Address
from capacity.models import Alert, AuditEntry
from tests.conftest import World, bearer


async def _two_operators(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("CPAS B", "cpas")
    a = await world.facility(
        "Refuges A", "Refuge A-1", address=Address(street="Rue Secrète 1", city="Bruxelles")
    )
    b = await world.facility("CPAS B", "CPAS B-1", kind="cpas_place")
    return {
        "a": a,
        "b": b,
        "staff_a": await world.token("Refuges A", "staff"),
        "staff_b": await world.token("CPAS B", "staff"),
    }


async def test_staff_sees_own_facilities_with_address_and_each_read_is_audited(
    client: AsyncClient, world: World
) -> None:
    w = await _two_operators(world)
    r = await client.get("/staff/facilities", headers=bearer(w["staff_a"]))
    assert r.status_code == 200
    body = r.json()
    assert [f["alias"] for f in body] == ["Refuge A-1"]
    assert body[0]["address"]["street"] == "Rue Secrète 1"
    assert body[0]["pools"][0]["unitsFree"] == 7
    assert body[0]["location"]["arrondissement"]["nis"] == "21000"
    async with world.db.read() as s:
        reads = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "address.read")
        )
    assert reads == 1


async def test_object_level_checks_give_404_for_other_operators_objects(
    client: AsyncClient, world: World
) -> None:
    w = await _two_operators(world)
    fb, pb = w["b"].facility.id, w["b"].pools[0].id
    h = bearer(w["staff_a"])
    for path in (f"/staff/facilities/{fb}", f"/staff/pools/{pb}", f"/staff/pools/{pb}/history"):
        r = await client.get(path, headers=h)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not-found"
    r = await client.put(
        f"/staff/pools/{pb}/availability",
        headers={**h, "If-Match": '"1"'},
        json={"unitsTotal": 1, "unitsOccupied": 1},
    )
    assert r.status_code == 404
    r = await client.post(f"/staff/pools/{pb}/confirm", headers=h)
    assert r.status_code == 404
    r = await client.put(
        f"/staff/facilities/{fb}/status", headers=h, json={"status": "suspended", "reason": "x"}
    )
    assert r.status_code == 404
    # Unknown ids answer exactly like other operators' ids: no existence leak.
    r = await client.get("/staff/pools/999999", headers=h)
    assert r.status_code == 404
    # B's pool did not change.
    r = await client.get(f"/staff/pools/{pb}", headers=bearer(w["staff_b"]))
    assert r.json()["unitsTotal"] == 7 and r.json()["version"] == 1


async def test_if_match_update_then_stale_version_gets_412_with_current_state(
    client: AsyncClient, world: World
) -> None:
    w = await _two_operators(world)
    pid = w["a"].pools[0].id
    h = bearer(w["staff_a"])
    r = await client.get(f"/staff/pools/{pid}", headers=h)
    assert r.headers["etag"] == '"1"'
    r = await client.put(
        f"/staff/pools/{pid}/availability", headers=h, json={"unitsTotal": 8, "unitsOccupied": 3}
    )
    assert r.status_code == 428 and r.json()["code"] == "precondition-required"
    r = await client.put(
        f"/staff/pools/{pid}/availability",
        headers={**h, "If-Match": '"1"'},
        json={"unitsTotal": 8, "unitsOccupied": 3},
    )
    assert r.status_code == 200
    assert r.headers["etag"] == '"2"'
    assert r.json()["unitsFree"] == 5
    # A colleague still holding version 1 is told, with today's figures.
    r = await client.put(
        f"/staff/pools/{pid}/availability",
        headers={**h, "If-Match": '"1"'},
        json={"unitsTotal": 8, "unitsOccupied": 8},
    )
    assert r.status_code == 412
    problem = r.json()
    assert problem["code"] == "version-mismatch"
    assert problem["current"]["unitsOccupied"] == 3 and problem["current"]["version"] == 2
    assert r.headers["etag"] == '"2"'
    # the figures' time as every other time in the API: UTC with Z (SQLite's naive time too)
    assert problem["current"]["lastUpdate"].endswith("Z")
    # Over-reporting (emergency mattresses) is recorded and leaves nothing free.
    r = await client.put(
        f"/staff/pools/{pid}/availability",
        headers={**h, "If-Match": "2"},
        json={"unitsTotal": 8, "unitsOccupied": 10},
    )
    assert r.status_code == 200 and r.json()["unitsFree"] == 0
    r = await client.get(f"/staff/pools/{pid}/history", headers=h)
    kinds = [(x["kind"], x["unitsOccupied"]) for x in r.json()]
    assert kinds == [("update", 10), ("update", 3), ("create", 0)]


async def test_bad_counts_are_422_and_nothing_written(client: AsyncClient, world: World) -> None:
    w = await _two_operators(world)
    pid = w["a"].pools[0].id
    h = {**bearer(w["staff_a"]), "If-Match": '"1"'}
    for body in (
        {"unitsTotal": -1, "unitsOccupied": 0},
        {"unitsTotal": "five"},
        {"unitsTotal": 3, "unitsOccupied": 1, "unitsBlocked": 4},
        {"unitsTotal": 3, "unitsOccupied": 1, "extra": True},
        {"unitsTotal": 3, "unitsOccupied": 1, "surge24h": 3, "surge72h": 1},
    ):
        r = await client.put(f"/staff/pools/{pid}/availability", headers=h, json=body)
        assert r.status_code == 422, body
        assert r.json()["code"] in ("invalid-input",)
        assert "Traceback" not in r.text
    r = await client.get(f"/staff/pools/{pid}", headers=bearer(w["staff_a"]))
    assert r.json()["version"] == 1


async def test_still_accurate_refreshes_age_without_changing_counts(
    client: AsyncClient, world: World
) -> None:
    w = await _two_operators(world)
    pid = w["a"].pools[0].id
    h = bearer(w["staff_a"])
    world.clock.advance(hours=13)  # refuges are stale after 12 h
    r = await client.get(f"/staff/pools/{pid}", headers=h)
    assert r.json()["stale"] is True
    assert r.json()["dataAgeSeconds"] == 13 * 3600
    r = await client.post(f"/staff/pools/{pid}/confirm", headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200
    body = r.json()
    assert body["stale"] is False and body["dataAgeSeconds"] == 0
    assert body["version"] == 1 and body["unitsTotal"] == 7
    r = await client.get(f"/staff/pools/{pid}/history", headers=h)
    assert r.json()[0]["kind"] == "confirm"
    # Confirming figures that changed meanwhile is refused.
    r = await client.post(f"/staff/pools/{pid}/confirm", headers={**h, "If-Match": '"9"'})
    assert r.status_code == 412


async def test_location_compromised_alerts_admins(client: AsyncClient, world: World) -> None:
    w = await _two_operators(world)
    fid = w["a"].facility.id
    h = bearer(w["staff_a"])
    r = await client.put(
        f"/staff/facilities/{fid}/status", headers=h, json={"status": "location_compromised"}
    )
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await client.put(
        f"/staff/facilities/{fid}/status",
        headers=h,
        json={"status": "location_compromised", "reason": "Perpetrator seen outside"},
    )
    assert r.status_code == 200 and r.json()["status"] == "location_compromised"
    async with world.db.read() as s:
        alerts = (await s.scalars(select(Alert))).all()
    assert [a.kind for a in alerts] == ["location_compromised"]
    await world.operator("Admin", "admin")
    admin = await world.token("Admin", "admin")
    r = await client.get("/admin/alerts", headers=bearer(admin))
    assert r.json()[0]["facilityId"] == fid
    assert "Rue Secrète" not in r.text
    # Staff report it; only an admin lifts it (the partner may be outside still).
    r = await client.put(f"/staff/facilities/{fid}/status", headers=h, json={"status": "open"})
    assert r.status_code == 409 and r.json()["field"] == "status", r.text
    r = await client.put(
        f"/staff/facilities/{fid}/status",
        headers=bearer(admin),
        json={"status": "open", "reason": "Perpetrator in custody"},
    )
    assert r.status_code == 200 and r.json()["status"] == "open", r.text


async def test_roles_are_enforced_on_staff_routes(client: AsyncClient, world: World) -> None:
    await world.operator("Line", "helpline")
    await world.operator("Zone", "police")
    await world.operator("TF", "taskforce")
    for op, role in (("Line", "helpline"), ("Zone", "police"), ("TF", "taskforce")):
        tok = await world.token(op, role)
        r = await client.get("/staff/facilities", headers=bearer(tok))
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await client.get("/staff/facilities")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/staff/facilities", headers=bearer("abri_not-a-token"))
    assert r.status_code == 401


async def test_staff_read_their_facilitys_audit_log_and_no_one_elses(
    client: AsyncClient, world: World
) -> None:
    """R28: a refuge's coordinator sees who read its address, who held a place there and what
    became of it — newest first, with the actor's operator — and nothing about another
    operator's places; requesters see no audit log at all."""
    w = await _two_operators(world)
    await world.operator("Zone Nord", "police")
    police = bearer(await world.token("Zone Nord", "police"))
    staff_a, fid = bearer(w["staff_a"]), w["a"].facility.id
    assert (await client.get("/staff/facilities", headers=staff_a)).status_code == 200  # a read
    world.clock.advance(minutes=1)
    r = await client.post(
        "/holds",
        json={
            "poolRef": w["a"].pools[0].ref,
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}], "residenceStatus": "documented"},
        },
        headers={**police, "Idempotency-Key": "audit-hold-0001"},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    world.clock.advance(minutes=1)
    assert (await client.post(f"/staff/holds/{ref}/arrived", headers=staff_a)).is_success
    r = await client.get(f"/staff/facilities/{fid}/audit", headers=staff_a)
    assert r.status_code == 200, r.text
    entries = r.json()
    actions = [(e["action"], e["actorOperator"]) for e in entries]
    assert actions[:3] == [
        ("hold.arrived", "Refuges A"),
        ("hold.created", "Zone Nord"),
        ("address.read", "Refuges A"),
    ]
    assert "Rue Secrète" not in r.text  # who read the address, never the address
    only = await client.get(
        f"/staff/facilities/{fid}/audit", params={"action": "hold.created"}, headers=staff_a
    )
    assert [e["objectId"] for e in only.json()] == [ref]
    # paging back one entry at a time reaches every entry, also those written at one instant
    seen, before = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"beforeId": before} if before else {})}
        page = (
            await client.get(f"/staff/facilities/{fid}/audit", params=params, headers=staff_a)
        ).json()
        if not page:
            break
        seen.append(page[0]["id"])
        before = page[0]["id"]
    assert seen == [e["id"] for e in entries] and len(seen) >= 4  # facility + pool at creation
    bad = await client.get(f"/staff/facilities/{fid}/audit?beforeId=x", headers=staff_a)
    assert bad.status_code == 400 or bad.status_code == 422
    other = await client.get(f"/staff/facilities/{fid}/audit", headers=bearer(w["staff_b"]))
    assert other.status_code == 404
    assert (await client.get(f"/staff/facilities/{fid}/audit", headers=police)).status_code == 403


async def test_a_compromised_location_declines_the_holds_still_on_their_way(
    client: AsyncClient, world: World
) -> None:
    """A refuge reports its location compromised (the perpetrator knows the address): no new
    placements. But the households already held there, on their way with the police, stayed
    held, and nothing told their requesters: they could still be brought to that door. Their
    holds are now declined at once (the requester reads why, the units go back, audited as the
    staff's); a household already in the house stays, and the shelter moves it itself."""
    w = await _two_operators(world)
    fac = w["a"].facility
    pool = w["a"].pools[0]
    await world.operator("Zone Nord", "police")
    police = bearer(await world.token("Zone Nord", "police"))
    one = {"adults": [{"gender": "female"}]}
    refs = []
    for i in range(3):
        r = await client.post(
            "/holds",
            headers={**police, "Idempotency-Key": f"on-the-way-{i:02d}"},
            json={"poolRef": pool.ref, "need": "ipv", "household": one},
        )
        assert r.status_code == 201, r.text
        refs.append(r.json()["ref"])
    staff = bearer(w["staff_a"])
    assert (await client.post(f"/staff/holds/{refs[0]}/arrived", headers=staff)).status_code == 200
    r = await client.put(
        f"/staff/facilities/{fac.id}/status",
        headers=staff,
        json={"status": "location_compromised", "reason": "Perpetrator seen outside"},
    )
    assert r.status_code == 200, r.text
    states = [(await client.get(f"/holds/{ref}", headers=police)).json() for ref in refs]
    assert [h["state"] for h in states] == ["arrived", "declined", "declined"]
    assert "do not go there" in states[1]["closeReason"]
    assert "Perpetrator" not in str(states)  # the staff's reason stays with the staff
    r = await client.get(f"/staff/pools/{pool.id}", headers=staff)
    assert r.json()["unitsHeld"] == 0 and r.json()["unitsOccupied"] == 1
    async with world.db.read() as s:
        declines = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "hold.declined", AuditEntry.actor_role == "staff")
        )
    assert declines == 2


async def test_a_system_polling_its_facilities_can_leave_the_addresses_out(
    client: AsyncClient, world: World
) -> None:
    """A network's system polls GET /staff/facilities for its pools and their versions: every
    call read (and audited) every address, so "who read our address" in each facility's audit
    drowned in the system's own polls. ``withAddress=false`` gives the same list without
    addresses and without a read to audit; the default is unchanged."""
    w = await _two_operators(world)
    h = bearer(w["staff_a"])

    async def reads() -> int:
        async with world.db.read() as s:
            return int(
                await s.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(AuditEntry.action == "address.read")
                )
                or 0
            )

    r = await client.get("/staff/facilities", headers=h, params={"withAddress": "false"})
    assert r.status_code == 200, r.text
    assert [f["address"] for f in r.json()] == [None] and "Rue Secrète" not in r.text
    assert r.json()[0]["pools"][0]["version"] >= 1
    assert await reads() == 0
    r = await client.get("/staff/facilities", headers=h)
    assert r.json()[0]["address"]["street"] == "Rue Secrète 1"
    assert await reads() == 1
    r = await client.get("/staff/facilities", headers=h, params={"withAddress": "maybe"})
    assert r.status_code == 422 and r.json()["field"] == "withAddress", r.text
