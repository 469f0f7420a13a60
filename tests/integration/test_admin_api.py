"""Admins register operators, tokens, facilities (templates, CSV) and pools."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from capacity.models import AuditEntry, Facility, Pool
from capacity.settings import Settings
from tests.conftest import World, bearer

GOOD_CSV = """operator,alias,municipality,template,intake_phone,street,city,pools,accepts_pets
Refuges A,Hotel H-1,21015,requisitioned_crisis_hotel,+32 2 555 11 11,Rue X 1,Schaerbeek,Rooms:room:2:10,yes
Refuges A,Refuge R-2,Liège,ipv_refuge,+32 4 555 22 22,,,,
Refuges A,Nuit N-3,35013,night_shelter,+32 59 55 33 33,,,Beds:bed:1:20,
"""


NEW_REFUGE = {
    "operator": "Refuges A",
    "alias": "X",
    "municipalityNis": "21004",
    "intakePhone": "+32 2 555 00 00",
    "template": "ipv_refuge",
}


async def _admin(world: World) -> str:
    await world.operator("Admin", "admin")
    await world.operator("Refuges A", "shelter_operator")
    return await world.token("Admin", "admin")


async def test_create_facility_from_template_has_secret_address_and_pools(
    client: AsyncClient, world: World
) -> None:
    h = bearer(await _admin(world))
    r = await client.get("/admin/policy-templates", headers=h)
    names = {t["name"] for t in r.json()}
    assert {
        "ipv_refuge",
        "requisitioned_crisis_hotel",
        "cpas_emergency_flat",
        "night_shelter",
    } <= names
    r = await client.post(
        "/admin/facilities",
        headers=h,
        json={
            "operator": "Refuges A",
            "alias": "Hôtel Requis 1",
            "municipalityNis": "21009",
            "template": "requisitioned_crisis_hotel",
            "intakePhone": "+32 2 555 00 00",
            "address": {"street": "Avenue Louise 1", "postalCode": "1050", "city": "Bruxelles"},
            "plannedEnd": "2026-03-01T00:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "crisis_hotel" and body["secretAddress"] is True
    assert [p["unitKind"] for p in body["pools"]] == ["room", "family_room"]
    assert body["policy"]["acceptsUndocumented"] is True
    assert "Avenue Louise" not in r.text  # admin facility views carry no address
    fid = body["id"]
    r = await client.get(f"/admin/facilities/{fid}/address", headers=h)
    assert r.json()["street"] == "Avenue Louise 1"
    async with world.db.read() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "address.read", AuditEntry.facility_id == fid)
        )
    assert n == 1
    # A night shelter template is public by default, a refuge secret.
    r = await client.post(
        "/admin/facilities",
        headers=h,
        json={
            "operator": "Refuges A",
            "alias": "Nuit 1",
            "municipalityNis": "21004",
            "template": "night_shelter",
            "intakePhone": "+32 2 555 00 01",
        },
    )
    assert r.json()["secretAddress"] is False


async def test_facility_input_errors_are_clear_422s(client: AsyncClient, world: World) -> None:
    h = bearer(await _admin(world))
    base = dict(NEW_REFUGE)
    cases = [
        ({**base, "municipalityNis": "99999"}, "unknown-area", "municipalityNis"),
        ({**base, "template": "palace"}, "invalid-input", "template"),
        ({**base, "template": None}, "invalid-input", "kind"),
        ({**base, "intakePhone": "call me"}, "invalid-input", "intakePhone"),
        ({**base, "policy": {"maxBoyAge": 40}}, "invalid-input", "policy.maxBoyAge"),
        (
            {**base, "validFrom": "2026-05-01T00:00:00Z", "plannedEnd": "2026-04-01T00:00:00Z"},
            "invalid-input",
            "plannedEnd",
        ),
    ]
    for body, code, field in cases:
        r = await client.post("/admin/facilities", headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == code
        assert r.json()["field"] == field, r.json()
    r = await client.post("/admin/facilities", headers=h, json={**base, "operator": "Nobody"})
    assert r.status_code == 404
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Facility)) == 0
    r = await client.post("/admin/facilities", headers=h, json=base)
    assert r.status_code == 201
    r = await client.post("/admin/facilities", headers=h, json=base)
    assert r.status_code == 409 and r.json()["code"] == "already-exists"


async def test_a_time_without_its_offset_or_out_of_range_is_a_422_not_a_500(
    client: AsyncClient, world: World
) -> None:
    """ "2030-01-01T10:00:00" is 10:00 where? Every instant a client sends must carry its
    offset; a bare local time was compared with an aware clock and answered 500."""
    h = bearer(await _admin(world))
    fid = (await world.facility("Refuges A", "Refuge A-1")).facility.id
    naive = "2030-01-01T10:00:00"
    base = dict(NEW_REFUGE)
    calls = [
        ("POST", "/admin/facilities", {**base, "validFrom": naive}, "validFrom"),
        ("POST", "/admin/facilities", {**base, "plannedEnd": naive}, "plannedEnd"),
        ("PATCH", f"/admin/facilities/{fid}", {"plannedEnd": naive}, "plannedEnd"),
        (
            "PUT",
            f"/admin/facilities/{fid}/status",
            {"status": "suspended", "reason": "works", "until": naive},
            "until",
        ),
        (
            "POST",
            "/admin/tokens",
            {"operator": "Refuges A", "role": "staff", "expiresAt": naive},
            "expiresAt",
        ),
        ("POST", "/admin/schemes/extend", {"plannedEnd": naive}, "plannedEnd"),
        (
            "PUT",
            "/admin/health-conditions/04000/negative_test",
            {"reason": "x", "until": naive},
            "until",
        ),
    ]
    staff = await world.token("Refuges A", "staff")
    calls.append(
        (
            "PUT",
            f"/staff/facilities/{fid}/status",
            {"status": "suspended", "reason": "x", "until": naive},
            "until",
            bearer(staff),
        )  # type: ignore[arg-type]
    )
    for method, url, body, field, *auth in calls:
        r = await client.request(method, url, headers=auth[0] if auth else h, json=body)
        assert r.status_code == 422, (url, body, r.text)
        assert r.json()["field"] == field and "timezone" in r.json()["detail"], r.json()
        # and a year the database cannot hold (it overflowed on conversion: a 500)
        far = {
            key: "9999-12-31T23:59:59-12:00" if value == naive else value
            for key, value in body.items()
        }
        r = await client.request(method, url, headers=auth[0] if auth else h, json=far)
        assert r.status_code == 422 and r.json()["field"] == field, (url, r.text)
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Facility)) == 1
    r = await client.put(
        f"/staff/facilities/{fid}/status",
        headers=bearer(staff),
        json={"status": "suspended", "reason": "x", "until": naive + "+01:00"},
    )
    assert r.status_code == 200


async def test_pre_2025_nis_code_maps_forward(client: AsyncClient, world: World) -> None:
    h = bearer(await _admin(world))
    r = await client.post(
        "/admin/facilities",
        headers=h,
        json={
            "operator": "Refuges A",
            "alias": "Old code",
            "municipalityNis": "11007",
            "kind": "refuge",
            "intakePhone": "+32 3 555 00 00",
        },
    )
    assert r.status_code == 201
    assert r.json()["location"]["municipality"]["nis"] == "11002"  # Borsbeek -> Antwerpen


async def test_csv_import_all_or_nothing(client: AsyncClient, world: World) -> None:
    h = {**bearer(await _admin(world)), "Content-Type": "text/csv"}
    bad = (
        GOOD_CSV + "Refuges A,Bad B-4,99999,ipv_refuge,+32 2 555 44 44,,,,\n"
        "Refuges A,Bad B-5,21004,no_template,+32 2 555 55 55,,,,\n"
    )
    r = await client.post("/admin/facilities/import", headers=h, content=bad.encode())
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "import-rejected"
    assert [e["row"] for e in problem["errors"]] == [5, 6]
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Facility)) == 0
    r = await client.post("/admin/facilities/import", headers=h, content=GOOD_CSV.encode())
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 3
    async with world.db.read() as s:
        facs = {f.alias: f for f in (await s.scalars(select(Facility))).all()}
        pools = (await s.scalars(select(Pool))).all()
    assert facs["Hotel H-1"].policy["acceptsPets"] is True
    assert facs["Refuge R-2"].municipality_nis == "62063"  # by name
    assert len(pools) == 1 + 2 + 1
    # Re-importing the same file conflicts on row 2 and adds nothing.
    r = await client.post("/admin/facilities/import", headers=h, content=GOOD_CSV.encode())
    assert r.status_code == 409 or r.status_code == 422
    assert "Row 2" in r.json()["detail"]
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Facility)) == 3


async def test_csv_import_lists_every_row_the_database_refuses(
    client: AsyncClient, world: World
) -> None:
    """A file whose rows are well formed but clash with what is registered (facilities
    already there) listed only the first such row: the admin fixed it, sent the file again,
    met the next one, and so on, row after row."""
    h = {**bearer(await _admin(world)), "Content-Type": "text/csv"}
    r = await client.post("/admin/facilities/import", headers=h, content=GOOD_CSV.encode())
    assert r.status_code == 201, r.text
    header, *_ = GOOD_CSV.splitlines()
    rows = [
        header,
        "Refuges A,Hotel H-9,21015,requisitioned_crisis_hotel,+32 2 555 99 99,,,,",  # new
        "Refuges A,Refuge R-2,Liège,ipv_refuge,+32 4 555 22 22,,,,",  # registered already
        "Refuges A,Nuit N-3,35013,night_shelter,+32 59 55 33 33,,,Beds:bed:1:20,",  # too
        "Refuges A,Refuge R-7,Gent,ipv_refuge,+32 9 555 77 77,,,,",  # new
    ]
    r = await client.post(
        "/admin/facilities/import", headers=h, content=("\n".join(rows) + "\n").encode()
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert [(e["row"], e["field"]) for e in problem["errors"]] == [(3, "alias"), (4, "alias")]
    assert "Refuge R-2" in problem["errors"][0]["message"]
    assert "Nuit N-3" in problem["errors"][1]["message"]
    assert problem["detail"].startswith("Row 3: ") and "Nothing was imported." in problem["detail"]
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Facility)) == 3


async def test_tokens_roles_must_fit_operator_kind_and_can_be_revoked(
    client: AsyncClient, world: World
) -> None:
    h = bearer(await _admin(world))
    await world.operator("Zone Nord", "police")
    r = await client.post(
        "/admin/tokens", headers=h, json={"operator": "Zone Nord", "role": "staff"}
    )
    assert r.status_code == 422 and r.json()["field"] == "role"
    r = await client.post(
        "/admin/tokens", headers=h, json={"operator": "Zone Nord", "role": "police"}
    )
    assert r.status_code == 201
    tok, tid = r.json()["token"], r.json()["id"]
    r = await client.get("/areas/provinces", headers=bearer(tok))
    assert r.status_code == 200
    r = await client.get("/admin/tokens", headers=h)
    assert tok not in r.text and all("token" not in t for t in r.json())
    r = await client.post(f"/admin/tokens/{tid}/revoke", headers=h)
    assert r.status_code == 204
    r = await client.get("/areas/provinces", headers=bearer(tok))
    assert r.status_code == 401


async def test_pool_admin_and_audit_log(client: AsyncClient, world: World) -> None:
    h = bearer(await _admin(world))
    view = await world.facility("Refuges A", "R1")
    r = await client.post(
        f"/admin/facilities/{view.facility.id}/pools",
        headers=h,
        json={
            "label": "Family",
            "unitKind": "family_room",
            "placesPerUnit": 5,
            "unitsTotal": 2,
            "surge24h": 1,
            "surge72h": 3,
        },
    )
    assert r.status_code == 201 and r.json()["surge72h"] == 3
    pid = r.json()["id"]
    r = await client.patch(f"/admin/pools/{pid}", headers=h, json={"surge72h": 0})
    assert r.status_code == 422  # 72 h includes 24 h
    r = await client.patch(f"/admin/pools/{pid}", headers=h, json={"placesPerUnit": 6})
    assert r.status_code == 200 and r.json()["placesPerUnit"] == 6
    r = await client.patch(
        f"/admin/facilities/{view.facility.id}", headers=h, json={"municipalityNis": "63023"}
    )
    assert r.json()["location"]["province"]["nis"] == "60000"
    r = await client.get("/admin/audit", headers=h, params={"facilityId": view.facility.id})
    actions = [a["action"] for a in r.json()]
    assert actions[:3] == ["facility.update", "pool.update", "pool.create"]


async def test_an_area_health_condition_reaches_every_option_in_it_and_goes_away(
    client: AsyncClient, world: World
) -> None:
    """R16: an admin switches "negative test" on for the province of Liège; options there
    carry it as a condition to meet (a warning, not an exclusion), options elsewhere do not,
    and each place's own policy is untouched; switched off, it is gone. Audited."""
    from capacity.commands import PoolCreate

    h = bearer(await _admin(world))
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    police = bearer(await world.token("Zone", "police"))
    liege = await world.facility(
        "Refuges",
        "Refuge Liège",
        municipality="62063",
        pools=[PoolCreate(label="B", units_total=4)],
    )
    await world.facility(
        "Refuges",
        "Refuge Ixelles",
        municipality="21009",
        pools=[PoolCreate(label="B", units_total=4)],
    )
    search = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}

    async def warned() -> dict[str, list[str]]:
        r = await client.post("/placements/search", json=search, headers=police)
        assert r.status_code == 200, r.text
        return {o["alias"]: [w["code"] for w in o["warnings"]] for o in r.json()["options"]}

    before = await warned()
    assert "health_condition_to_meet" not in before["Refuge Liège"]

    url = "/admin/health-conditions/60000/negative_test"
    r = await client.put(url, json={"reason": "Provincial measure"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["area"]["nameFr"] == "Liège" and r.json()["reason"] == "Provincial measure"
    r = await client.put(url, json={"reason": "Until the end of the outbreak"}, headers=h)
    assert r.status_code == 200 and r.json()["reason"] == "Until the end of the outbreak"
    listed = (await client.get("/admin/health-conditions", headers=h)).json()
    assert [(c["area"]["nis"], c["condition"]) for c in listed] == [("60000", "negative_test")]

    after = await warned()
    assert "health_condition_to_meet" in after["Refuge Liège"]  # still offered, with a condition
    assert "health_condition_to_meet" not in after["Refuge Ixelles"]
    own = (await client.get(f"/admin/facilities/{liege.facility.id}", headers=h)).json()
    assert own["policy"].get("healthConditions", []) == []  # the place's own policy is unchanged

    for path, body, code, field in (
        ("/admin/health-conditions/99999/negative_test", {"reason": "x"}, 422, "areaNis"),
        ("/admin/health-conditions/60000/vaccine", {"reason": "x"}, 422, "condition"),
    ):
        r = await client.put(path, json=body, headers=h)
        assert r.status_code == code and r.json()["field"] == field, r.text
    assert (await client.put(url, json={"reason": "x"}, headers=police)).status_code == 403

    assert (await client.delete(url, headers=h)).status_code == 204
    assert "health_condition_to_meet" not in (await warned())["Refuge Liège"]
    assert (await client.delete(url, headers=h)).status_code == 404
    async with world.db.read() as s:
        actions = (
            await s.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("health_condition.%"))
            )
        ).all()
    assert sorted(actions) == [
        "health_condition.remove",
        "health_condition.set",
        "health_condition.set",
    ]


