"""Texts copied from Word or a PDF by an integrating system (a dispatch system, a shelter's own
availability system): a bell (U+0007), an escape (U+001B), a C1 "next line" (U+0085), a bidi
override (U+202E) that shows a callback number backwards. They were stored as sent and shown
to the next reader; now the API refuses them with a 422 naming the field, the same on SQLite
and PostgreSQL, and nothing is written. Multi-line texts (a status reason, a handover
protocol) keep their line breaks and tabs; a one-line text (a label, an alias) does not take
them; a callback number or a reference takes no invisible character at all."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from capacity.models import Facility, Hold, StaffLink
from tests.browser.web_helpers import seed_world
from tests.conftest import World, bearer

WOMAN_ALONE = {
    "adults": [{"gender": "female"}],
    "residenceStatus": "undocumented",
    "income": "no",
    "languages": ["fr"],
}


async def _count(world: World, model: Any) -> int:
    async with world.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def _refused(r: Any, field: str, char: str) -> None:
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid-input" and problem["field"] == field, problem
    assert problem["detail"].startswith(f"{field}: "), problem
    assert f"U+{ord(char):04X}" in problem["detail"], problem


@pytest.mark.parametrize("char", ["\u0007", "\u001b", "\u0085", "\u202e", "\u2066", "\u007f"])
async def test_a_control_or_bidi_character_in_a_status_reason_is_refused(
    client: AsyncClient, world: World, char: str
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    url = f"/staff/facilities/{fid}/status"
    r = await client.put(
        url, json={"status": "reduced", "reason": f"Water{char}damage"}, headers=staff
    )
    _refused(r, "reason", char)
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None
    # a multi-line text keeps its line breaks and tabs (a browser's CRLF too)
    reason = "Water damage\r\nsecond floor:\tclosed"
    r = await client.put(url, json={"status": "reduced", "reason": reason}, headers=staff)
    assert r.status_code == 200 and r.json()["statusReason"] == reason, r.text


async def test_one_line_texts_and_callback_numbers_take_no_invisible_character(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    pool_ref = w["ixl"].pools[0].ref  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    r = await client.post(
        f"/staff/facilities/{fid}/links", json={"label": "Night\nshift"}, headers=staff
    )
    _refused(r, "label", "\n")
    assert await _count(world, StaffLink) == 0

    helpline = {**bearer(str(w["helpline"])), "Idempotency-Key": "control-hold-0001"}
    hold = {"poolRef": pool_ref, "need": "ipv", "household": WOMAN_ALONE}
    for char in ("\u202e", "\u200b", "\u2028", "\t"):
        r = await client.post(
            "/holds", json={**hold, "callback": f"+32 475{char} 12 34 56"}, headers=helpline
        )
        _refused(r, "callback", char)
    assert await _count(world, Hold) == 0
    r = await client.post("/holds", json={**hold, "callback": "+32 475 12 34 56"}, headers=helpline)
    assert r.status_code == 201, r.text


async def test_a_control_character_in_a_nested_text_or_a_query_is_named_by_its_path(
    client: AsyncClient, world: World
) -> None:
    from tests.integration.test_admin_api import _admin

    h = bearer(await _admin(world))
    body = {
        "operator": "Refuges Solidaires",
        "alias": "Refuge Test",
        "municipalityNis": "21004",
        "kind": "refuge",
        "intakePhone": "+32 2 555 12 12",
        "handoverProtocol": "Call first.\nThen come.",
        "pools": [{"label": "Beds\u001b[31m"}],
    }
    r = await client.post("/admin/facilities", json=body, headers=h)
    _refused(r, "pools[0].label", "\u001b")
    r = await client.post(
        "/admin/facilities", json={**body, "alias": "Refuge \u202eTest", "pools": []}, headers=h
    )
    _refused(r, "alias", "\u202e")
    assert await _count(world, Facility) == 0
    # Two refused texts: the first in the body is named. A refused key is named without its
    # control (escaped), so the answer cannot itself turn a reader's line around.
    r = await client.post(
        "/admin/facilities",
        json={**body, "alias": "Refuge \u0007A", "pools": [{"label": "B\u0007"}]},
        headers=h,
    )
    _refused(r, "alias", "\u0007")
    r = await client.post("/admin/facilities", json={**body, "pools": [], "x\u202ey": 1}, headers=h)
    _refused(r, "x\\u202ey", "\u202e")
    assert "\u202e" not in r.json()["detail"] and "\u202e" not in r.json()["field"]
    r = await client.get("/admin/audit?action=a%1Bb", headers=h)
    _refused(r, "action", "\u001b")
    r = await client.get("/admin/audit?objectId=%E2%80%AE12", headers=h)
    _refused(r, "objectId", "\u202e")


async def test_a_control_character_in_a_csv_import_is_refused_by_row_and_column(
    client: AsyncClient, world: World
) -> None:
    """A CSV exported from a spreadsheet with an escape in an alias: imported as sent. The
    import now applies the same rule, naming the row and the column; nothing is imported."""
    from capacity.models import Facility
    from tests.integration.test_admin_api import GOOD_CSV, _admin

    h = {**bearer(await _admin(world)), "Content-Type": "text/csv"}
    r = await client.post(
        "/admin/facilities/import", content=GOOD_CSV.replace("Hotel H-1", "Hotel\x1bH-1"), headers=h
    )
    assert r.status_code == 422 and r.json()["code"] == "import-rejected", r.text
    (error,) = r.json()["errors"]
    assert error["row"] == 2 and error["field"] == "alias" and "U+001B" in error["message"]
    assert await _count(world, Facility) == 0
