"""Odd but plausible texts sent to the JSON API by an integrating system (a NUL character
copied from a C string, a text longer than its field): the same clear 422 on SQLite and
PostgreSQL, naming the field, and nothing written."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from capacity.models import Facility, Hold, StaffLink, StandingRequest
from tests.browser.web_helpers import seed_world
from tests.conftest import World, bearer

NUL_DETAIL = (
    "A text in the request contains a NUL character (\\u0000), which cannot be stored; "
    "nothing was saved."
)

WOMAN_ALONE = {
    "adults": [{"gender": "female"}],
    "residenceStatus": "undocumented",
    "income": "no",
    "languages": ["fr"],
}


async def _count(world: World, model: Any) -> int:
    async with world.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def _refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid-input" and problem["field"] == field, problem
    assert problem["detail"] == f"{field}: {NUL_DETAIL}", problem


async def test_a_nul_character_in_any_json_text_is_refused_alike_on_both_databases(
    client: AsyncClient, world: World
) -> None:
    """``\\u0000`` in a status reason or a hold's callback: PostgreSQL's driver refused it (a
    422 mapped from its error, after the work had begun), SQLite stored it as sent. Now both
    refuse the body before any of it is used, with the field and one sentence."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    pool_ref = w["ixl"].pools[0].ref  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    r = await client.put(
        f"/staff/facilities/{fid}/status",
        json={"status": "reduced", "reason": "Water\u0000damage"},
        headers=staff,
    )
    _refused(r, "reason")
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None

    r = await client.post(
        f"/staff/facilities/{fid}/links", json={"label": "Night\u0000shift"}, headers=staff
    )
    _refused(r, "label")
    assert await _count(world, StaffLink) == 0

    helpline = {**bearer(str(w["helpline"])), "Idempotency-Key": "odd-text-hold-0001"}
    hold = {"poolRef": pool_ref, "need": "ipv", "household": WOMAN_ALONE}
    r = await client.post("/holds", json={**hold, "callback": "Desk 12\u0000"}, headers=helpline)
    _refused(r, "callback")
    assert await _count(world, Hold) == 0

    search = {"household": WOMAN_ALONE, "need": "ipv"}
    r = await client.post(
        "/standing-requests",
        json={"search": search, "callback": "\u0000Desk 12"},
        headers={**helpline, "Idempotency-Key": "odd-text-standing-0001"},
    )
    _refused(r, "callback")
    assert await _count(world, StandingRequest) == 0

    # nested texts are named by their path; an escaped backslash is no NUL
    r = await client.post("/holds", json={**hold, "callback": "Desk \\u0000 12"}, headers=helpline)
    assert r.status_code == 201, r.text
    assert r.json()["callback"] == "Desk \\u0000 12"