async def test_area_health_conditions_under_concurrent_admins(world: World) -> None:
    """Two admins (or a double click) switching the same condition on, or off, at the same
    moment: one row, no error but a clear 404 for the one that found nothing left to remove."""
    import asyncio

    from capacity import health_rules
    from capacity.audit import CLI
    from capacity.errors import NotFound

    now = world.clock.now()
    results = await asyncio.gather(
        *(
            health_rules.set_condition(
                world.db, "60000", "negative_test", reason=f"measure {i}", actor=CLI, now=now
            )
            for i in range(8)
        )
    )
    assert sum(created for _view, created in results) == 1
    assert len(await health_rules.list_conditions(world.db)) == 1
    outcomes = await asyncio.gather(
        *(
            health_rules.remove_condition(world.db, "60000", "negative_test", actor=CLI, now=now)
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, NotFound) for o in outcomes if o is not None), outcomes
    assert await health_rules.list_conditions(world.db) == []
    async with world.db.read() as s:
        removed = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "health_condition.remove")
        )
    assert removed == 1


async def test_policy_fields_given_override_the_template_and_the_rest_is_kept(
    client: AsyncClient, world: World
) -> None:
    """A requisitioned hotel onboarded with one policy change keeps the template's other rules
    (it once silently lost them all: ``acceptsUndocumented`` fell back to false), and an edit
    of one field keeps the others."""
    from capacity.templates import TEMPLATES

    tpl = TEMPLATES["requisitioned_crisis_hotel"].policy
    h = bearer(await _admin(world))
    r = await client.post(
        "/admin/facilities",
        headers=h,
        json={
            "operator": "Refuges A",
            "alias": "Hôtel Requis 2",
            "municipalityNis": "63023",
            "template": "requisitioned_crisis_hotel",
            "intakePhone": "+32 87 55 00 00",
            "policy": {"languages": ["de", "fr"]},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    policy = body["policy"]
    assert policy["languages"] == ["de", "fr"]
    assert policy["acceptsUndocumented"] is tpl.accepts_undocumented is True
    assert policy["maxStayNights"] == tpl.max_stay_nights is not None
    assert policy["bedsForHouseholds"] is tpl.beds_for_households
    fid = body["id"]

    r = await client.patch(
        f"/admin/facilities/{fid}", headers=h, json={"policy": {"acceptsPets": True}}
    )
    assert r.status_code == 200, r.text
    policy = r.json()["policy"]
    assert policy["acceptsPets"] is True
    assert policy["languages"] == ["de", "fr"]
    assert policy["acceptsUndocumented"] is True
    # null clears a nullable limit; an unknown field or a bad value changes nothing.
    r = await client.patch(
        f"/admin/facilities/{fid}", headers=h, json={"policy": {"maxStayNights": None}}
    )
    assert r.status_code == 200 and r.json()["policy"]["maxStayNights"] is None
    for bad in (
        {"maxStayNights": 0},
        {"acceptsDragons": True},
        {"cost": None},
        {"childMinAge": 12, "childMaxAge": 6},
    ):
        r = await client.patch(f"/admin/facilities/{fid}", headers=h, json={"policy": bad})
        assert r.status_code == 422, (bad, r.text)
    r = await client.get("/admin/facilities", headers=h)
    (after,) = [f for f in r.json() if f["id"] == fid]
    assert after["policy"]["acceptsPets"] is True and after["policy"]["maxStayNights"] is None


async def test_schemes_are_extended_one_by_one_or_in_one_go_and_remember_their_first_end(
    client: AsyncClient, world: World
) -> None:
    """R07: crisis hotels planned for 3-5 months were extended again and again. An extension
    keeps the first planned end and counts; a winter plan is extended for all its hotels at
    once (only those ending before the new date, only extended, never shortened); the matcher
    stops warning that the scheme ends before the nights asked."""
    from datetime import timedelta

    h = bearer(await _admin(world))
    await world.operator("Hotels B", "hotel_partner")
    now = world.clock.now()
    ids = {}
    for op, alias, nis, days in (
        ("Refuges A", "Hotel L1", "62063", 5),  # Liège
        ("Refuges A", "Hotel L2", "62063", 12),
        ("Refuges A", "Hotel N1", "92094", 5),  # Namur: another province
        ("Refuges A", "Hotel L3", "62063", 200),  # ends after the new date: untouched
        ("Hotels B", "Hotel B1", "62063", 5),  # another operator
        ("Refuges A", "Hotel Gone", "62063", -30),  # ended a month ago: stays ended
    ):
        r = await client.post(
            "/admin/facilities",
            headers=h,
            json={
                "operator": op,
                "alias": alias,
                "municipalityNis": nis,
                "template": "requisitioned_crisis_hotel",
                "intakePhone": "+32 4 555 00 00",
                "plannedEnd": (now + timedelta(days=days)).isoformat(),
                "pools": [
                    {"label": "Rooms", "unitKind": "room", "placesPerUnit": 2, "unitsTotal": 5}
                ],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["extensions"] == 0 and r.json()["firstPlannedEnd"] is None
        ids[alias] = r.json()["id"]
    first_end = now + timedelta(days=5)

    # One by one: later counts, earlier (a correction) does not.
    r = await client.patch(
        f"/admin/facilities/{ids['Hotel N1']}",
        headers=h,
        json={"plannedEnd": (now + timedelta(days=40)).isoformat()},
    )
    assert r.status_code == 200 and r.json()["extensions"] == 1, r.text
    assert r.json()["firstPlannedEnd"].startswith(first_end.strftime("%Y-%m-%dT%H:%M"))
    r = await client.patch(
        f"/admin/facilities/{ids['Hotel N1']}",
        headers=h,
        json={"plannedEnd": (now + timedelta(days=30)).isoformat()},
    )
    assert r.json()["extensions"] == 1

    # A search for 20 nights: Hotel L1 warns that its scheme ends first.
    await world.operator("Zone", "police")
    police = bearer(await world.token("Zone", "police"))
    search = {
        "household": {"adults": [{"gender": "female"}]},
        "need": "ipv",
        "nights": 20,
        "preferredMunicipalityNis": "62063",
    }

    async def warns_past_end() -> set[str]:
        world.clock.advance(seconds=5)  # past the matcher's cache
        r = await client.post("/placements/search", headers=police, json=search)
        assert r.status_code == 200, r.text
        return {
            o["alias"]
            for o in r.json()["options"]
            if "runs_past_planned_end" in {w["code"] for w in o["warnings"]}
        }

    assert {"Hotel L1", "Hotel L2", "Hotel B1"} <= await warns_past_end()

    # In one go: operator A's schemes in the province of Liège ending within 60 days.
    new_end = (now + timedelta(days=60)).isoformat()
    r = await client.post(
        "/admin/schemes/extend",
        headers=h,
        json={"plannedEnd": new_end, "operator": "Refuges A", "areaNis": "60000"},
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["facilityIds"]) == sorted([ids["Hotel L1"], ids["Hotel L2"]])
    facs = {f["alias"]: f for f in (await client.get("/admin/facilities", headers=h)).json()}
    assert facs["Hotel L1"]["extensions"] == 1 and facs["Hotel L2"]["extensions"] == 1
    assert facs["Hotel L3"]["extensions"] == 0 and facs["Hotel B1"]["extensions"] == 0
    assert facs["Hotel N1"]["extensions"] == 1  # not in Liège
    assert facs["Hotel Gone"]["extensions"] == 0  # an ended scheme is not brought back
    assert {"Hotel L1", "Hotel L2"}.isdisjoint(await warns_past_end())
    # Again with the same date: nothing ends before it any more.
    r = await client.post(
        "/admin/schemes/extend", headers=h, json={"plannedEnd": new_end, "areaNis": "60000"}
    )
    assert r.json()["facilityIds"] == [ids["Hotel B1"]]
    async with world.db.read() as s:
        audited = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "facility.extended"))
        ).all()
    assert sorted(a.facility_id for a in audited) == sorted(
        [ids["Hotel L1"], ids["Hotel L2"], ids["Hotel B1"]]
    )
    assert all(a.detail["to"].startswith(new_end[:16]) for a in audited)
    # Bad input: a clear 4xx, nothing written.
    for bad in (
        {"plannedEnd": (now - timedelta(days=1)).isoformat()},
        {"plannedEnd": new_end, "areaNis": "99999"},
        {"plannedEnd": new_end, "operator": "Nobody"},
        {"plannedEnd": new_end, "kind": "castle"},
    ):
        r = await client.post("/admin/schemes/extend", headers=h, json=bad)
        assert 400 <= r.status_code < 500 and r.json()["code"], (bad, r.text)
    police_try = await client.post(
        "/admin/schemes/extend", headers=police, json={"plannedEnd": new_end}
    )
    assert police_try.status_code == 403


async def test_an_area_condition_ends_by_itself_at_its_until(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """A provincial measure with an end: offered with the condition until then, switched off
    by the job at ``until`` (not a second before), audited once however often or however
    many processes run the job; staff see the end too."""
    import asyncio
    from datetime import timedelta

    from capacity import health_rules
    from capacity.commands import PoolCreate
    from ops.scheduler import JobContext, load_jobs

    h = bearer(await _admin(world))
    await world.operator("Zone", "police")
    police = bearer(await world.token("Zone", "police"))
    staff = bearer(await world.token("Refuges A", "staff"))
    liege = await world.facility(
        "Refuges A",
        "Refuge Liège",
        municipality="62063",
        pools=[PoolCreate(label="B", units_total=4)],
    )
    search = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}

    async def warned() -> bool:
        r = await client.post("/placements/search", json=search, headers=police)
        assert r.status_code == 200, r.text
        (option,) = r.json()["options"]
        return "health_condition_to_meet" in [w["code"] for w in option["warnings"]]

    now = world.clock.now()
    url = "/admin/health-conditions/60000/negative_test"
    past = (now - timedelta(minutes=1)).isoformat()
    r = await client.put(url, json={"reason": "Outbreak", "until": past}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "until"
    ends = now + timedelta(days=14)
    r = await client.put(url, json={"reason": "Outbreak", "until": ends.isoformat()}, headers=h)
    assert r.status_code == 201 and r.json()["until"].startswith(ends.strftime("%Y-%m-%dT%H:%M"))
    mine = await client.get(f"/staff/facilities/{liege.facility.id}", headers=staff)
    assert mine.json()["areaConditions"][0]["until"] == r.json()["until"]
    assert await warned()

    job = load_jobs()["health_condition_lapse"]
    assert job.seconds <= 60
    ctx = JobContext(world.db, world.clock, settings, None)  # type: ignore[arg-type]
    world.clock.advance(days=13, hours=23, minutes=59, seconds=59)
    assert await job.fn(ctx) == 0 and await warned()  # not a second before
    world.clock.advance(seconds=1)
    done = await asyncio.gather(
        *(health_rules.lapse_due(world.db, now=world.clock.now()) for _ in range(4))
    )
    assert sorted(len(x) for x in done) == [0, 0, 0, 1]  # one of the four switched it off
    assert await job.fn(ctx) == 0  # and nothing is left for the next run
    assert not await warned()
    assert (await client.get("/admin/health-conditions", headers=h)).json() == []
    async with world.db.read() as s:
        lapsed = (
            await s.scalars(
                select(AuditEntry).where(AuditEntry.action == "health_condition.lapsed")
            )
        ).all()
    assert len(lapsed) == 1 and lapsed[0].detail["condition"] == "negative_test"
    # without an end: it stays until an admin switches it off
    r = await client.put(url, json={"reason": "Until further notice"}, headers=h)
    assert r.status_code == 201 and r.json()["until"] is None
    world.clock.advance(days=400)
    assert await job.fn(ctx) == 0 and await warned()


async def test_extending_a_measure_as_the_job_ends_it(
    client: AsyncClient, world: World, monkeypatch: Any
) -> None:
    """An admin extends a condition that is already due while the lapse job (another
    process) runs: the admin's row is locked, the job waits and then finds it no longer due.
    Before the lock, the job deleted the row between the admin's read and write: a 500."""
    import asyncio
    from datetime import timedelta

    from capacity import audit, health_rules

    h = bearer(await _admin(world))
    url = "/admin/health-conditions/04000/negative_test"
    now = world.clock.now()
    soon = {"reason": "Outbreak", "until": (now + timedelta(minutes=1)).isoformat()}
    assert (await client.put(url, json=soon, headers=h)).status_code == 201
    world.clock.advance(minutes=2)  # due; the job has not run yet
    job: list[asyncio.Task[Any]] = []
    record = audit.record

    async def record_then_let_the_job_in(s: Any, **kw: Any) -> Any:
        if kw.get("action") == "health_condition.set" and not job:
            job.append(asyncio.create_task(health_rules.lapse_due(world.db, now=world.clock.now())))
            await asyncio.sleep(0.2)  # the job reaches the row and waits for the admin
        return await record(s, **kw)

    monkeypatch.setattr(health_rules.audit, "record", record_then_let_the_job_in)
    later = {"reason": "Extended", "until": (now + timedelta(days=7)).isoformat()}
    r = await client.put(url, json=later, headers=h)
    assert r.status_code == 200, r.text
    assert await job[0] == []  # it waited, re-checked, and left the extended measure alone
    listed = (await client.get("/admin/health-conditions", headers=h)).json()
    assert [c["reason"] for c in listed] == ["Extended"]


async def test_an_address_in_another_municipality_is_refused(
    client: AsyncClient, world: World
) -> None:
    """The municipality is what the matcher keeps away from an area to avoid: a refuge in Liège
    (postal code 4000) registered by mistake under Bruxelles would be offered to a woman who
    must keep away from Liège. An address whose postal code belongs to other municipalities
    only is refused, naming the field; a code shared by two (1050: Bruxelles and Ixelles), a
    pre-2025 code now part of a merged municipality (9090 Melle) and an unknown code pass."""
    h = bearer(await _admin(world))
    bad = {**NEW_REFUGE, "address": {"street": "Rue X 1", "postalCode": "4000", "city": "Liège"}}
    r = await client.post("/admin/facilities", headers=h, json=bad)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "address.postalCode" and "Liège" in r.json()["detail"]
    for i, (nis, postal) in enumerate(
        (("21004", "1050"), ("21009", "1050"), ("44088", "9090"), ("21004", "0000"))
    ):
        ok = {
            **NEW_REFUGE,
            "alias": f"X{i}",
            "municipalityNis": nis,
            "address": {"street": "Rue X 1", "postalCode": postal, "city": "X"},
        }
        r = await client.post("/admin/facilities", headers=h, json=ok)
        assert r.status_code == 201, r.text
    fid = r.json()["id"]
    r = await client.put(
        f"/admin/facilities/{fid}/address",
        headers=h,
        json={"street": "Rue X 2", "postalCode": " 4000 ", "city": "Liège"},
    )
    assert r.status_code == 422 and r.json()["field"] == "postalCode", r.text
    csv_text = (
        "operator,alias,municipality,template,intake_phone,street,postal_code,city\n"
        "Refuges A,Y,Bruxelles,ipv_refuge,+32 2 555 00 00,Rue Y 1,4000,Liège\n"
    )
    r = await client.post(
        "/admin/facilities/import",
        headers={**h, "Content-Type": "text/csv"},
        content=csv_text.encode(),
    )
    assert r.status_code == 422 and "Liège" in r.text, r.text


async def test_the_audit_log_tells_what_one_leaked_token_did(
    client: AsyncClient, world: World
) -> None:
    """RUNBOOK: "A token may have leaked: revoke it first, then read GET /admin/audit for what
    it did". An organisation has several tokens (the office, the night phone, its feed
    system); the log showed only the operator and role, so the leaked token's reads of
    addresses could not be told from the others'."""
    h = bearer(await _admin(world))
    await world.facility("Refuges A", "Refuge R-1")
    ids = []
    for label in ("office", "night phone"):
        r = await client.post(
            "/admin/tokens",
            headers=h,
            json={"operator": "Refuges A", "role": "staff", "label": label},
        )
        assert r.status_code == 201
        ids.append((r.json()["id"], r.json()["token"]))
    (office_id, office), (leaked_id, leaked) = ids
    assert (await client.get("/staff/facilities", headers=bearer(office))).status_code == 200
    assert (await client.get("/staff/facilities", headers=bearer(leaked))).status_code == 200
    assert (await client.get("/staff/facilities", headers=bearer(leaked))).status_code == 200
    assert (await client.post(f"/admin/tokens/{leaked_id}/revoke", headers=h)).status_code == 204

    r = await client.get("/admin/audit", headers=h, params={"tokenId": leaked_id})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [row["action"] for row in rows] == ["address.read", "address.read"]
    assert {row["actorTokenId"] for row in rows} == {leaked_id}
    everything = (await client.get("/admin/audit", headers=h)).json()
    assert {row["actorTokenId"] for row in everything if row["action"] == "address.read"} == {
        office_id,
        leaked_id,
    }
    # older pages: beforeId
    first = (await client.get("/admin/audit", headers=h, params={"limit": 2})).json()
    rest = (
        await client.get("/admin/audit", headers=h, params={"beforeId": first[-1]["id"]})
    ).json()
    assert rest and all(row["id"] < first[-1]["id"] for row in rest)
    assert [row["id"] for row in first + rest] == [row["id"] for row in everything]


async def test_moving_a_facility_to_another_municipality_checks_its_address(
    client: AsyncClient, world: World
) -> None:
    """The postal-code check (an address must lie in the facility's municipality, which is
    what searches keep away from an area to avoid) held at creation and on PUT .../address,
    but PATCH could move a refuge whose address says 4000 Liège to Bruxelles: the refuge in
    Liège was then offered to a woman who must keep away from Liège. Moving it where its
    address lies, or a facility without an address, still works."""
    h = bearer(await _admin(world))
    liege = {
        **NEW_REFUGE,
        "municipalityNis": "62063",
        "address": {"street": "Rue X 1", "postalCode": "4000", "city": "Liège"},
    }
    r = await client.post("/admin/facilities", headers=h, json=liege)
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    r = await client.patch(f"/admin/facilities/{fid}", headers=h, json={"municipalityNis": "21004"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "municipalityNis" and "municipalityNis=" in r.json()["detail"]
    # the refusal tells how to move it, but names no part of the address...
    assert "4000" not in r.text and "Liège" not in r.text and "Rue X" not in r.text
    # ...yet it tells whether the address lies in that municipality: tried for many, it
    # would locate the refuge with no address read in the audit. It is audited.
    audit = (await client.get("/admin/audit", headers=h, params={"facilityId": fid})).json()
    compared = [e for e in audit if e["action"] == "address.compared"]
    assert compared and compared[0]["detail"] == {"municipalityNis": "21004"}, audit
    got = (await client.get(f"/admin/facilities/{fid}", headers=h)).json()
    assert got["location"]["municipality"]["nis"] == "62063"  # nothing changed
    r = await client.patch(f"/admin/facilities/{fid}", headers=h, json={"alias": "Renamed"})
    assert r.status_code == 200, r.text  # other changes do not need the address
    r = await client.put(
        f"/admin/facilities/{fid}/address",
        headers=h,
        json={"street": "Rue Y 2", "postalCode": "1000", "city": "Bruxelles"},
    )
    assert r.status_code == 422  # the address alone cannot move either
    # `{}` (every field defaults to "") erased the only copy of a secret refuge's address
    for empty in ({}, {"street": " ", "city": "Bruxelles"}, {"street": "Rue Y 2"}):
        r = await client.put(f"/admin/facilities/{fid}/address", headers=h, json=empty)
        assert r.status_code == 422 and r.json()["field"] in ("street", "city"), r.text
    r = await client.get(f"/admin/facilities/{fid}/address", headers=h)
    assert r.json()["street"] and r.json()["city"], r.text
    # a relocation (the place moved, e.g. after its location was compromised): the new
    # address and its municipality in one step
    r = await client.put(
        f"/admin/facilities/{fid}/address",
        headers=h,
        params={"municipalityNis": "21004"},
        json={"street": "Rue Y 2", "postalCode": "1000", "city": "Bruxelles"},
    )
    assert r.status_code == 204, r.text
    got = (await client.get(f"/admin/facilities/{fid}", headers=h)).json()
    assert got["location"]["municipality"]["nis"] == "21004"
    r = await client.get(f"/admin/facilities/{fid}/address", headers=h)
    assert r.json()["postalCode"] == "1000"
    audit = (await client.get("/admin/audit", headers=h, params={"facilityId": fid})).json()
    moves = [e for e in audit if e["action"] == "facility.update"]
    assert moves and moves[0]["detail"] == {"municipalityNis": "21004"}
    # a relocation's address must lie in the municipality it moves to
    r = await client.put(
        f"/admin/facilities/{fid}/address",
        headers=h,
        params={"municipalityNis": "62063"},
        json={"street": "Rue Z 3", "postalCode": "1000", "city": "Bruxelles"},
    )
    assert r.status_code == 422 and r.json()["field"] == "postalCode"
    got = (await client.get(f"/admin/facilities/{fid}", headers=h)).json()
    assert got["location"]["municipality"]["nis"] == "21004"  # nothing half-written
    no_address = {**NEW_REFUGE, "alias": "Y"}
    r = await client.post("/admin/facilities", headers=h, json=no_address)
    other = r.json()["id"]
    r = await client.patch(
        f"/admin/facilities/{other}", headers=h, json={"municipalityNis": "62063"}
    )
    assert r.status_code == 200, r.text


async def test_a_secret_place_with_a_landline_intake_number_is_flagged(
    client: AsyncClient, world: World
) -> None:
    """Its area code, given to every requester who finds it, tells roughly where it is; the
    admin (and its staff) are told so, on every answer that shows the facility."""
    h = bearer(await _admin(world))
    r = await client.post("/admin/facilities", headers=h, json=NEW_REFUGE)
    assert r.status_code == 201, r.text
    (w,) = r.json()["warnings"]
    assert w["code"] == "intake_phone_tells_zone" and "02" in w["message"]
    fid = r.json()["id"]
    staff = await world.token("Refuges A", "staff")
    r = await client.get(f"/staff/facilities/{fid}", headers=bearer(staff))
    assert [w["code"] for w in r.json()["warnings"]] == ["intake_phone_tells_zone"]
    # A mobile number tells nothing: the warning goes.
    r = await client.patch(
        f"/admin/facilities/{fid}", headers=h, json={"intakePhone": "+32 470 55 00 00"}
    )
    assert r.status_code == 200 and r.json()["warnings"] == []
    # A public night shelter may give its landline.
    r = await client.post(
        "/admin/facilities",
        headers=h,
        json={**NEW_REFUGE, "alias": "Nuit", "template": "night_shelter"},
    )
    assert r.status_code == 201 and r.json()["secretAddress"] is False
    assert r.json()["warnings"] == []
    # A bulk import names the imported secret places with a landline.
    r = await client.post(
        "/admin/facilities/import",
        headers={**h, "Content-Type": "text/csv"},
        content=GOOD_CSV.encode(),
    )
    assert r.status_code == 201, r.text
    warned = {(w["alias"], w["code"]) for w in r.json()["warnings"]}
    assert warned == {
        ("Hotel H-1", "intake_phone_tells_zone"),
        ("Refuge R-2", "intake_phone_tells_zone"),
    }  # Nuit N-3 is a public night shelter
