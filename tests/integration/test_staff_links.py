"""Signed one-time links for night workers (issue 7): issued by the facility's own staff, scoped
to one facility, expiring, revocable, usable once; the secret never reaches a log."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import select

from api.app import create_app
from api.web import i18n
from api.web import links as link_pages
from capacity.clock import FrozenClock
from capacity.commands import PoolCreate
from capacity.models import AuditEntry, AvailabilityReport, Hold, Pool, StaffLink
from capacity.settings import Settings
from tests.browser.web_helpers import csrf_of, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_canary_addresses import canary_address


async def issue(
    client: AsyncClient, token: str, facility_id: int, **body: Any
) -> tuple[httpx.Response, str]:
    r = await client.post(
        f"/staff/facilities/{facility_id}/links",
        json={"label": "Night shift, Sam", **body},
        headers=bearer(token),
    )
    secret = r.json()["url"].split("#", 1)[1] if r.status_code == 201 else ""
    return r, secret


async def open_link(client: AsyncClient, secret: str) -> httpx.Response:
    page = await client.get("/web/link/open")
    assert page.status_code == 200
    return await client.post("/web/link/open", data={"csrf": csrf_of(page.text), "code": secret})


async def audit_actions(world: World) -> list[tuple[str, str | None]]:
    async with world.db.read() as s:
        rows = await s.execute(
            select(AuditEntry.action, AuditEntry.actor_role)
            .where(AuditEntry.object_type.in_(("staff_link", "pool")))
            .order_by(AuditEntry.id)
        )
        return [(a, r) for a, r in rows.all()]


async def test_issue_open_update_and_second_open_refused(
    world: World, settings: Settings, clock: FrozenClock, capsys: pytest.CaptureFixture[str]
) -> None:
    w = await seed_world(world)
    ixl = w["ixl"]
    pool = ixl.pools[0]  # type: ignore[attr-defined]
    app = create_app(settings, db=world.db, clock=world.clock)  # logs into capsys
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://abri.be")
    client.headers["Accept-Language"] = "en"

    r, secret = await issue(client, str(w["staff"]), ixl.facility.id)  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["url"] == f"https://abri.be/web/link/open#{secret}" and secret.startswith("abl_")
    assert body["state"] == "active" and body["label"] == "Night shift, Sam"
    assert body["expiresAt"].startswith("2026-01-15T13:30")  # default 12 h
    async with world.db.read() as s:
        row = (await s.scalars(select(StaffLink))).one()
    assert secret not in (row.secret_hash, row.label) and len(row.secret_hash) == 64

    # Opening the page (what a chat app's preview does) does not use the link up.
    assert (await client.get("/web/link/open")).status_code == 200
    r = await open_link(client, secret)
    assert r.status_code == 303 and r.headers["location"] == "/web/link"
    assert secret not in r.headers["location"] and secret not in r.headers.get("set-cookie", "")
    page = await client.get("/web/link")
    assert page.status_code == 200 and "Refuge Iris" in page.text and "Family rooms" in page.text
    assert "Refuge Nord" not in page.text and "Incoming" not in page.text
    csrf = csrf_of(page.text)

    r = await client.post(
        f"/web/link/pools/{pool.id}", data={"csrf": csrf, "version": "1", "free": "2"}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/web/link?ok=saved")
    r = await client.post(
        f"/web/link/pools/{pool.id}", data={"csrf": csrf, "version": "1", "free": "1"}
    )
    assert r.status_code == 409 and f'id="conflict-{pool.id}"' in r.text  # someone was first
    r = await client.post(
        f"/web/link/pools/{pool.id}", data={"csrf": csrf, "version": "2", "action": "confirm"}
    )
    assert r.status_code == 303 and "confirmed" in r.headers["location"]
    r = await client.post(f"/web/link/pools/{pool.id}", data={"version": "2", "free": "0"})
    assert r.status_code == 403  # CSRF still required
    async with world.db.read() as s:
        p = await s.get(Pool, pool.id)
        assert p is not None and p.units_occupied == 1 and p.confirmed_at is not None
        sources = (
            await s.scalars(
                select(AvailabilityReport.source).where(AvailabilityReport.pool_id == pool.id)
            )
        ).all()
    assert f"link:{row.id}" in sources

    # The same link a second time (another phone, or the same one): refused.
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://abri.be")
    other.headers["Accept-Language"] = "en"
    r = await open_link(other, secret)
    assert r.status_code == 410 and "already been used" in r.text
    assert (await other.get("/web/link")).status_code == 303  # no session: back to the open page
    r = await open_link(other, "abl_not-a-real-link")
    assert r.status_code == 404 and "not valid" in r.text

    # Listing shows the state, never the secret.
    r = await client.get(
        f"/staff/facilities/{ixl.facility.id}/links",  # type: ignore[attr-defined]
        headers=bearer(str(w["staff"])),
    )
    assert r.status_code == 200 and r.json()[0]["state"] == "used" and secret not in r.text
    assert "url" not in r.json()[0]

    actions = await audit_actions(world)
    assert ("staff_link.issue", "staff") in actions
    assert ("staff_link.use", "link") in actions
    assert ("staff_link.refused", "link") in actions
    assert ("availability.update", "link") in actions
    assert ("availability.confirm", "link") in actions
    assert ("staff_link.update", "link") in actions and ("staff_link.confirm", "link") in actions
    await client.aclose()
    await other.aclose()
    logs = capsys.readouterr()
    assert secret not in logs.out + logs.err
    assert secret[4:20] not in logs.out + logs.err
    assert "/web/link/open" in logs.err  # the request lines were captured


async def test_expired_and_revoked_links_are_refused(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = str(w["staff"])
    client.headers["Accept-Language"] = "en"
    r, expiring = await issue(client, staff, fid, hours=1)
    assert r.status_code == 201
    r, revoked = await issue(client, staff, fid)
    link_id = r.json()["id"]
    r = await client.post(f"/staff/links/{link_id}/revoke", headers=bearer(staff))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = await client.post(f"/staff/links/{link_id}/revoke", headers=bearer(staff))
    assert r.status_code == 200  # idempotent
    clock.advance(minutes=61)
    r = await open_link(client, expiring)
    assert r.status_code == 410 and "expired" in r.text
    r = await open_link(client, revoked)
    assert r.status_code == 410 and "withdrawn" in r.text
    assert (await client.get("/web/link")).status_code == 303
    actions = [a for a, _ in await audit_actions(world)]
    assert actions.count("staff_link.revoke") == 1 and actions.count("staff_link.refused") == 2


async def test_revoking_or_expiry_ends_the_open_session(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = str(w["staff"])
    r, secret = await issue(client, staff, fid, hours=2)
    assert (await open_link(client, secret)).status_code == 303
    assert (await client.get("/web/link")).status_code == 200
    clock.advance(minutes=119)
    assert (await client.get("/web/link")).status_code == 200
    clock.advance(minutes=2)  # the link expired: its session with it
    assert (await client.get("/web/link")).status_code == 303
    client.cookies.clear()
    r, secret = await issue(client, staff, fid)
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    assert page.status_code == 200
    await client.post(f"/staff/links/{r.json()['id']}/revoke", headers=bearer(staff))
    assert (await client.get("/web/link")).status_code == 303
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    r = await client.post(
        f"/web/link/pools/{pool.id}",
        data={"csrf": csrf_of(page.text), "version": "1", "free": "0"},
    )
    assert r.status_code == 403
    async with world.db.read() as s:
        assert (await s.get(Pool, pool.id)).units_occupied == 0  # type: ignore[union-attr]


async def test_a_link_session_reaches_one_facility_and_nothing_else(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    addr, needles = canary_address()
    secret_place = await world.facility(
        "Refuges Solidaires",
        "Refuge Canary",
        address=addr,
        pools=[PoolCreate(label="Beds", units_total=4)],
    )
    staff = str(w["staff"])
    # a hold at the facility: the link page lists it as expected, but never its code (the
    # household gives it at the door), its household or its requester's contact
    await world.operator("Line", "helpline")
    helpline = await world.token("Line", "helpline")
    r = await client.post(
        "/holds",
        json={
            "poolRef": secret_place.pools[0].ref,
            "need": "homelessness",
            "household": {"adults": [{"gender": "female"}], "children": [{"age": 7}]},
            "callback": "CALLBACKCANARY 0470",
        },
        headers={**bearer(helpline), "Idempotency-Key": "link-test-hold"},
    )
    assert r.status_code == 201, r.text
    hold_ref = r.json()["ref"]
    r0, secret = await issue(client, staff, secret_place.facility.id)
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    assert page.status_code == 200 and "Refuge Canary" in page.text
    csrf = csrf_of(page.text)
    for needle in [*needles, "CALLBACKCANARY", "Refuge Iris", "Refuge Nord", "Line"]:
        assert needle not in page.text
    arriving = re.search(r'<section[^>]*id="arriving".*?</section>', page.text, re.S)
    assert arriving and "Beds" in arriving.group(0)
    assert hold_ref not in page.text and hold_ref.replace("-", "") not in page.text
    for detail in ("Enfant", "Femme", "7 ans", "homelessness", "Sans-abrisme"):
        assert detail not in arriving.group(0)
    other_pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    r = await client.post(
        f"/web/link/pools/{other_pool.id}", data={"csrf": csrf, "version": "1", "free": "0"}
    )
    assert r.status_code == 404
    r = await client.post(
        f"/web/link/pools/{other_pool.id}", data={"csrf": csrf, "version": "1", "action": "confirm"}
    )
    assert r.status_code == 404
    async with world.db.read() as s:
        p = await s.get(Pool, other_pool.id)
        assert p is not None and p.units_occupied == 0 and p.confirmed_at is None
    # none of the other pages, nor the API, admit a link session
    for url in (
        "/web/staff",
        "/web/console",
        "/web/staff/stream",
        f"/web/console/holds/{hold_ref}",
    ):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert "CALLBACKCANARY" not in r.text
    r = await client.post(f"/web/staff/holds/{hold_ref}/arrived", data={"csrf": csrf})
    assert r.status_code == 403
    # a hold at the operator's other place cannot be marked from this facility's link
    iris_hold = await client.post(
        "/holds",
        json={
            "poolRef": w["ixl"].pools[0].ref,  # type: ignore[attr-defined]
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
        },
        headers={**bearer(helpline), "Idempotency-Key": "link-test-iris"},
    )
    assert iris_hold.status_code == 201, iris_hold.text
    iris_ref = iris_hold.json()["ref"]
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": iris_ref})
    assert r.status_code == 404 and "Personne n&#39;est attendu ici avec ce code" in r.text
    assert f'value="{iris_ref}"' in r.text  # the typed code stays, to be checked
    async with world.db.read() as s:
        iris_id = (await s.execute(select(Hold.id).where(Hold.ref == iris_ref))).scalar_one()
    r = await client.post(f"/web/link/holds/{iris_id}/no-show", data={"csrf": csrf})
    assert r.status_code == 404
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": "KM4T"})
    assert r.status_code == 422 and "Ce n&#39;est pas un code de référence" in r.text
    r = await client.post("/web/link/arrived", data={"code": hold_ref})
    assert r.status_code == 403  # no CSRF token
    got = await client.get(f"/holds/{iris_ref}", headers=bearer(helpline))
    assert got.json()["state"] == "held"
    got = await client.get(f"/holds/{hold_ref}", headers=bearer(helpline))
    assert got.json()["state"] == "held"
    # its own, typed as heard (lower case, no dash): arrived, the places move from held to
    # occupied, the audit says the link did it
    typed = hold_ref.replace("-", " ").lower()
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": typed})
    assert r.status_code == 303 and r.headers["location"] == "/web/link?ok=arrived#arriving"
    got = await client.get(f"/holds/{hold_ref}", headers=bearer(helpline))
    assert got.json()["state"] == "arrived"
    async with world.db.read() as s:
        pool = await s.get(Pool, secret_place.pools[0].id)
        assert pool is not None and (pool.units_occupied, pool.units_held) == (2, 0)  # 2 beds
        who = (
            await s.execute(
                select(AuditEntry.actor_role).where(
                    AuditEntry.action == "hold.arrived", AuditEntry.object_id == hold_ref
                )
            )
        ).scalar_one()
    assert who == "link"
    async with world.db.read() as s:
        which = (
            await s.execute(
                select(AuditEntry.object_id, AuditEntry.detail).where(
                    AuditEntry.action == "staff_link.hold_arrived"
                )
            )
        ).one()
    assert which.detail == {"hold": hold_ref} and which.object_id == str(r0.json()["id"])
    page = await client.get("/web/link")
    assert 'id="arriving"' not in page.text  # nobody else expected
    again = await client.post(
        "/holds",
        json={
            "poolRef": secret_place.pools[0].ref,
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
        },
        headers={**bearer(helpline), "Idempotency-Key": "link-test-noshow"},
    )
    no_show_ref = again.json()["ref"]
    page = await client.get("/web/link")
    listed = re.findall(r'id="arriving-(\d+)"', page.text)
    assert len(listed) == 1 and no_show_ref not in page.text
    r = await client.post(f"/web/link/holds/{listed[0]}/no-show", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/web/link?ok=no_show#arriving"
    got = await client.get(f"/holds/{no_show_ref}", headers=bearer(helpline))
    assert got.json()["state"] == "no_show"
    async with world.db.read() as s:
        pool = await s.get(Pool, secret_place.pools[0].id)
        assert pool is not None and (pool.units_occupied, pool.units_held) == (2, 0)
    # nor may it change its own facility's status (a coordinator's decision)
    r = await client.post(
        f"/web/staff/facilities/{secret_place.facility.id}/status",
        data={"csrf": csrf, "status": "closed_to_admissions", "reason": "Night shift"},
    )
    assert r.status_code == 403
    r = await client.get(f"/staff/facilities/{secret_place.facility.id}", headers=bearer(staff))
    assert r.json()["status"] == "open"
    assert (await client.get("/staff/facilities")).status_code == 401
    assert (await client.get("/web/")).headers["location"] == "/web/link"


async def test_object_level_checks_and_roles(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    await world.operator("Autre Asbl", "shelter_operator")
    await world.facility("Autre Asbl", "Maison B")
    other_staff = await world.token("Autre Asbl", "staff")
    await world.operator("TF", "taskforce")
    await world.operator("Admin", "admin")
    others = {
        "helpline": str(w["helpline"]),
        "police": str(w["police"]),
        "taskforce": await world.token("TF", "taskforce"),
    }
    r, _secret = await issue(client, str(w["staff"]), fid)
    link_id = r.json()["id"]
    # staff of operator B: as if the facility and the link did not exist
    r, _ = await issue(client, other_staff, fid)
    assert r.status_code == 404
    r = await client.get(f"/staff/facilities/{fid}/links", headers=bearer(other_staff))
    assert r.status_code == 404
    r = await client.post(f"/staff/links/{link_id}/revoke", headers=bearer(other_staff))
    assert r.status_code == 404
    for role, token in others.items():
        r, _ = await issue(client, token, fid)
        assert r.status_code == 403, role
        r = await client.get(f"/staff/facilities/{fid}/links", headers=bearer(token))
        assert r.status_code == 403, role
        r = await client.post(f"/staff/links/{link_id}/revoke", headers=bearer(token))
        assert r.status_code == 403, role
    assert (await client.post(f"/staff/facilities/{fid}/links", json={})).status_code == 401
    # an admin may issue for any facility
    admin = await world.token("Admin", "admin")
    r, _ = await issue(client, admin, fid, hours=168)
    assert r.status_code == 201 and r.json()["expiresAt"].startswith("2026-01-22T01:30")
    for bad in ({"hours": 169}, {"hours": 0}, {"label": " "}):
        r, _ = await issue(client, admin, fid, **bad)
        assert r.status_code in (400, 422), bad
    r = await client.get(f"/staff/facilities/{fid}/links", headers=bearer(str(w["staff"])))
    assert [x["state"] for x in r.json()] == ["active", "active"]
    async with world.db.read() as s:
        assert (await s.scalars(select(StaffLink.id))).all().__len__() == 2


async def test_signing_out_of_a_link_session_is_final(client: AsyncClient, world: World) -> None:
    """A night worker signs out on a shared phone: a copy of the cookie opens nothing more."""
    w = await seed_world(world)
    place = await world.facility(
        "Refuges Solidaires", "Refuge Nuit", pools=[PoolCreate(label="Beds", units_total=3)]
    )
    _r, secret = await issue(client, str(w["staff"]), place.facility.id)
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    assert page.status_code == 200 and "Refuge Nuit" in page.text
    copied = client.cookies.get("abri_session", path="/web")
    r = await client.post("/web/sign-out", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    client.cookies.clear()
    client.cookies.set("abri_session", copied, path="/web")
    again = await client.get("/web/link")
    assert again.status_code != 200 and "Refuge Nuit" not in again.text


async def test_a_coordinator_issues_and_revokes_links_from_the_staff_page(
    world: World, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """No curl needed: the staff page issues a link (shown once, on the answer only), lists
    the facility's current links and revokes them; the worker's session ends with it."""
    w = await seed_world(world)
    ixl = w["ixl"]
    transport = httpx.ASGITransport(app=create_app(settings, db=world.db, clock=world.clock))
    coordinator = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    coordinator.headers["Accept-Language"] = "en"
    await web_sign_in(coordinator, str(w["staff"]))
    page = await coordinator.get("/web/staff")
    assert "Links for night workers" in page.text
    fid = ixl.facility.id  # type: ignore[attr-defined]
    url = f"/web/staff/facilities/{fid}/links"
    csrf = csrf_of(page.text)

    bad = await coordinator.post(url, data={"csrf": csrf, "label": " ", "hours": "12"})
    assert bad.status_code == 422 and "label of 1 to 120" in bad.text
    bad = await coordinator.post(url, data={"csrf": csrf, "label": "Sam", "hours": "500"})
    assert bad.status_code == 422 and "from 1 to 168" in bad.text
    # another operator's facility: not found, like an unknown one
    await world.operator("Autre ASBL", "shelter_operator")
    foreign = await world.facility("Autre ASBL", "Refuge Autre")
    r = await coordinator.post(
        f"/web/staff/facilities/{foreign.facility.id}/links",
        data={"csrf": csrf, "label": "Sam", "hours": "12"},
    )
    assert r.status_code == 404 and "Refuge Autre" not in r.text

    issued = await coordinator.post(
        url, data={"csrf": csrf, "label": "Night shift, Sam", "hours": "10"}
    )
    assert issued.status_code == 201 and "location" not in issued.headers
    assert issued.headers["cache-control"] == "no-store"
    m = re.search(r'id="issued-url"[^>]*value="([^"]+)"', issued.text)
    assert m, issued.text
    secret = m.group(1).split("#", 1)[1]
    assert secret.startswith("abl_")
    assert secret not in (await coordinator.get("/web/staff")).text  # shown once only

    worker = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    assert (await open_link(worker, secret)).status_code == 303
    assert (await worker.get("/web/link")).status_code == 200
    listed = await coordinator.get("/web/staff")
    row = re.search(r'<li id="link-(\d+)">Night shift, Sam · Opened · 10 h left', listed.text)
    assert row, listed.text
    r = await coordinator.post(
        f"/web/staff/links/{row.group(1)}/revoke", data={"csrf": csrf_of(listed.text)}
    )
    assert r.status_code == 303 and r.headers["location"] == f"/web/staff?ok=revoked#links-{fid}"
    after = await coordinator.get(r.headers["location"])
    assert "Night shift, Sam · Revoked · had been opened" in after.text
    assert "Link revoked" in after.text
    assert (await worker.get("/web/link")).status_code != 200  # the worker's session ended
    # The next morning: last night's unused link shows as expired, never opened; a day on,
    # it has left the list.
    unused = await coordinator.post(
        url, data={"csrf": csrf_of(after.text), "label": "Night shift, Ali", "hours": "8"}
    )
    assert unused.status_code == 201
    world.clock.advance(hours=9)
    morning = await coordinator.get("/web/staff")
    assert "Night shift, Ali · Expired · never opened" in morning.text
    world.clock.advance(hours=26)  # both expired more than a day ago
    await web_sign_in(coordinator, str(w["staff"]))  # the staff session's idle limit passed
    later = await coordinator.get("/web/staff")
    assert "Night shift, Ali ·" not in later.text and "Night shift, Sam ·" not in later.text
    actions = [a for a, _role in await audit_actions(world) if a.startswith("staff_link")]
    assert actions.count("staff_link.issue") == 2 and "staff_link.revoke" in actions
    await coordinator.aclose()
    await worker.aclose()
    logs = capsys.readouterr()
    assert secret not in logs.out + logs.err


async def test_another_operators_staff_cannot_revoke_a_link_from_their_page(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    _r, _secret = await issue(client, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    async with world.db.read() as s:
        link = (await s.scalars(select(StaffLink))).one()
    await world.operator("Autre ASBL", "shelter_operator")
    stranger = await world.token("Autre ASBL", "staff")
    await web_sign_in(client, stranger)
    client.headers["Accept-Language"] = "en"
    page = await client.get("/web/staff")
    assert "Night shift, Sam" not in page.text  # not listed to them
    r = await client.post(f"/web/staff/links/{link.id}/revoke", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404 and "Night shift, Sam" not in r.text
    async with world.db.read() as s:
        assert (await s.get(StaffLink, link.id)).revoked_at is None  # type: ignore[union-attr]


async def test_a_staff_session_cannot_open_the_link_page(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["staff"]))
    r = await client.get("/web/link")
    assert r.status_code == 403 and "Family rooms" not in r.text


def _link_msgids() -> set[str]:
    root = Path(i18n.__file__).parent
    ids: set[str] = set()
    for name in ("link.html", "link_open.html", "_pool_card.html", "_compromised.html"):
        ids.update(
            re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"\s*\)', (root / "templates" / name).read_text())
        )
    tree = ast.parse(Path(link_pages.__file__).read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("_", "FormError")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            ids.add(node.args[0].value)
    ids.update(link_pages.REFUSED_TEXT.values())
    ids.update(link_pages.NOTICES.values())
    ids.add("One-time link")
    return ids


@pytest.mark.parametrize("lang", ["fr", "nl", "de", "en"])
def test_every_link_page_label_is_translated(lang: str) -> None:
    table = i18n.catalogue(lang)
    ids = _link_msgids()
    assert len(ids) > 20
    missing = sorted(i for i in ids if i not in table)
    assert not missing, missing
    for msgid in ids:
        placeholders = sorted(re.findall(r"%\(\w+\)s", msgid))
        assert sorted(re.findall(r"%\(\w+\)s", table[msgid])) == placeholders, msgid


async def test_two_phones_opening_at_once_get_one_session(world: World, clock: FrozenClock) -> None:
    import asyncio

    from capacity import links
    from capacity.audit import CLI

    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    secret, _ = await links.issue(
        world.db, fid, label="x", actor=CLI, now=clock.now(), operator_scope=None
    )
    results = await asyncio.gather(
        *(links.exchange(world.db, secret, now=clock.now()) for _ in range(6))
    )
    assert sorted(str(x.refused) for x in results) == ["None"] + ["used"] * 5


async def test_reloading_the_answer_page_does_not_issue_a_second_link(
    world: World, settings: Settings
) -> None:
    """The page that shows a link answers a POST: a reload sends the same form again. It must
    not issue a second live link the coordinator never sees (nor can revoke knowingly)."""
    from sqlalchemy import func, select

    from capacity.models import StaffLink

    w = await seed_world(world)
    transport = httpx.ASGITransport(app=create_app(settings, db=world.db, clock=world.clock))
    coordinator = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    coordinator.headers["Accept-Language"] = "en"
    await web_sign_in(coordinator, str(w["staff"]))
    page = await coordinator.get("/web/staff")
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    nonce = re.search(
        rf'action="/web/staff/facilities/{fid}/links"[^<]*<input[^>]*>\s*<input type="hidden" '
        r'name="nonce" value="([^"]+)"',
        page.text,
    )
    assert nonce, page.text
    form = {"csrf": csrf_of(page.text), "nonce": nonce.group(1), "label": "Sam", "hours": "12"}
    url = f"/web/staff/facilities/{fid}/links"
    first = await coordinator.post(url, data=form)
    assert first.status_code == 201 and 'id="issued-url"' in first.text
    again = await coordinator.post(url, data=form)  # the browser's "resend"
    assert again.status_code == 409 and 'id="issued-url"' not in again.text
    assert "the form was sent twice" in again.text and "Sam · Not opened yet" in again.text
    # a fresh page carries a fresh nonce: the next link is issued
    fresh = await coordinator.get("/web/staff")
    other = re.findall(r'name="nonce" value="([^"]+)"', fresh.text)
    assert other and nonce.group(1) not in other
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(StaffLink)) == 1
    await coordinator.aclose()


async def test_the_same_form_sent_twice_at_once_issues_one_link(
    world: World, clock: FrozenClock
) -> None:
    """Two clicks racing with one nonce: one link, one 409, whichever commits first (the
    unique nonce decides, not a read-then-write)."""
    import asyncio

    from capacity import links
    from capacity.audit import CLI
    from capacity.errors import Conflict

    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]

    async def one() -> str:
        try:
            await links.issue(
                world.db,
                fid,
                label="x",
                actor=CLI,
                now=clock.now(),
                operator_scope=None,
                form_nonce="n" * 22,
            )
        except Conflict:
            return "409"
        return "201"

    assert sorted(await asyncio.gather(*(one() for _ in range(6)))) == ["201"] + ["409"] * 5


async def test_revoking_the_issuing_token_ends_its_links(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    """A staff token leaks; the runbook says: revoke it first. Links it issued (up to a week
    long) must not outlive it: neither one not yet opened (the thief's own, for later) nor the
    session one opened, which could otherwise still mark a household's hold "no show"."""
    from capacity import registry
    from capacity.audit import CLI
    from capacity.models import Token

    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    leaked = str(w["staff"])
    other_staff = await world.token("Refuges Solidaires", "staff")
    r, for_later = await issue(client, leaked, fid, hours=168)
    assert r.status_code == 201
    r, opened = await issue(client, leaked, fid)
    r, colleagues = await issue(client, other_staff, fid)
    assert (await open_link(client, opened)).status_code == 303
    assert (await client.get("/web/link")).status_code == 200

    async with world.db.read() as s:
        token_id = (
            await s.scalars(select(Token.id).where(Token.token_hash == registry.hash_token(leaked)))
        ).one()
    await registry.revoke_token(world.db, token_id=token_id, actor=CLI, now=clock.now())
    clock.advance(minutes=1)

    assert (await client.get("/web/link")).status_code == 303  # the open session ended
    client.cookies.clear()
    r = await open_link(client, for_later)
    assert r.status_code == 410  # the one kept for later opens nothing
    r = await client.get(f"/staff/facilities/{fid}/links", headers=bearer(other_staff))
    states = {x["id"]: x["state"] for x in r.json()}
    assert sorted(states.values()) == ["active", "revoked", "revoked"]  # a colleague's stays
    client.cookies.clear()
    assert (await open_link(client, colleagues)).status_code == 303
    actions = [a for a, _ in await audit_actions(world)]
    assert actions.count("staff_link.revoke") == 2


async def test_a_mistyped_or_unknown_field_issues_no_link(
    client: AsyncClient, world: World
) -> None:
    """A link is a credential: ``{"hourz": 1}`` must not silently become a 12-hour link, nor
    ``expiresAt`` or ``facilityId`` be ignored as if they had been honoured (every other body
    of the API refuses unknown fields)."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    for extra in ({"hourz": 1}, {"expiresAt": "2026-01-15T02:30:00Z"}, {"facilityId": 999}):
        r, _ = await issue(client, str(w["staff"]), fid, **extra)
        assert r.status_code == 422, (extra, r.text)
        assert next(iter(extra)) in r.json()["detail"]
    async with world.db.read() as s:
        assert (await s.scalars(select(StaffLink.id))).all() == []


def test_every_request_body_refuses_unknown_fields(settings: Settings) -> None:
    """Mass assignment: no JSON body of the API (nor a struct nested in one) accepts, and
    silently drops, a field it does not know."""
    import typing

    import msgspec

    lax: list[str] = []
    seen: set[type] = set()

    def check(tp: Any, where: str) -> None:
        for arg in typing.get_args(tp):
            check(arg, where)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and tp not in seen:
            seen.add(tp)
            if not tp.__struct_config__.forbid_unknown_fields:
                lax.append(f"{tp.__name__} ({where})")
            for hint in typing.get_type_hints(tp, include_extras=True).values():
                check(hint, where)

    app = create_app(settings)
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                check(data.annotation, f"{sorted(handler.http_methods)} {route.path}")
    assert len(seen) > 20 and lax == []