async def test_a_nul_character_in_a_csv_import_is_refused_alike_on_both_databases(
    client: AsyncClient, world: World
) -> None:
    """A CSV exported by a tool that pads cells with NUL bytes: stored on SQLite, refused by
    PostgreSQL's driver. Both refuse the file with the same sentence, nothing imported."""
    from capacity.models import Facility
    from tests.integration.test_admin_api import GOOD_CSV, _admin

    h = {**bearer(await _admin(world)), "Content-Type": "text/csv"}
    r = await client.post(
        "/admin/facilities/import", content=GOOD_CSV.replace("Hotel H-1", "Hotel\x00H-1"), headers=h
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid-input", r.text
    assert r.json()["detail"] == NUL_DETAIL
    assert await _count(world, Facility) == 0


async def test_a_text_over_its_limit_is_a_422_naming_field_and_limit_never_cut(
    client: AsyncClient, world: World
) -> None:
    """The API's limits on free texts are in its schema, and a longer text is refused with
    the field and the limit (the web pages used to cut the same texts without a word; they
    now take the same lengths: tests/integration/test_web_hostile_forms.py)."""
    schema = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    limits = {
        (name, prop): spec.get("maxLength")
        for name, s in schema.items()
        for prop, spec in (s.get("properties") or {}).items()
    }
    assert limits[("StatusChange", "reason")] == 2000
    assert limits[("HoldCreate", "callback")] == 200
    assert limits[("StandingCreate", "callback")] == 200
    assert limits[("HoldDecline", "reason")] == 500

    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    pool_ref = w["ixl"].pools[0].ref  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    url = f"/staff/facilities/{fid}/status"
    r = await client.put(url, json={"status": "reduced", "reason": "R" * 2001}, headers=staff)
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    assert "<= 2000" in r.json()["detail"]
    r = await client.put(url, json={"status": "reduced", "reason": "R" * 2000}, headers=staff)
    assert r.status_code == 200 and r.json()["statusReason"] == "R" * 2000

    helpline = {**bearer(str(w["helpline"])), "Idempotency-Key": "odd-text-hold-0002"}
    hold = {"poolRef": pool_ref, "need": "ipv", "household": WOMAN_ALONE}
    r = await client.post("/holds", json={**hold, "callback": "C" * 201}, headers=helpline)
    assert r.status_code == 422 and r.json()["field"] == "callback", r.text
    assert "<= 200" in r.json()["detail"]
    assert await _count(world, Hold) == 0


async def test_a_nul_character_in_a_query_parameter_is_refused_alike_on_both_databases(
    client: AsyncClient, world: World
) -> None:
    """``GET /admin/audit?action=a%00b``: an empty list on SQLite, a 422 from PostgreSQL's
    driver. Both now refuse it by the parameter's name, before any query runs."""
    from tests.integration.test_admin_api import _admin

    h = bearer(await _admin(world))
    for name in ("action", "objectType", "objectId"):
        r = await client.get(f"/admin/audit?{name}=a%00b", headers=h)
        _refused(r, name)
    r = await client.get("/admin/audit?action=facility.created", headers=h)
    assert r.status_code == 200, r.text


async def test_a_template_name_has_a_limit_and_is_not_echoed_whole(
    client: AsyncClient, world: World
) -> None:
    """An unknown template of 200 000 characters was a 422 quoting all of it (a 200 KB
    answer); a template name is now at most 64 characters, like every other text limited."""
    from tests.integration.test_admin_api import _admin

    h = bearer(await _admin(world))
    body = {
        "operator": "Refuges Solidaires",
        "alias": "Refuge Test",
        "municipalityNis": "21004",
        "template": "x" * 200_000,
        "intakePhone": "+32 2 555 12 12",
    }
    r = await client.post("/admin/facilities", json=body, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "template", r.text[:300]
    assert "<= 64" in r.json()["detail"] and len(r.content) < 2000
    schema = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    template = schema["FacilityCreate"]["properties"]["template"]
    assert template["maxLength"] == 64, template
    assert await _count(world, Facility) == 0


async def test_an_address_has_limits_and_an_address_stored_before_still_opens(
    client: AsyncClient, world: World
) -> None:
    """A facility's address took texts of any length (a street of 100 000 characters was
    encrypted and stored). Each part now has a limit in the schema and a longer one is a 422
    naming it; an address stored before the limits still decrypts as it was."""
    from capacity.crypto import Address
    from tests.integration.test_admin_api import _admin

    h = bearer(await _admin(world))
    await world.operator("Refuges Solidaires", "shelter_operator")
    body = {
        "operator": "Refuges Solidaires",
        "alias": "Refuge Test",
        "municipalityNis": "21004",
        "template": "ipv_refuge",
        "intakePhone": "+32 470 55 12 12",
    }
    limits = {"street": 200, "postalCode": 16, "city": 100, "notes": 2000}
    for part, limit in limits.items():
        address = {
            "street": "Rue X 1",
            "postalCode": "1000",
            "city": "Bruxelles",
            part: "x" * (limit + 1),
        }
        r = await client.post("/admin/facilities", json={**body, "address": address}, headers=h)
        assert r.status_code == 422, r.text[:300]
        assert f"<= {limit}" in r.json()["detail"] and part in r.json()["detail"], r.json()
    assert await _count(world, Facility) == 0
    old = Address(street="S" * 5000, postal_code="1000", city="Bruxelles", notes="N" * 9000)
    assert world.cipher.decrypt(world.cipher.encrypt(old)) == old
