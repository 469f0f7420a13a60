"""The staff page sets a facility's status (R02): one tap to close to new admissions or to
reopen, and a small form with a reason (required unless open) and an optional end in Belgian
time. The same registry call as the API: audited, scoped to the staff's own operator, and never
lifting a compromised location."""

from __future__ import annotations

import html
import re
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from capacity import registry
from capacity.audit import CLI
from capacity.commands import StatusChange
from capacity.models import Alert, AuditEntry
from placement.holds_service import counters_agree
from tests.browser.web_helpers import csrf_of, post_form, seed_world, web_sign_in
from tests.conftest import World, bearer

SEARCH_BODY = {
    "household": {
        "adults": [{"gender": "female"}],
        "children": [{"age": 4}, {"age": 13}],
        "residenceStatus": "undocumented",
        "income": "no",
        "languages": ["fr"],
    },
    "need": "ipv",
    "nights": 7,
}


async def _offered(client: AsyncClient, police: str) -> list[str]:
    r = await client.post("/placements/search", json=SEARCH_BODY, headers=bearer(police))
    assert r.status_code == 200, r.text
    return sorted(o["alias"] for o in r.json()["options"])


async def _status_audits(world: World, facility_id: int) -> list[Any]:
    async with world.db.read() as s:
        rows = await s.scalars(
            select(AuditEntry)
            .where(AuditEntry.facility_id == facility_id, AuditEntry.action == "facility.status")
            .order_by(AuditEntry.id)
        )
        return list(rows.all())


def _card(page: str, facility_id: int) -> str:
    """The status card of one facility, unescaped (up to its first pool card)."""
    start = page.index(f'id="status-{facility_id}"')
    end = page.index('<article class="pool card"', start)
    return html.unescape(page[start:end])


def _one_tap(page: str, facility_id: int) -> dict[str, str]:
    """The fields of the facility's one-tap form, as a browser would post them."""
    form = re.search(
        rf'<form method="post" action="/web/staff/facilities/{facility_id}/status"'
        r'(?: data-confirm="[^"]*")?>.*?</form>',
        page,
        re.S,
    )
    assert form, "no one-tap form"
    return {k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', form[0])}


async def _api_status(client: AsyncClient, token: str, facility_id: int) -> tuple[Any, ...]:
    r = await client.get(f"/staff/facilities/{facility_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    return body["status"], body["statusReason"], body["statusUntil"]


async def test_staff_close_a_place_with_a_reason_and_an_end_then_reopen_it(
    client: AsyncClient, world: World
) -> None:
    """Refused without a reason, with an end in the past, with half an end or a status the
    page does not set (nothing written, the typed reason kept); then closed until tomorrow
    18:00 Belgian time: audited, shown on the page and by the API, no longer offered to
    requesters; then reopened in one tap, and offered again."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff, police = str(w["staff"]), str(w["police"])
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, staff)
    page = await client.get("/web/staff")
    card = _card(page.text, fid)
    assert "Close to new admissions" in card and "Reopen" not in card
    assert await _offered(client, police) == ["Refuge Iris", "Refuge Nord"]
    csrf = csrf_of(page.text)
    url = f"/web/staff/facilities/{fid}/status"
    # the test clock: 2026-01-15 01:30 UTC, 02:30 in Brussels
    refused = [
        ({"status": "closed_to_admissions", "reason": "  "}, "Give a reason for this status."),
        (
            {"status": "suspended", "reason": "Flood", "until_date": "2026-01-15"}
            | {"until_time": "02:00"},  # 01:00 UTC: past
            "The end (“until”) must be in the future.",
        ),
        (
            {"status": "reduced", "reason": "Flood", "until_date": "2026-01-16"},
            "Give both a date and a time, or neither.",
        ),
        (
            {"status": "reduced", "reason": "Flood", "until_date": "16/01", "until_time": "9h"},
            "Please check the date and the time.",
        ),
        (
            {"status": "location_compromised", "reason": "Flood"},  # not confirmed
            "Tick the box to confirm that the location is compromised.",
        ),
        ({"status": "lifted", "reason": "Flood"}, "Please check the form."),
    ]
    for data, message in refused:
        r = await client.post(url, data={"csrf": csrf, **data})
        assert r.status_code == 422, data
        card = _card(r.text, fid)
        assert f'id="status-error-{fid}"' in card and message in card, (data, card)
        if data["reason"].strip():
            assert f'value="{data["reason"]}"' in card  # what was typed is kept
    assert await _status_audits(world, fid) == []
    assert await _api_status(client, staff, fid) == ("open", None, None)

    r = await client.post(
        url,
        data={
            "csrf": csrf,
            "status": "closed_to_admissions",
            "reason": "Water damage",
            "until_date": "2026-01-16",
            "until_time": "18:00",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == f"/web/staff?ok=closed#status-{fid}"
    page = await client.get(r.headers["location"])
    assert "Closed to new admissions." in page.text
    card = _card(page.text, fid)
    assert "Closed to admissions until Fri 16 Jan, 18:00 — reopens automatically." in card
    assert "Reason: Water damage" in card and "Reopen" in card
    assert 'value="2026-01-16"' in card and 'value="18:00"' in card  # the form shows it
    (entry,) = await _status_audits(world, fid)
    assert entry.actor_role == "staff" and entry.detail == {
        "from": "open",
        "to": "closed_to_admissions",
        "reason": "Water damage",
        "until": "2026-01-16T17:00:00Z",  # 18:00 in Brussels (CET) is 17:00 UTC
    }
    status, reason, until = await _api_status(client, staff, fid)
    assert (status, reason) == ("closed_to_admissions", "Water damage")
    assert until.startswith("2026-01-16T17:00:00")
    assert await _offered(client, police) == ["Refuge Nord"]

    # the same card in French: the date in French, Belgian time
    await post_form(client, "/web/staff", "/web/lang", {"lang": "fr", "next": "/web/staff"})
    card = _card((await client.get("/web/staff")).text, fid)
    assert "Fermé aux admissions jusqu'au ven. 16 janv., 18:00 — rouvre automatiquement." in card
    assert "Motif : Water damage" in card
    await post_form(client, "/web/staff", "/web/lang", {"lang": "en", "next": "/web/staff"})

    page = await client.get("/web/staff")
    fields = _one_tap(page.text, fid)
    assert fields["status"] == "open" and "reason" not in fields
    r = await client.post(url, data=fields)  # "Reopen"
    assert r.status_code == 303 and r.headers["location"] == f"/web/staff?ok=reopened#status-{fid}"
    page = await client.get(r.headers["location"])
    assert "Open again to new admissions." in page.text
    card = _card(page.text, fid)
    assert "Close to new admissions" in card and "Reason:" not in card
    assert await _api_status(client, staff, fid) == ("open", None, None)
    assert [e.detail["to"] for e in await _status_audits(world, fid)] == [
        "closed_to_admissions",
        "open",
    ]
    assert await _offered(client, police) == ["Refuge Iris", "Refuge Nord"]

    fields = _one_tap(page.text, fid)  # "Close to new admissions": one tap, a standard reason
    assert fields["status"] == "closed_to_admissions"
    assert fields["reason"] == "Closed with one tap on the staff page."
    r = await client.post(url, data=fields)
    assert r.status_code == 303
    assert await _api_status(client, staff, fid) == (
        "closed_to_admissions",
        "Closed with one tap on the staff page.",
        None,
    )
    card = _card((await client.get("/web/staff")).text, fid)
    assert "Closed to admissions" in card and "reopens automatically" not in card
    assert await _offered(client, police) == ["Refuge Nord"]


async def test_reduced_until_a_date_is_shown_to_requesters_without_the_reason(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    await web_sign_in(client, str(w["staff"]))
    r = await post_form(
        client,
        "/web/staff",
        f"/web/staff/facilities/{fid}/status",
        {
            "status": "reduced",
            "reason": "Half the rooms closed, ask Rue de la Loi 16",
            "until_date": "2026-07-01",
            "until_time": "09:00",
        },
    )
    assert r.status_code == 303 and "ok=status" in r.headers["location"]
    r = await client.post("/placements/search", json=SEARCH_BODY, headers=bearer(str(w["police"])))
    assert "Rue de la Loi" not in r.text and "Half the rooms" not in r.text
    (iris,) = [o for o in r.json()["options"] if o["alias"] == "Refuge Iris"]
    assert {
        "code": "reduced_capacity",
        "message": "Temporarily reduced capacity until "
        "2026-07-01 09:00 (Belgian time): call first.",
    }.items() <= next(
        w for w in iris["warnings"] if w["code"] == "reduced_capacity"
    ).items()  # 09:00 in Brussels (summer time) is 07:00 UTC
    # the console shows it in the operator's language, with the date and nothing else
    client.cookies.clear()
    await web_sign_in(client, str(w["police"]))
    from tests.integration.test_web_pages import FAMILY_FORM

    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "avoid0": ""}
    )
    assert r.status_code == 200
    shown = html.unescape(r.text)
    assert "Capacité temporairement réduite jusqu'au 2026-07-01, 09:00 (heure belge)" in shown
    assert "Rue de la Loi" not in shown


async def test_staff_of_another_operator_get_404(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    await world.operator("Autre Asbl", "shelter_operator")
    await world.facility("Autre Asbl", "Maison B")
    await web_sign_in(client, await world.token("Autre Asbl", "staff"))
    page = await client.get("/web/staff")
    assert "Maison B" in page.text and f'id="status-{fid}"' not in page.text
    for data in ({"status": "suspended", "reason": "Not mine"}, {"status": "open"}):
        r = await client.post(
            f"/web/staff/facilities/{fid}/status", data={"csrf": csrf_of(page.text), **data}
        )
        assert r.status_code == 404 and "Refuge Iris" not in r.text
    assert await _status_audits(world, fid) == []
    assert await _api_status(client, str(w["staff"]), fid) == ("open", None, None)


async def test_a_compromised_location_is_shown_but_never_lifted_from_the_page(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = str(w["staff"])
    await registry.set_status(
        world.db,
        fid,
        StatusChange(status="location_compromised", reason="Partner seen outside"),
        actor=CLI,
        now=world.clock.now(),
    )
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, staff)
    page = await client.get("/web/staff")
    card = _card(page.text, fid)
    assert "Location compromised" in card and "Only an Abri administrator" in card
    assert "<form" not in card  # no reopen, no status form
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status", {"status": "open"}
    )
    assert r.status_code == 409
    assert "This status cannot be changed here: only an administrator lifts it." in r.text
    assert (await _api_status(client, staff, fid))[0] == "location_compromised"
    assert len(await _status_audits(world, fid)) == 1  # the CLI's only


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


async def test_staff_report_a_compromised_location_from_the_page_after_confirming(
    client: AsyncClient, world: World
) -> None:
    """At night the partner is seen outside: the night worker reports the location compromised
    from the phone page (until now only the API or an admin could). The page says what happens
    and asks for a confirmation first (without it nothing changes); then, as through the API's
    staff route: no new placements, the holds still held there declined with the requester told
    not to come (audited as the staff's), households in the house left, an alert for admins; and
    the page says only an administrator lifts it, offering nothing to lift it."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff, police = str(w["staff"]), str(w["police"])
    iris, nord = w["ixl"].pools[0].ref, w["sch"].pools[0].ref  # type: ignore[attr-defined]
    on_the_way = [await _hold(client, police, iris, f"compromised-{i}") for i in range(2)]
    in_house = await _hold(client, police, iris, "compromised-in-house")
    r = await client.post(f"/staff/holds/{in_house}/arrived", headers=bearer(staff))
    assert r.status_code == 200, r.text
    elsewhere = await _hold(client, police, nord, "compromised-elsewhere")
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, staff)
    page = await client.get("/web/staff")
    card = _card(page.text, fid)
    form = re.search(r'<form[^>]*id="compromised-form-' + str(fid) + r'".*?</form>', card, re.S)
    assert form, card
    said = " ".join(form[0].split())
    assert 'name="status" value="location_compromised"' in said
    assert "no new placements" in said and "declined" in said and "told not to come" in said
    assert "Only an Abri administrator can lift it" in said
    assert 'type="checkbox"' in said and 'name="confirm"' in said and "required" in said
    url = f"/web/staff/facilities/{fid}/status"
    csrf = csrf_of(page.text)
    report = {"csrf": csrf, "status": "location_compromised", "reason": "Partner seen outside"}

    r = await client.post(url, data=report)  # not confirmed: nothing changes
    assert r.status_code == 422
    card = _card(r.text, fid)
    assert "Tick the box to confirm that the location is compromised" in card
    assert 'value="Partner seen outside"' in card  # what was typed is kept
    assert await _status_audits(world, fid) == []
    assert await _states(client, police, on_the_way) == ["held", "held"]

    r = await client.post(url, data={**report, "confirm": "yes"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/web/staff?ok=compromised#status-{fid}"
    page = await client.get(r.headers["location"])
    assert "Location reported compromised" in page.text
    card = _card(page.text, fid)
    assert "Location compromised" in card and "Only an Abri administrator" in card
    assert "<form" not in card  # nothing offers to lift it
    assert not any(ref in page.text.split('id="in-house-live"')[0] for ref in on_the_way)
    assert await _states(client, police, on_the_way) == ["declined", "declined"]
    assert await _states(client, police, [in_house, elsewhere]) == ["arrived", "held"]
    closed = (await client.get(f"/holds/{on_the_way[0]}", headers=bearer(police))).json()
    assert "do not go there" in closed["closeReason"] and "Partner" not in closed["closeReason"]
    assert await _offered(client, police) == ["Refuge Nord"]
    (entry,) = await _status_audits(world, fid)
    assert entry.actor_role == "staff" and entry.detail["to"] == "location_compromised"
    async with world.db.read() as s:
        declines = (
            await s.scalars(
                select(AuditEntry.actor_role).where(AuditEntry.action == "hold.declined")
            )
        ).all()
        alerts = (await s.scalars(select(Alert.kind).where(Alert.facility_id == fid))).all()
    assert declines == ["staff", "staff"] and alerts == ["location_compromised"]
    assert await counters_agree(world.db) == []

    # a page drawn before (a second tap, a retry): the place as it is, nothing declined twice
    r = await client.post(url, data={**report, "confirm": "yes"})
    assert r.status_code == 303
    assert [e.detail["to"] for e in await _status_audits(world, fid)] == [
        "location_compromised",
        "location_compromised",
    ]
    async with world.db.read() as s:
        assert len((await s.scalars(select(Alert.id))).all()) == 1


async def test_only_the_facilitys_own_staff_report_it_compromised_from_the_page(
    client: AsyncClient, world: World
) -> None:
    """Another operator's staff get 404 (nothing changed, nobody's hold declined); a
    helpline's session has no staff page to post from."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    police = str(w["police"])
    ref = await _hold(client, police, w["ixl"].pools[0].ref, "not-mine")  # type: ignore[attr-defined]
    report = {"status": "location_compromised", "reason": "Not mine", "confirm": "yes"}
    await world.operator("Autre Asbl", "shelter_operator")
    await world.facility("Autre Asbl", "Maison B")
    await web_sign_in(client, await world.token("Autre Asbl", "staff"))
    page = await client.get("/web/staff")
    r = await client.post(
        f"/web/staff/facilities/{fid}/status", data={"csrf": csrf_of(page.text), **report}
    )
    assert r.status_code == 404 and "Refuge Iris" not in r.text
    client.cookies.clear()
    await web_sign_in(client, str(w["helpline"]))
    page = await client.get("/web/console")
    r = await client.post(
        f"/web/staff/facilities/{fid}/status", data={"csrf": csrf_of(page.text), **report}
    )
    assert r.status_code == 403
    assert await _status_audits(world, fid) == []
    assert await _states(client, police, [ref]) == ["held"]
    assert await _api_status(client, str(w["staff"]), fid) == ("open", None, None)


async def test_the_compromised_form_takes_a_reason_as_long_as_the_api_does(
    client: AsyncClient, world: World
) -> None:
    """The form reporting a compromised location kept ``maxlength="500"`` when the status
    reason grew to the API's 2000 characters: a browser silently cuts a longer paste at 500,
    what the other status form and the API keep whole."""
    from capacity.commands import STATUS_REASON_MAX

    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    card = _card(page.text, fid)
    (reason,) = re.findall(r'<input id="compromised-reason-\d+"[^>]*>', card)
    assert f'maxlength="{STATUS_REASON_MAX}"' in reason, reason
    url = f"/web/staff/facilities/{fid}/status"
    long = "R" * STATUS_REASON_MAX
    report = {"status": "location_compromised", "reason": long, "confirm": "yes"}
    r = await client.post(url, data={"csrf": csrf_of(page.text), **report})
    assert r.status_code == 303, r.text[:300]
    assert await _api_status(client, str(w["staff"]), fid) == ("location_compromised", long, None)


async def _compromise_iris_with_one_request_in_line(
    client: AsyncClient, world: World
) -> dict[str, Any]:
    """Refuge Iris reported compromised (its alert open), Refuge Nord suspended, and a
    helpline's request waiting in line that only Iris could serve; an admin token."""
    w = await seed_world(world)
    fid, nord = w["ixl"].facility.id, w["sch"].facility.id  # type: ignore[attr-defined]
    now = world.clock.now()
    await registry.set_status(
        world.db, nord, StatusChange(status="suspended", reason="Works"), actor=CLI, now=now
    )
    await registry.set_status(
        world.db,
        fid,
        StatusChange(status="location_compromised", reason="Partner seen outside"),
        actor=CLI,
        now=now,
    )
    line = await client.post(
        "/standing-requests",
        json={"search": SEARCH_BODY, "minutes": 720},
        headers={**bearer(str(w["helpline"])), "Idempotency-Key": "lift-line-1"},
    )
    assert line.status_code == 201 and line.json()["state"] == "waiting", line.text
    admin_op = await world.operator("Abri administration", "admin")
    return w | {
        "fid": fid,
        "line": line.json()["ref"],
        "admin": await world.token("Abri administration", "admin"),
        "admin_op": admin_op,
    }


async def test_an_admin_lifts_a_compromised_location_from_the_staff_page(
    client: AsyncClient, world: World
) -> None:
    """04:00, the on-call admin has only a phone: the staff page told them "Only an Abri
    administrator can lift this status." and offered nothing (only a hand-written API call
    lifted it). An admin's card now offers "Lift: reopen this place": it says what it does,
    needs a reason and a ticked box (without them nothing changes), then goes the admin API's
    way: audited as the admin's, the alert acknowledged, the request waiting in line served at
    once. The facility's staff still see the sentence alone, and their POST gets 409."""
    w = await _compromise_iris_with_one_request_in_line(client, world)
    fid, staff, helpline = w["fid"], str(w["staff"]), str(w["helpline"])
    lift = f"/web/staff/facilities/{fid}/lift"
    client.headers["Accept-Language"] = "en"

    await web_sign_in(client, staff)
    card = _card((await client.get("/web/staff")).text, fid)
    assert "Only an Abri administrator can lift this status." in card
    assert "<form" not in card and "Lift" not in card
    r = await post_form(
        client, "/web/staff", lift, {"reason": "Partner in custody", "confirm": "yes"}
    )
    assert r.status_code == 409
    assert "This status cannot be changed here: only an administrator lifts it." in r.text
    assert (await _api_status(client, staff, fid))[0] == "location_compromised"
    assert len(await _status_audits(world, fid)) == 1  # the CLI's only

    client.cookies.clear()
    await web_sign_in(client, str(w["admin"]))
    page = await client.get("/web/staff")
    card = _card(page.text, fid)
    form = re.search(rf'<form[^>]*action="{lift}".*?</form>', card, re.S)
    assert form, card
    said = " ".join(form[0].split())
    assert "Lift: reopen this place" in said
    assert "offered again to helplines and police" in said and "waiting" in said
    assert re.search(r'<input[^>]*name="reason"[^>]*required', said), said
    assert re.search(r'<input type="checkbox"[^>]*name="confirm"[^>]*required', said), said
    csrf = csrf_of(page.text)
    for data, message in (
        ({"reason": "Partner in custody"}, "Tick the box to confirm that the place is safe again"),
        ({"reason": " ", "confirm": "yes"}, "Give a reason for lifting"),
    ):
        r = await client.post(lift, data={"csrf": csrf, **data})
        assert r.status_code == 422, (data, r.text[:300])
        card = _card(r.text, fid)
        assert f'id="lift-error-{fid}"' in card and message in card, card
        if data["reason"].strip():
            assert 'value="Partner in custody"' in card  # what was typed is kept
    assert len(await _status_audits(world, fid)) == 1
    waiting = await client.get(f"/standing-requests/{w['line']}", headers=bearer(helpline))
    assert waiting.json()["state"] == "waiting"

    r = await client.post(
        lift, data={"csrf": csrf, "reason": "Partner in custody", "confirm": "yes"}
    )
    assert r.status_code == 303, r.text[:300]
    assert r.headers["location"] == f"/web/staff?ok=lifted#status-{fid}"
    page = await client.get(r.headers["location"])
    assert "Lifted: the place is open again" in page.text
    assert "Only an Abri administrator can lift this status." not in _card(page.text, fid)
    assert (await _api_status(client, staff, fid))[0] == "open"
    entry = (await _status_audits(world, fid))[-1]
    assert entry.actor_role == "admin" and entry.actor_operator_id == w["admin_op"]
    assert entry.detail["from"] == "location_compromised" and entry.detail["to"] == "open"
    assert entry.detail["reason"] == "Partner in custody"
    async with world.db.read() as s:
        (alert,) = (await s.scalars(select(Alert).where(Alert.facility_id == fid))).all()
    assert alert.acknowledged_at is not None and alert.acknowledged_by == w["admin_op"]
    offered = await client.get(f"/standing-requests/{w['line']}", headers=bearer(helpline))
    assert offered.json()["state"] == "offered", offered.text
    assert offered.json()["hold"]["place"]["alias"] == "Refuge Iris"
    assert await counters_agree(world.db) == []

    # the same form sent again (a second tap, another admin's page): nothing lifted twice
    r = await client.post(lift, data={"csrf": csrf, "reason": "Again", "confirm": "yes"})
    assert r.status_code == 409
    assert "is no longer reported compromised" in _card(r.text, fid)
    assert len(await _status_audits(world, fid)) == 2


async def test_an_admin_sets_another_status_on_a_compromised_place_from_the_page(
    client: AsyncClient, world: World
) -> None:
    """The page's status form answered an admin 409 "only an administrator lifts it" on a
    compromised place, whatever the reason given: the staff's refusal applied to admins too.
    An admin's compromised card now has the status form (no "open" in it: that is the lift,
    with its confirmation), and an admin may set any other status with a reason: the same
    path (audited as the admin's, the alert acknowledged). A form drawn before the place was
    reported compromised still changes nothing (409, saying so), and staff still get 409."""
    w = await _compromise_iris_with_one_request_in_line(client, world)
    fid, staff = w["fid"], str(w["staff"])
    nord = w["sch"].facility.id  # type: ignore[attr-defined]
    url = f"/web/staff/facilities/{fid}/status"
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["admin"]))
    page = await client.get("/web/staff")
    csrf = csrf_of(page.text)
    card = _card(page.text, fid)
    form = re.search(rf'<form method="post" action="{url}" class="stack">.*?</form>', card, re.S)
    assert form, card
    assert 'name="shown" value="location_compromised"' in form[0]
    assert '<option value="open"' not in form[0] and '<option value="suspended"' in form[0]
    assert "Partner seen outside" not in form[0]  # the report's reason is no reason to change

    move = {"csrf": csrf, "status": "suspended", "shown": "location_compromised"}
    r = await client.post(url, data={**move, "reason": " "})
    assert r.status_code == 422 and "Give a reason for this status." in _card(r.text, fid)
    r = await client.post(url, data={**move, "reason": "Families moved: building closed"})
    assert r.status_code == 303, r.text[:300]
    assert await _api_status(client, staff, fid) == (
        "suspended",
        "Families moved: building closed",
        None,
    )
    entry = (await _status_audits(world, fid))[-1]
    assert entry.actor_role == "admin" and entry.detail["from"] == "location_compromised"
    async with world.db.read() as s:
        (alert,) = (await s.scalars(select(Alert).where(Alert.facility_id == fid))).all()
    assert alert.acknowledged_by == w["admin_op"]

    # a page drawn while Nord was suspended; Nord is then reported compromised
    await registry.set_status(
        world.db,
        nord,
        StatusChange(status="location_compromised", reason="Partner seen outside"),
        actor=CLI,
        now=world.clock.now(),
    )
    stale = {"csrf": csrf, "status": "open", "shown": "suspended", "reason": "Works done"}
    r = await client.post(f"/web/staff/facilities/{nord}/status", data=stale)
    assert r.status_code == 409
    assert "reported compromised after this page was drawn" in _card(r.text, nord)
    assert (await _api_status(client, staff, nord))[0] == "location_compromised"

    client.cookies.clear()
    await web_sign_in(client, staff)
    r = await post_form(
        client,
        "/web/staff",
        f"/web/staff/facilities/{nord}/status",
        {"status": "suspended", "reason": "Mine", "shown": "location_compromised"},
    )
    assert r.status_code == 409
    assert "only an administrator lifts it" in r.text
    assert (await _api_status(client, staff, nord))[0] == "location_compromised"
