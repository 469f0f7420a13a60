"""The web pages without a browser: sessions, CSRF, headers, languages, the staff conflict flow,
and no address on any page an operator can reach."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from httpx import AsyncClient
from sqlalchemy import select

from api.app import create_app
from api.web import i18n, reasons
from api.web.controllers import (
    AGE_MSG,
    AVOID_KM_MSG,
    CALLBACK_TOO_LONG,
    CLOSE_REASON_MSGIDS,
    DEFAULT_AVOID_KM,
    ERROR_TEXT,
    KM_MSG,
    LABELS,
    LINK_HOURS_MSG,
    REASON_TOO_LONG,
    STANDING_HOURS_MSG,
    STATUS_MSGIDS,
)
from api.web.session import CSP
from capacity import registry, retention
from capacity.audit import CLI, Actor
from capacity.clock import FrozenClock
from capacity.commands import PoolCreate
from capacity.models import EndedWebSession
from capacity.settings import Settings
from placement import holds_service
from tests.browser.web_helpers import csrf_of, post_form, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_canary_addresses import canary_address

FAMILY_FORM = {
    "adult0_gender": "female",
    "adult0_band": "25-64",
    "child0_age": "4",
    "child0_gender": "unknown",
    "child1_age": "13",
    "child1_gender": "unknown",
    "residence": "undocumented",
    "income": "no",
    "need": "ipv",
    "nights": "7",
    "languages": "fr",
    "avoid0": "Mechelen",
    "callback": "Ligne Ecoute, poste 12",
}


async def test_pages_send_strict_headers_and_safe_cookies(client: AsyncClient) -> None:
    r = await client.get("/web/sign-in")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/web" in cookie
    assert "Secure" not in cookie  # plain http (local demo)
    assert "<script>" not in r.text and " style=" not in r.text  # no inline script or style
    assert '<html lang="' in r.text and 'for="token"' in r.text


async def test_cookie_is_secure_over_https(db: Any, clock: FrozenClock, settings: Settings) -> None:
    app = create_app(settings, db=db, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://abri.example"
    ) as c:
        r = await c.get("/web/sign-in")
    assert "Secure" in r.headers["set-cookie"]


async def test_secure_cookies_switch_reads_as_the_other_switches(
    db: Any, clock: FrozenClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENVIRONMENT.md: switches take 1/0, true/false, yes/no, on/off in any case, and a value
    that is none of these stops the process at start. ABRI_WEB_SECURE_COOKIES was left out:
    `False` or `off` forced Secure cookies, so signing in over plain http (a local demo on the
    LAN) never kept its session; `maybe` was taken as on without a word."""
    app = create_app(settings, db=db, clock=clock)
    for value, secure in (("False", False), ("off", False), ("No", False), ("On", True)):
        monkeypatch.setenv("ABRI_WEB_SECURE_COOKIES", value)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://abri.example"
        ) as c:
            r = await c.get("/web/sign-in")
        assert ("Secure" in r.headers["set-cookie"]) is secure, value
    monkeypatch.setenv("ABRI_WEB_SECURE_COOKIES", "maybe")
    with pytest.raises(SystemExit, match="ABRI_WEB_SECURE_COOKIES"):
        Settings.from_env()


async def test_sign_in_sign_out_and_token_never_in_urls_or_logs(
    world: World, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    w = await seed_world(world)
    token = str(w["staff"])
    app = create_app(settings, db=world.db, clock=world.clock)  # logs into capsys
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    r = await web_sign_in(client, token)
    assert r.status_code == 303 and r.headers["location"] == "/web/staff"
    assert token not in r.headers["location"] and token not in r.headers.get("set-cookie", "")
    page = await client.get("/web/staff")
    assert page.status_code == 200 and "Refuge Iris" in page.text and token not in page.text
    r = await post_form(client, "/web/staff", "/web/sign-out", {})
    assert r.status_code == 303
    assert (await client.get("/web/staff")).status_code == 303  # back to sign-in
    await client.aclose()
    logs = capsys.readouterr()
    assert token not in logs.out + logs.err
    assert "/web/sign-in" in logs.err


async def test_a_copied_cookie_is_refused_after_sign_out(client: AsyncClient, world: World) -> None:
    """Signing out is final: a copy of the session cookie (left on a shared computer at a
    police station) opens nothing afterwards, though it is still signed and not yet expired.
    What remembers it is the session's random id only, forgotten by the retention job once
    the cookie would have expired anyway."""
    w = await seed_world(world)
    assert (await web_sign_in(client, str(w["police"]))).status_code == 303
    copied = client.cookies.get("abri_session", path="/web")
    assert copied and (await client.get("/web/console")).status_code == 200
    assert (await post_form(client, "/web/console", "/web/sign-out", {})).status_code == 303

    client.cookies.clear()
    client.cookies.set("abri_session", copied, path="/web")
    r = await client.get("/web/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/web/sign-in")
    async with world.db.read() as s:
        (row,) = (await s.execute(select(EndedWebSession))).scalars().all()
    assert len(row.sid) < 32 and "police" not in row.sid  # an opaque id, nothing else

    world.clock.advance(hours=13)  # past the cookie's absolute lifetime
    done = await retention.purge(world.db, now=world.clock.now(), days=90)
    assert done.web_sessions == 1
    assert (await retention.purge(world.db, now=world.clock.now(), days=90)).web_sessions == 0


async def test_bad_token_is_refused_in_the_page(client: AsyncClient, world: World) -> None:
    await seed_world(world)
    r = await web_sign_in(client, "abri_not-a-real-token")
    assert r.status_code == 401 and 'role="alert"' in r.text


async def test_every_post_needs_the_csrf_token(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    page = await client.get("/web/sign-in")
    r = await client.post("/web/sign-in", data={"token": w["staff"]})
    assert r.status_code == 403
    r = await client.post("/web/sign-in", data={"token": w["staff"], "csrf": "forged"})
    assert r.status_code == 403
    await client.post("/web/sign-in", data={"token": w["staff"], "csrf": csrf_of(page.text)})
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    for url, data in (
        (f"/web/staff/pools/{pool.id}", {"version": "1", "free": "0"}),
        ("/web/sign-out", {}),
        ("/web/lang", {"lang": "nl"}),
        ("/web/staff/holds/AB-1234/arrived", {}),
        ("/web/staff/holds/AB-1234/departed", {}),
        (f"/web/staff/facilities/{pool.facility_id}/links", {"label": "Sam", "hours": "12"}),
        ("/web/staff/links/1/revoke", {}),
        (
            f"/web/staff/facilities/{pool.facility_id}/status",
            {"status": "closed_to_admissions", "reason": "Forged"},
        ),
    ):
        r = await client.post(url, data=data)
        assert r.status_code == 403, url
    assert (await client.get("/web/staff")).status_code == 200  # still signed in
    async with world.db.read() as s:
        from capacity.models import Facility, Pool, StaffLink

        assert (await s.get(Pool, pool.id)).units_occupied == 0  # type: ignore[union-attr]
        assert (await s.execute(select(StaffLink))).first() is None  # no link issued
        assert (await s.get(Facility, pool.facility_id)).status == "open"  # type: ignore[union-attr]


async def test_pages_and_api_do_not_share_credentials(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    r = await client.get("/web/console", headers=bearer(str(w["helpline"])))
    assert r.status_code == 303 and r.headers["location"] == "/web/sign-in"
    await web_sign_in(client, str(w["helpline"]))
    assert (await client.get("/web/console")).status_code == 200
    assert (await client.get("/holds")).status_code == 401  # the cookie is not a bearer


async def test_sessions_expire(client: AsyncClient, world: World, clock: FrozenClock) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    clock.advance(minutes=29)
    assert (await client.get("/web/console")).status_code == 200
    clock.advance(minutes=29)  # the visit above slid the idle window
    assert (await client.get("/web/console")).status_code == 200
    clock.advance(minutes=31)
    assert (await client.get("/web/console")).status_code == 303  # idle 31 min: signed out
    client.cookies.clear()
    await web_sign_in(client, str(w["staff"]))
    clock.advance(hours=3)
    assert (await client.get("/web/staff")).status_code == 200  # staff: long night shifts
    clock.advance(hours=9, minutes=1)
    assert (await client.get("/web/staff")).status_code == 303  # 12 h absolute


async def test_background_refreshes_do_not_keep_a_console_signed_in(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    """A helpline laptop left on a hold page (or a waiting list) on a shared office PC stayed
    signed in for 12 h: the page looks for news every 15 s by itself, and every look slid the
    30-minute idle window as if the operator had done something. Only what the operator does
    counts now; the page's own looks (``X-Abri-Background: 1``) are told, once the session
    has ended, that it has (401, ``X-Abri-Session: ended``) instead of getting the sign-in
    page to parse as if it were the page."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    background = {"X-Abri-Background": "1"}
    for _ in range(7):  # 28 minutes of the page looking by itself
        clock.advance(minutes=4)
        r = await client.get("/web/console", headers=background)
        assert r.status_code == 200 and "set-cookie" not in r.headers
    clock.advance(minutes=3)  # 31 minutes since the operator last did anything
    r = await client.get("/web/console", headers=background)
    assert r.status_code == 401 and r.headers["x-abri-session"] == "ended"
    assert "Ligne Ecoute" not in r.text
    assert r.headers["cache-control"] == "no-store"
    r = await client.get("/web/console")
    assert r.status_code == 303 and r.headers["location"] == "/web/sign-in"
    # the page it then goes to says why it is there
    en = {"Accept-Language": "en"}
    page = await client.get("/web/sign-in?ended=1", headers=en)
    assert "Your session has ended" in page.text and 'role="alert"' in page.text
    assert "Your session has ended" not in (await client.get("/web/sign-in", headers=en)).text


async def test_signing_in_again_goes_back_to_the_page_that_was_open(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    """An officer waiting on a hold's page was signed out after 30 idle minutes; after signing
    in again she landed on the empty console and had to find the hold again. The sign-in now
    comes back to the page that was open: one of ours, and only one this role may open."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    page = "/web/console/holds/KM4T-9RC7"
    clock.advance(minutes=31)
    r = await client.get(page)
    assert r.status_code == 303 and r.headers["location"] == f"/web/sign-in?next={page}"
    form = await client.get(r.headers["location"])  # as abri.js goes there too (ended=1)
    assert f'name="next" value="{page}"' in form.text
    r = await client.post(
        "/web/sign-in",
        data={"csrf": csrf_of(form.text), "token": str(w["helpline"]), "next": page},
    )
    assert r.status_code == 303 and r.headers["location"] == page
    # A wrong token keeps where to go back to; a page of another role, or of another site,
    # is not followed: the role's home page instead.
    client.cookies.clear()
    form = await client.get(f"/web/sign-in?next={page}")
    r = await client.post(
        "/web/sign-in", data={"csrf": csrf_of(form.text), "token": "abri_wrong", "next": page}
    )
    assert r.status_code == 401 and f'name="next" value="{page}"' in r.text
    for target, token, home in (
        ("/web/staff/facilities/1", w["helpline"], "/web/console"),
        ("/web/console/holds/KM4T-9RC7", w["staff"], "/web/staff"),
        ("https://evil.example/web/console/x", w["police"], "/web/console"),
        ("//evil.example/web/console/x", w["police"], "/web/console"),
        ("/web/console/../../admin", w["police"], "/web/console"),
    ):
        client.cookies.clear()
        form = await client.get("/web/sign-in")
        r = await client.post(
            "/web/sign-in",
            data={"csrf": csrf_of(form.text), "token": str(token), "next": target},
        )
        assert r.status_code == 303 and r.headers["location"] == home, target
    # The home pages still send to the plain sign-in page.
    client.cookies.clear()
    r = await client.get("/web/console")
    assert r.status_code == 303 and r.headers["location"] == "/web/sign-in"


async def test_a_page_drawn_for_another_session_is_told_so_not_given_the_new_one(
    client: AsyncClient, world: World
) -> None:
    """A console tab left open across a sign-out and a sign-in as another operator: its next
    look for news got the new operator's console, and the page drew that operator's waiting
    list under its own header and forms (which were then refused). The page sends the mark of
    the session it was drawn for (``data-session``, never the session's id); a look from a
    page drawn for another session is answered 409 ``X-Abri-Session: changed``, with nothing
    of the new operator's."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    drawn = await client.get("/web/console")
    old = re.search(r'<body[^>]* data-session="([0-9a-f]+)"', drawn.text)
    assert old, "the page says which session it was drawn for"
    assert client.cookies.get("abri_session", path="/web") not in drawn.text
    look = {"X-Abri-Background": "1", "X-Abri-Page": old.group(1)}
    assert (await client.get("/web/console", headers=look)).status_code == 200
    await post_form(client, "/web/console", "/web/sign-out", {})
    await web_sign_in(client, str(w["police"]))
    r = await client.get("/web/console", headers=look)
    assert r.status_code == 409 and r.headers["x-abri-session"] == "changed"
    assert "Zone Ixelles" not in r.text
    # the police zone's own page, and its looks, are answered as ever
    page = await client.get("/web/console")
    new = re.search(r'<body[^>]* data-session="([0-9a-f]+)"', page.text)
    assert page.status_code == 200 and "Zone Ixelles" in page.text
    assert new and new.group(1) != old.group(1)
    look["X-Abri-Page"] = new.group(1)
    assert (await client.get("/web/console", headers=look)).status_code == 200


async def test_revoking_the_token_ends_the_session(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["staff"]))
    assert (await client.get("/web/staff")).status_code == 200
    tokens = await registry.list_tokens(world.db)
    staff_id = next(t.id for t, _ in tokens if t.role == "staff")
    await registry.revoke_token(world.db, token_id=staff_id, actor=CLI, now=clock.now())
    assert (await client.get("/web/staff")).status_code == 303


async def test_wrong_role_gets_no_page(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    r = await client.get("/web/staff")
    assert r.status_code == 403 and "Refuge Iris" not in r.text


@pytest.mark.parametrize(
    ("lang", "label"),
    [("fr", "Mes places"), ("nl", "Mijn plaatsen"), ("de", "Meine Plätze"), ("en", "My places")],
)
async def test_language_switch(client: AsyncClient, world: World, lang: str, label: str) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["staff"]))
    r = await post_form(client, "/web/staff", "/web/lang", {"lang": lang, "next": "/web/staff"})
    assert r.status_code == 303 and r.headers["location"] == "/web/staff"
    page = await client.get("/web/staff")
    assert f'<html lang="{lang}">' in page.text and label in page.text


async def test_language_switch_never_redirects_off_site(client: AsyncClient) -> None:
    r = await post_form(
        client, "/web/sign-in", "/web/lang", {"lang": "de", "next": "https://evil.example/"}
    )
    assert r.headers["location"] == "/web/"
    # nor out of /web/ by a path the browser resolves (/web/../admin is /admin)
    for sneaky in ("/web/../admin/tokens", "/web/./../metrics", "/web/staff/.."):
        r = await post_form(client, "/web/sign-in", "/web/lang", {"lang": "de", "next": sneaky})
        assert r.headers["location"] == "/web/", sneaky
    r = await client.get("/web/sign-in")
    assert 'lang="de"' in r.text and "Anmelden" in r.text


def _msgids() -> set[str]:
    root = Path(i18n.__file__).parent
    ids: set[str] = set()
    for t in (root / "templates").glob("*.html"):
        ids.update(
            m.group(1) or m.group(2)
            for m in re.finditer(
                r'_\(\s*"((?:[^"\\]|\\.)*)"\s*\)|_\(\s*\'((?:[^\'\\]|\\.)*)\'\s*\)', t.read_text()
            )
        )
    tree = ast.parse((root / "controllers.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("_", "FormError")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            ids.add(node.args[0].value)
    ids.update(ERROR_TEXT.values())
    ids.update(v for d in LABELS.values() for v in d.values())
    from api.web.taskforce import REQUESTER_LABELS

    ids.update(REQUESTER_LABELS.values())
    ids.update((AGE_MSG, KM_MSG, LINK_HOURS_MSG, AVOID_KM_MSG, STANDING_HOURS_MSG))
    ids.update((REASON_TOO_LONG, CALLBACK_TOO_LONG))
    ids.update(STATUS_MSGIDS)
    ids.update(CLOSE_REASON_MSGIDS)
    ids.update(reasons.MSGIDS)
    return ids


@pytest.mark.parametrize("lang", ["fr", "nl", "de"])
def test_every_label_and_error_is_translated(lang: str) -> None:
    table = i18n.catalogue(lang)
    ids = _msgids()
    assert len(ids) > 150
    missing = sorted(i for i in ids if i not in table)
    assert not missing, missing
    for msgid in ids:
        placeholders = sorted(re.findall(r"%\(\w+\)s", msgid))
        assert sorted(re.findall(r"%\(\w+\)s", table[msgid])) == placeholders, msgid


async def test_a_hold_made_after_the_page_was_drawn_is_not_counted_free_again(
    client: AsyncClient, world: World
) -> None:
    """Staff see 3 free, 0 held. A police hold takes a room. Staff, on the page drawn before,
    tap "-" (a walk-in): that "2 free" meant "2 besides the 0 held I saw". Worked out with
    the new held count it would leave 2 free where only 1 is: the hold's room given twice.
    The tap is refused with the new figures; from the fresh page it works."""
    from capacity.models import Pool

    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    minus = re.search(
        rf'action="/web/staff/pools/{pool.id}">\s*<input type="hidden" name="csrf" value="([^"]+)">'
        r'\s*<input type="hidden" name="version" value="(\d+)">'
        r'\s*<input type="hidden" name="held" value="(\d+)">'
        r'\s*<input type="hidden" name="free" value="(\d+)">',
        page.text,
    )
    assert minus and minus.group(3) == "0" and minus.group(4) == "2", page.text
    police = bearer(str(w["police"]))
    found = await client.post(
        "/placements/search",
        headers=police,
        json={"household": {"adults": [{"gender": "female"}]}, "need": "ipv"},
    )
    ref = next(o["poolRef"] for o in found.json()["options"] if o["alias"] == "Refuge Iris")
    hold = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "walk-in-race-1"},
        json={"poolRef": ref, "need": "ipv", "household": {"adults": [{"gender": "female"}]}},
    )
    assert hold.status_code == 201, hold.text
    form = dict(zip(("csrf", "version", "held", "free"), minus.groups(), strict=True))
    r = await client.post(f"/web/staff/pools/{pool.id}", data=form)
    assert r.status_code == 409 and "2 free, 0 occupied, 1 held, 3 in service" in r.text
    async with world.db.read() as s:
        assert (await s.get(Pool, pool.id)).units_occupied == 0  # type: ignore[union-attr]
    fresh = await client.get("/web/staff")
    held = re.search(
        rf'pools/{pool.id}">.*?name="version" value="(\d+)">\s*<input type="hidden" name="held" value="(\d+)">\s*<input type="hidden" name="free" value="(\d+)">',
        fresh.text,
        re.S,
    )
    assert held and held.group(2) == "1" and held.group(3) == "1"
    r = await client.post(
        f"/web/staff/pools/{pool.id}",
        data={"csrf": csrf_of(fresh.text), "version": held.group(1), "held": "1", "free": "1"},
    )
    assert r.status_code == 303
    async with world.db.read() as s:
        row = await s.get(Pool, pool.id)
        assert row is not None and (row.units_occupied, row.units_held) == (1, 1)


async def test_staff_conflict_shows_the_new_figures(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    csrf = csrf_of(page.text)
    # Two people had the page open at version 1; the first sets 2 free, the second 1 free.
    r = await client.post(
        f"/web/staff/pools/{pool.id}", data={"csrf": csrf, "version": "1", "free": "2"}
    )
    assert r.status_code == 303
    r = await client.post(
        f"/web/staff/pools/{pool.id}", data={"csrf": csrf, "version": "1", "free": "1"}
    )
    assert r.status_code == 409
    assert f'id="conflict-{pool.id}"' in r.text
    assert "2 free, 1 occupied, 0 held, 3 in service" in r.text
    # the page now carries the new version: setting again works
    r = await client.post(
        f"/web/staff/pools/{pool.id}", data={"csrf": csrf, "version": "2", "free": "1"}
    )
    assert r.status_code == 303
    r = await client.post(
        f"/web/staff/pools/{pool.id}", data={"csrf": csrf, "version": "3", "action": "confirm"}
    )
    assert r.status_code == 303 and "confirmed" in r.headers["location"]
    r = await client.post(
        f"/web/staff/pools/{pool.id}", data={"csrf": csrf, "version": "3", "free": "9"}
    )
    assert r.status_code == 422 and "At most 3" in r.text


def hold_form(results_page: str) -> dict[str, str]:
    """The fields of the first "Hold this place" form on a results page, with its CSRF token."""
    form = re.search(
        r'<form method="post" action="/web/console/hold".*?</form>', results_page, re.S
    )
    assert form
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0))
    }
    return {**fields, "csrf": csrf_of(results_page)}


async def test_operator_console_search_hold_release(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    # R12: a new household assumes no gender; the first adult's must be chosen
    fresh = (await client.get("/web/console")).text
    first = re.search(r'<select id="adult0_gender".*?</select>', fresh, re.S)
    assert first and " required" in first.group(0) and "selected" not in first.group(0)
    blank = {**FAMILY_FORM, "adult0_gender": ""}
    r = await post_form(client, "/web/console", "/web/console/search", blank)
    assert r.status_code == 422 and "Refuge Iris" not in r.text
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200, r.text
    assert "Refuge Iris" in r.text and "Refuge Nord" not in r.text  # Schaerbeek avoided
    fields = hold_form(r.text)
    r = await client.post("/web/console/hold", data=fields)
    assert r.status_code == 303, r.text
    hold_url = r.headers["location"]
    again = await client.post("/web/console/hold", data=fields)  # double click: same hold
    assert again.headers["location"] == hold_url
    page = await client.get(hold_url)
    ref = hold_url.rsplit("/", 1)[1]
    assert 'id="refcode"' in page.text and ref in page.text and 'id="countdown"' in page.text
    # The shelter's staff see who is coming (composition only), to prepare or decline
    await web_sign_in(client, str(w["staff"]))
    card = re.search(
        rf'<article class="hold card" id="hold-{ref}">.*?</article>',
        (await client.get("/web/staff")).text,
        re.S,
    )
    assert card, "the hold is not on the staff page"
    for shown in (
        "Femme (25-64)",
        "Enfants (âges) : 4, 13",
        "Sans papiers",
        "Français",
    ):  # FR page
        assert shown in " ".join(card.group(0).split()), shown
    await web_sign_in(client, str(w["police"]))
    csrf = csrf_of((await client.get(hold_url)).text)
    r = await client.post(f"{hold_url}/release", data={"csrf": csrf})
    assert r.status_code == 303
    assert (
        "Released" in (await client.get(hold_url)).text
        or "Libérée" in (await client.get(hold_url)).text
    )


async def test_the_same_household_is_not_held_twice_at_the_same_place(
    client: AsyncClient, world: World
) -> None:
    """Back from the hold's page, the browser sends the search again (a results page is drawn
    for a POST): the fresh results carry new hold forms, and "Hold this place" on the same
    place held it a second time for the same household. The same household (episode token,
    composition and need) at the same place still held is that hold, not a second one; a
    different household, or the same one after its hold was released, is held anew."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    episode = re.search(r'name="episode" value="([^"]+)"', (await client.get("/web/console")).text)
    assert episode
    form = {**FAMILY_FORM, "episode": episode.group(1)}
    r = await post_form(client, "/web/console", "/web/console/search", form)
    first = await client.post("/web/console/hold", data=hold_form(r.text))
    assert first.status_code == 303
    # back, "resend the form", and "Hold this place" again
    r = await post_form(client, "/web/console", "/web/console/search", form)
    again = await client.post("/web/console/hold", data=hold_form(r.text))
    assert again.status_code == 303
    assert again.headers["location"].split("?")[0] == first.headers["location"]
    page = (await client.get(again.headers["location"])).text
    assert "already held for this household" in page
    actor = Actor(operator_id=None, role="admin")
    held = await holds_service.list_holds(world.db, actor=actor, side="requester", states=["held"])
    assert len(held) == 1
    # another household (a child more) at the same place is held apart
    bigger = {**form, "child2_age": "9"}
    r = await post_form(client, "/web/console", "/web/console/search", bigger)
    other = await client.post("/web/console/hold", data=hold_form(r.text))
    assert other.headers["location"] != first.headers["location"]
    # released, the same household may hold the place again
    ref = first.headers["location"].rsplit("/", 1)[1]
    await holds_service.transition(world.db, ref, "released", actor=actor, now=world.clock.now())
    r = await post_form(client, "/web/console", "/web/console/search", form)
    anew = await client.post("/web/console/hold", data=hold_form(r.text))
    assert anew.headers["location"].split("?")[0] not in (
        first.headers["location"],
        other.headers["location"],
    )


async def test_the_same_hold_form_sent_again_with_a_callback_goes_to_the_hold(
    client: AsyncClient, world: World
) -> None:
    """The operator held a place, went Back to the results (the page as it was, its hold forms
    with their keys), typed "How the shelter can reach you" (the hold and wait forms take it as
    it is when pressed), and pressed "Hold this place" again: the same form
    with another body was refused as a reused key ("The request failed."). It is the
    household's hold, as before the check moved into ``reserve``."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    episode = re.search(r'name="episode" value="([^"]+)"', (await client.get("/web/console")).text)
    assert episode
    form = {**FAMILY_FORM, "episode": episode.group(1)}
    r = await post_form(client, "/web/console", "/web/console/search", form)
    fields = hold_form(r.text)
    first = await client.post("/web/console/hold", data=fields)
    assert first.status_code == 303
    again = await client.post("/web/console/hold", data={**fields, "callback": "+32 2 555 01 01"})
    assert again.status_code == 303, again.text
    assert again.headers["location"] == first.headers["location"] + "?already=1"
    actor = Actor(operator_id=None, role="admin")
    held = await holds_service.list_holds(world.db, actor=actor, side="requester", states=["held"])
    assert len(held) == 1


async def test_switching_language_mid_search_keeps_the_household_and_its_results(
    client: AsyncClient, world: World
) -> None:
    """A helpline operator switches FR/NL/DE/EN while describing a household, or on the
    results: the switch came back to an empty console (a new household, its episode token
    new, so the unmet need counted again), and everything typed at 2 a.m. was to type again.
    On the console, the language buttons send the form along: the household as typed, in the
    new language, and the results drawn again when they were shown."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    console = (await client.get("/web/console")).text
    episode = re.search(r'name="episode" value="([^"]+)"', console)
    assert episode
    for code in ("fr", "nl", "de", "en"):  # each button sends the search form
        button = re.search(rf'<button[^>]*name="lang" value="{code}"[^>]*>', console)
        assert button and 'form="search-form"' in button.group(0), code
        assert 'formaction="/web/console/lang"' in button.group(0)
        assert "formnovalidate" in button.group(0)  # half a household may switch too
    form = {**FAMILY_FORM, "episode": episode.group(1)}
    # half-typed, no search yet: the form comes back in German, as typed, without results
    r = await post_form(client, "/web/console", "/web/console/lang", {**form, "lang": "de"})
    assert r.status_code == 200 and '<html lang="de">' in r.text
    assert "Platz finden" in r.text and 'id="results"' not in r.text
    assert f'name="episode" value="{episode.group(1)}"' in r.text
    assert 'value="Ligne Ecoute, poste 12"' in r.text and 'value="13"' in r.text
    assert re.search(r'<option value="undocumented"\s+selected', r.text)
    assert "lang=de" in r.headers.get("set-cookie", "")
    # on the results: drawn again in Dutch, the same places, the form as it was
    results = await post_form(client, "/web/console", "/web/console/search", form)
    assert "Refuge Iris" in results.text and 'name="shown" value="1"' in results.text
    r = await client.post(
        "/web/console/lang",
        data={**form, "csrf": csrf_of(results.text), "shown": "1", "lang": "nl"},
    )
    assert r.status_code == 200 and '<html lang="nl">' in r.text
    assert 'id="results"' in r.text and "Refuge Iris" in r.text
    assert "Mechelen (12025)" in r.text  # the area to avoid as it was understood
    assert f'name="episode" value="{episode.group(1)}"' in r.text
    # the page drawn next is in Dutch too (the cookie)
    assert '<html lang="nl">' in (await client.get("/web/console")).text
    # a bad language changes nothing but still keeps the form
    r = await post_form(client, "/web/console", "/web/console/lang", {**form, "lang": "xx"})
    assert r.status_code == 200 and 'value="Ligne Ecoute, poste 12"' in r.text
    # a forged post (no CSRF token) is refused, and a staff session may not use it
    r = await client.post("/web/console/lang", data={**form, "shown": "1", "lang": "fr"})
    assert r.status_code == 403 and "Refuge Iris" not in r.text
    await web_sign_in(client, str(w["staff"]))
    r = await post_form(client, "/web/staff", "/web/console/lang", {**form, "lang": "fr"})
    assert r.status_code in (303, 403) and "Refuge Iris" not in r.text


async def test_a_declined_hold_is_shown_with_its_reason_on_the_console(
    client: AsyncClient, world: World
) -> None:
    """R23/R24: an operator using only the web pages learns that the shelter declined (or that
    the hold expired) from the console and the hold's page, with the shelter's reason."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    hold_url = (await client.post("/web/console/hold", data=hold_form(r.text))).headers["location"]
    ref = hold_url.rsplit("/", 1)[1]
    page = (await client.get(hold_url)).text
    assert 'data-state="held"' in page and 'id="close-reason"' not in page
    console = (await client.get("/web/console")).text
    assert 'id="ended-holds"' not in console and ref in console  # held: in the first list

    staff = Actor(operator_id=None, role="admin")
    await holds_service.transition(
        world.db, ref, "declined", actor=staff, now=world.clock.now(), reason="Boy of 13: no room"
    )
    page = (await client.get(hold_url)).text
    assert 'data-state="declined"' in page and "Boy of 13: no room" in page
    console = (await client.get("/web/console")).text
    ended = re.search(r'<section[^>]*id="ended-holds".*?</section>', console, re.S)
    assert ended and ref in ended.group(0) and "Boy of 13: no room" in ended.group(0)
    world.clock.advance(hours=13)  # ended long enough ago: no longer listed
    assert 'id="ended-holds"' not in (await client.get("/web/console")).text


async def test_console_keeps_away_from_areas_to_avoid_and_counts_one_household_once(
    client: AsyncClient, world: World
) -> None:
    """R17: the console keeps places at least DEFAULT_AVOID_KM from an area to avoid unless
    the operator lowers it. Avoiding Schaerbeek as well as Mechelen: Refuge Iris (Ixelles, about
    1.4 km from Schaerbeek's edge) is left out, and so is a public night shelter in Ixelles. At
    0 km (Schaerbeek alone) the public shelter is offered; the secret refuge is still left out,
    judged by its 10 km band, so that no series of searches can tell which municipality it is
    in. R33: searching again for the same household counts its unmet need once; "New household"
    starts over."""
    from sqlalchemy import func

    from capacity.models import UnmetDemand

    w = await seed_world(world)
    await world.facility(
        "Refuges Solidaires",
        "Abri de nuit Ixelles",
        municipality="21009",
        kind="night_shelter",
        secret=False,
        policy=seed_policy(),
        pools=[
            PoolCreate(label="Rooms", unit_kind="family_room", places_per_unit=4, units_total=2)
        ],
    )
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    page = await client.get("/web/console")
    assert re.search(rf'id="avoid_km"[^>]*value="{DEFAULT_AVOID_KM}"', page.text)
    episode = re.search(r'name="episode" value="([^"]+)"', page.text)
    assert episode and 'id="new-household"' in page.text
    form = {
        **FAMILY_FORM,
        "avoid1": "Schaerbeek",
        "avoid_km": str(DEFAULT_AVOID_KM),
        "episode": episode.group(1),
    }
    for _ in range(3):  # the operator searches again, and again, for the same household
        r = await post_form(client, "/web/console", "/web/console/search", form)
        assert r.status_code == 200, r.text
        for name in ("Refuge Iris", "Refuge Nord", "Abri de nuit Ixelles"):
            assert name not in r.text
        assert "The unmet need was recorded" in r.text or "Options (0)" in r.text
        # the token rides along with the re-rendered form
        assert f'name="episode" value="{episode.group(1)}"' in r.text
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(UnmetDemand)) == 1
    fresh = await client.get("/web/console")  # "New household"
    other = re.search(r'name="episode" value="([^"]+)"', fresh.text)
    assert other and other.group(1) != episode.group(1)
    await post_form(
        client, "/web/console", "/web/console/search", {**form, "episode": other.group(1)}
    )
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(UnmetDemand)) == 2
    # Closer is the operator's call: at 0 km (the areas alone) the public shelter in Ixelles is
    # offered; the secret refuge there is not (its 10 km band touches Schaerbeek).
    r = await post_form(client, "/web/console", "/web/console/search", {**form, "avoid_km": "0"})
    assert "Abri de nuit Ixelles" in r.text
    assert "Refuge Iris" not in r.text and "Refuge Nord" not in r.text
    # without Schaerbeek, the secret refuge is offered again
    r = await post_form(client, "/web/console", "/web/console/search", {**form, "avoid1": ""})
    assert "Refuge Iris" in r.text and "Refuge Nord" not in r.text
    assert "Specialised in: Intimate partner violence" in r.text  # R13: shown, not a rule
    r = await post_form(client, "/web/console", "/web/console/search", {**form, "avoid_km": "99"})
    assert r.status_code == 422 and "Distance from the areas to avoid" in r.text
    # R04: a count past the staleness limit is shown as the last report, never as "free".
    from datetime import timedelta

    from sqlalchemy import update

    from capacity.models import Pool

    long_ago = world.clock.now() - timedelta(days=3)
    async with world.db.write() as s:
        await s.execute(update(Pool).values(reported_at=long_ago, confirmed_at=long_ago))
    world.clock.advance(seconds=5)  # past the matcher's cache
    r = await post_form(client, "/web/console", "/web/console/search", {**form, "avoid1": ""})
    assert "Refuge Iris" in r.text and "last reported: 3 free" in r.text
    assert "<strong>3 free</strong>" not in r.text


async def test_console_says_which_admission_conditions_are_already_met(
    client: AsyncClient, world: World
) -> None:
    """With a negative test required across the country, every option shows it as a
    condition to meet, in the page's language, until the operator ticks that the person has
    one; the hold then carries it."""
    from capacity import health_rules

    w = await seed_world(world)
    await health_rules.set_condition(
        world.db, "BE", "negative_test", reason="Outbreak", actor=CLI, now=world.clock.now()
    )
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    condition = "Admission condition to meet: A negative test."
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200 and "Refuge Iris" in r.text and condition in r.text
    met = {**FAMILY_FORM, "health_met": "negative_test"}
    r = await post_form(client, "/web/console", "/web/console/search", met)
    assert r.status_code == 200 and "Refuge Iris" in r.text and condition not in r.text
    assert re.search(r'id="met-negative_test"[^>]*checked', r.text)
    household = re.search(r'name="household" value="([^"]*)"', r.text)
    assert household and "negative_test" in html.unescape(household.group(1))


async def test_staff_see_the_condition_in_force_for_their_area(
    client: AsyncClient, world: World
) -> None:
    from capacity import health_rules

    w = await seed_world(world)
    await web_sign_in(client, str(w["staff"]))
    client.headers["Accept-Language"] = "en"
    banner = "In force for your area: A negative test is asked of everyone you admit"
    assert banner not in (await client.get("/web/staff")).text
    await health_rules.set_condition(
        world.db,
        "04000",
        "negative_test",
        reason="Brussels measure",
        actor=CLI,
        now=world.clock.now(),
    )  # the Brussels-Capital region's province code: Refuge Iris, not Refuge Nord (Mechelen)
    page = (await client.get("/web/staff")).text
    assert page.count(banner) == 1 and "(Brussels measure)" in page
    # the staff API says the same, for shelters' own systems
    api = await client.get("/staff/facilities", headers=bearer(str(w["staff"])))
    assert api.status_code == 200
    conditions = {fac["alias"]: fac["areaConditions"] for fac in api.json()}
    assert conditions["Refuge Nord"] == []
    (cond,) = conditions["Refuge Iris"]
    assert (cond["condition"], cond["reason"], cond["area"]["nis"]) == (
        "negative_test",
        "Brussels measure",
        "04000",
    )
    fid = next(fac["id"] for fac in api.json() if fac["alias"] == "Refuge Iris")
    one = await client.get(f"/staff/facilities/{fid}", headers=bearer(str(w["staff"])))
    assert one.json()["areaConditions"][0]["condition"] == "negative_test"
    await health_rules.remove_condition(
        world.db, "04000", "negative_test", actor=CLI, now=world.clock.now()
    )
    assert banner not in (await client.get("/web/staff")).text
    api = await client.get("/staff/facilities", headers=bearer(str(w["staff"])))
    assert all(fac["areaConditions"] == [] for fac in api.json())
    # a measure with an end says when it ends, in Belgian time
    from datetime import UTC, datetime

    await health_rules.set_condition(
        world.db,
        "04000",
        "negative_test",
        reason="Brussels measure",
        actor=CLI,
        now=world.clock.now(),
        until=datetime(world.clock.now().year, 12, 31, 22, 0, tzinfo=UTC),
    )
    page = (await client.get("/web/staff")).text
    assert page.count(banner) == 1 and "The measure ends on Thu 31 Dec, 23:00." in page


async def test_console_form_errors_are_shown_in_the_language(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    await post_form(client, "/web/console", "/web/lang", {"lang": "de", "next": "/web/console"})
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "avoid0": "Nirgendwo"}
    )
    assert r.status_code == 422 and "Unbekannte Gemeinde: Nirgendwo" in r.text
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "child0_age": "40"}
    )
    assert r.status_code == 422 and "Das Alter eines Kindes" in r.text


async def test_no_address_on_any_page_an_operator_can_reach(
    client: AsyncClient, world: World
) -> None:
    """The canary check over the pages: helpline and police walk every page they can reach
    (console, search results, hold page, release, error pages); the staff page shows no
    address either."""
    await world.operator("Refuges Secrets", "shelter_operator")
    needles: list[str] = []
    canary_pools = []
    for i, nis in enumerate(("21009", "21004", "62063")):
        addr, found = canary_address()
        needles += found
        view = await world.facility(
            "Refuges Secrets",
            f"Canary {i}",
            municipality=nis,
            address=addr,
            policy=seed_policy(),
            pools=[
                PoolCreate(label="Rooms", unit_kind="family_room", places_per_unit=4, units_total=2)
            ],
        )
        canary_pools.append(view.pools[0])
    await world.operator("Line", "helpline")
    await world.operator("Zone", "police")
    tokens = {
        "helpline": await world.token("Line", "helpline"),
        "police": await world.token("Zone", "police"),
        "staff": await world.token("Refuges Secrets", "staff"),
    }
    seen: list[str] = []

    def check(r: httpx.Response) -> None:
        blob = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
        seen.append(str(r.url))
        for needle in needles:
            assert needle not in blob, f"address on {r.request.method} {r.url}"

    for role in ("helpline", "police"):
        client.cookies.clear()
        check(await client.get("/web/sign-in"))
        check(await web_sign_in(client, tokens[role]))
        check(await client.get("/web/"))
        page = await client.get("/web/console")
        check(page)
        r = await client.post(
            "/web/console/search",
            data={**FAMILY_FORM, "avoid0": "", "csrf": csrf_of(page.text)},
        )
        check(r)
        assert "Canary" in r.text
        # the language switch that carries the form draws the results again (new route)
        switched = await client.post(
            "/web/console/lang",
            data={**FAMILY_FORM, "avoid0": "", "shown": "1", "lang": "nl",
                  "csrf": csrf_of(page.text)},
        )  # fmt: skip
        check(switched)
        assert switched.status_code == 200 and "Canary" in switched.text
        fields = hold_form(r.text)
        r = await client.post("/web/console/hold", data=fields)
        check(r)
        hold_url = r.headers["location"]
        check(await client.get(hold_url))
        check(await client.get("/web/console"))  # lists the held place
        check(await client.post(f"{hold_url}/extend", data={"csrf": fields["csrf"]}))
        check(await client.post(f"{hold_url}/release", data={"csrf": fields["csrf"]}))
        check(await client.get(hold_url))
        check(await client.get("/web/console/holds/ZZ-0000"))
        # a standing request: nothing fits a family of 7 (the wait form), then one that a
        # free room answers at once (the console lists the place held for it)
        page = await client.get("/web/console")
        big = {**FAMILY_FORM, "avoid0": "", **{f"child{i}_age": "5" for i in range(6)}}
        r = await client.post("/web/console/search", data={**big, "csrf": csrf_of(page.text)})
        check(r)
        wait = _form_fields(r.text, "/web/console/standing")
        check(await client.post("/web/console/standing", data=wait))
        fits = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
        wait |= {"search": msgspec.json.encode(fits).decode(), "idem": f"canary-{role}"}
        check(await client.post("/web/console/standing", data=wait))
        page = await client.get("/web/console")
        check(page)
        assert 'data-state="offered"' in page.text and 'data-state="waiting"' in page.text
        ref = re.search(r'id="standing-([^"]+)" data-state="waiting"', page.text)
        assert ref
        cancel = {"csrf": csrf_of(page.text)}
        check(await client.post(f"/web/console/standing/{ref.group(1)}/cancel", data=cancel))
        check(await client.get("/web/staff"))  # not their page
        for lang in ("nl", "de", "en"):
            check(await client.post("/web/lang", data={"csrf": fields["csrf"], "lang": lang}))
            check(await client.get("/web/console"))
    client.cookies.clear()
    await web_sign_in(client, tokens["staff"])
    check(await client.get("/web/staff"))
    # a household placed through Abri is in house: listed with "Departed", which is sent
    r = await client.post(
        "/holds",
        json={"poolRef": canary_pools[0].ref, "need": "ipv",
              "household": {"adults": [{"gender": "female"}]}},
        headers={**bearer(tokens["helpline"]), "Idempotency-Key": "canary-in-house"},
    )  # fmt: skip
    ref = r.json()["ref"]
    check(await client.post(f"/staff/holds/{ref}/arrived", headers=bearer(tokens["staff"])))
    page = await client.get("/web/staff")
    check(page)
    assert f'id="in-house-{ref}"' in page.text
    done = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)})
    check(done)
    check(await client.get(done.headers["location"]))
    check(await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)}))
    assert len(seen) > 30


def seed_policy() -> Any:
    from tests.browser.web_helpers import FAMILY_POLICY

    return FAMILY_POLICY


async def test_a_police_zone_console_starts_from_its_home_area(
    client: AsyncClient, world: World
) -> None:
    """R32 / R22: a police zone registered with its home municipality gets it as the preferred
    area of a new household (changeable), and a search with no area that finds nothing is
    still counted in the zone's area for the task force."""
    from sqlalchemy import select as sa_select

    from capacity.models import Operator, UnmetDemand

    w = await seed_world(world)
    await world.operator("Admin", "admin")
    admin = bearer(await world.token("Admin", "admin"))
    async with world.db.read() as s:
        zone_id = await s.scalar(sa_select(Operator.id).where(Operator.name == "Zone Ixelles"))
    r = await client.patch(
        f"/admin/operators/{zone_id}", headers=admin, json={"homeMunicipalityNis": "21009"}
    )
    assert r.status_code == 200 and r.json()["homeMunicipalityNis"] == "21009", r.text
    bad = await client.patch(
        f"/admin/operators/{zone_id}", headers=admin, json={"homeMunicipalityNis": "99999"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "homeMunicipalityNis"
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    page = await client.get("/web/console")
    assert re.search(r'id="preferred"[^>]*value="Ixelles / Elsene \(21009\)"', page.text)
    # A man alone finds nothing in these refuges (women only), with no area typed.
    nobody = {
        "adult0_gender": "male",
        "adult0_band": "25-64",
        "residence": "documented",
        "income": "yes",
        "need": "other",
        "nights": "1",
    }
    r = await post_form(client, "/web/console", "/web/console/search", nobody)
    assert r.status_code == 200 and "Options (0)" in r.text
    async with world.db.read() as s:
        (row,) = (await s.scalars(sa_select(UnmetDemand))).all()
    assert (row.arrondissement_nis, row.province_nis) == ("21000", "04000")
    # The helpline has no home area: its form starts empty.
    client.cookies.clear()
    await web_sign_in(client, str(w["helpline"]))
    page = await client.get("/web/console")
    assert re.search(r'id="preferred"[^>]*value=""', page.text)


def _form_fields(page: str, action: str) -> dict[str, str]:
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', page, re.S)
    assert form, f"no form posting to {action}"
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0))
    }
    return {**fields, "csrf": csrf_of(page)}


async def test_the_console_takes_a_household_as_large_as_the_api_does(
    client: AsyncClient, world: World
) -> None:
    """R24: the web console is the whole tool for a small police zone. A family of 4 adults and
    8 children (beyond the rows first shown) is searched as a whole, not cut to fit the form."""
    from placement.household import MAX_ADULTS, MAX_CHILDREN

    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    fresh = (await client.get("/web/console")).text
    assert (
        f'id="adult{MAX_ADULTS - 1}_gender"' in fresh
        and f'id="adult{MAX_ADULTS}_gender"' not in fresh
    )
    assert (
        f'id="child{MAX_CHILDREN - 1}_age"' in fresh
        and f'id="child{MAX_CHILDREN}_age"' not in fresh
    )
    assert '<details id="more-children">' in fresh  # closed while the extra rows are empty
    big = {**FAMILY_FORM}
    for i in range(1, 4):
        big |= {f"adult{i}_gender": "male" if i == 3 else "female", f"adult{i}_band": "25-64"}
    for i in range(8):
        big |= {f"child{i}_age": str(2 + i), f"child{i}_gender": "male"}
    r = await post_form(client, "/web/console", "/web/console/search", big)
    assert r.status_code == 200, r.text
    assert '<details id="more-children" open>' in r.text  # what was typed stays visible
    assert (
        'id="child7_age" name="child7_age" type="number" min="0" max="17" inputmode="numeric" value="9"'
        in r.text
    )
    # 12 people fit no family room of 4: nothing found, and the search kept for a wait in line
    # is the whole household
    search = msgspec.json.decode(_form_fields(r.text, "/web/console/standing")["search"])
    assert len(search["household"]["adults"]) == 4
    assert [c["age"] for c in search["household"]["children"]] == list(range(2, 10))


async def test_the_console_waits_in_line_and_shows_the_place_held_for_it(
    client: AsyncClient, world: World
) -> None:
    """R24 with #4's standing requests: a police zone using only the web pages finds nothing,
    leaves a standing request, and sees the place held for it when one frees up."""
    w = await seed_world(world)
    client.headers["Accept-Language"] = "en"
    helpline = bearer(str(w["helpline"]))
    one = {"adults": [{"gender": "female"}]}
    found = await client.post(
        "/placements/search", headers=helpline, json={"household": one, "need": "ipv"}
    )
    iris = next(o["poolRef"] for o in found.json()["options"] if o["alias"] == "Refuge Iris")
    taken = []
    for i in range(10):  # the helpline holds every free room of Refuge Iris
        r = await client.post(
            "/holds",
            headers={**helpline, "Idempotency-Key": f"fill-iris-{i}"},
            json={"poolRef": iris, "need": "ipv", "household": one},
        )
        if r.status_code == 409:
            break
        taken.append(r.json()["ref"])
    assert taken and r.status_code == 409

    await web_sign_in(client, str(w["police"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200 and "Refuge Iris" not in r.text  # full; Refuge Nord avoided
    wait = {**_form_fields(r.text, "/web/console/standing"), "hours": "4"}
    r = await client.post("/web/console/standing", data=wait)
    assert r.status_code == 303 and r.headers["location"] == "/web/console#standing"
    again = await client.post("/web/console/standing", data=wait)  # a double click
    assert again.status_code == 303
    mine = await client.get("/standing-requests/", headers=bearer(str(w["police"])))
    (req,) = mine.json()
    assert req["state"] == "waiting" and req["callback"] == "Ligne Ecoute, poste 12"
    assert 200 < req["minutesLeft"] <= 240
    console = (await client.get("/web/console")).text
    section = re.search(r'<section[^>]*id="standing".*?</section>', console, re.S)
    assert section and 'data-waiting="1"' in section.group(0)
    assert f'id="standing-{req["ref"]}" data-state="waiting"' in section.group(0)
    # another operator's console does not show it
    await web_sign_in(client, str(w["helpline"]))
    assert req["ref"] not in (await client.get("/web/console")).text

    # a room frees up: the standing request, oldest in line, gets it held
    r = await client.post(f"/holds/{taken[0]}/release", headers=helpline)
    assert r.status_code == 200, r.text
    await web_sign_in(client, str(w["police"]))
    console = (await client.get("/web/console")).text
    section = re.search(r'<section[^>]*id="standing".*?</section>', console, re.S)
    # it keeps looking while the place is held: the place may still decline it (then the
    # request is back in line, tests/integration/test_standing_back_in_line.py)
    assert section and 'data-waiting="1"' in section.group(0)
    assert f'id="standing-{req["ref"]}" data-state="offered"' in section.group(0)
    offered = re.search(r'href="/web/console/holds/([^"]+)" class="offered-hold"', section.group(0))
    assert offered and "Refuge Iris" in section.group(0)
    hold_page = await client.get(f"/web/console/holds/{offered.group(1)}")
    assert hold_page.status_code == 200 and 'data-state="held"' in hold_page.text
    held = await holds_service.get(
        world.db, offered.group(1), actor=Actor(operator_id=None, role="admin"), side="requester"
    )
    assert held.household is not None  # the search's household, as the operator typed it
    assert [c["age"] for c in held.household["children"]] == [4, 13]

    # an answered request cannot be cancelled: the page says so, nothing changes
    cancel = {"csrf": csrf_of(console)}
    r = await client.post(f"/web/console/standing/{req['ref']}/cancel", data=cancel)
    assert r.status_code == 409 and "This request has already been answered" in r.text
    assert f'id="standing-{req["ref"]}" data-state="offered"' in r.text
    # the form under the message is a new household's, with the console's defaults
    assert (
        f'name="avoid_km" type="number" min="0" max="50" inputmode="numeric" value="{DEFAULT_AVOID_KM}"'
        in r.text
    )
    episode = re.search(r'<input type="hidden" name="episode" value="([^"]*)">', r.text)
    assert episode and len(episode.group(1)) >= 8
    # a waiting one can
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    wait = {**_form_fields(r.text, "/web/console/standing"), "hours": "2"}
    assert (await client.post("/web/console/standing", data=wait)).status_code == 303
    mine = (
        await client.get("/standing-requests/?state=waiting", headers=bearer(str(w["police"])))
    ).json()
    (second,) = mine
    console = (await client.get("/web/console")).text
    r = await client.post(
        f"/web/console/standing/{second['ref']}/cancel", data={"csrf": csrf_of(console)}
    )
    assert r.status_code == 303
    console = (await client.get("/web/console")).text
    assert f'id="standing-{second["ref"]}" data-state="cancelled"' in console


async def test_the_standing_form_refuses_a_bad_wait(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    big = {**FAMILY_FORM, **{f"child{i}_age": "5" for i in range(6)}}
    r = await post_form(client, "/web/console", "/web/console/search", big)
    fields = _form_fields(r.text, "/web/console/standing")
    for bad in ({"hours": "0"}, {"hours": "73"}, {"search": "{}"}, {"idem": "x"}):
        r = await client.post("/web/console/standing", data={**fields, **bad})
        assert r.status_code == 422, bad
    mine = await client.get("/standing-requests/", headers=bearer(str(w["police"])))
    assert mine.json() == []


async def test_a_waiting_request_stays_listed_however_many_ended_since(
    client: AsyncClient, world: World
) -> None:
    """The console lists every standing request still waiting: an operator's call-takers share
    the list, and ten requests answered or cancelled since must not push one that still waits
    off the page (it could then be neither seen nor stopped)."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    big = {**FAMILY_FORM, **{f"child{i}_age": "5" for i in range(6)}}  # fits nowhere
    r = await post_form(client, "/web/console", "/web/console/search", big)
    fields = _form_fields(r.text, "/web/console/standing")
    first = await client.post("/web/console/standing", data={**fields, "hours": "72"})
    assert first.status_code == 303
    police = bearer(str(w["police"]))
    (oldest,) = (await client.get("/standing-requests/", headers=police)).json()
    for i in range(11):
        again = {**fields, "idem": f"another-wait-{i:02d}", "hours": "2"}
        assert (await client.post("/web/console/standing", data=again)).status_code == 303
    for later in (await client.get("/standing-requests/", headers=police)).json():
        if later["ref"] != oldest["ref"]:
            await client.post(f"/standing-requests/{later['ref']}/cancel", headers=police)
    console = (await client.get("/web/console")).text
    assert f'id="standing-{oldest["ref"]}" data-state="waiting"' in console
    assert console.count('data-state="cancelled"') == 10  # the closed ones: the latest ten


async def test_staff_see_their_schemes_dates(client: AsyncClient, world: World) -> None:
    """R07: a requisitioned place's staff see until when their scheme runs, and once it has
    ended (or before it starts) that searches no longer offer it, whatever its status says."""
    from datetime import timedelta

    from sqlalchemy import update

    from capacity.models import Facility

    w = await seed_world(world)
    iris, nord = w["ixl"].facility.id, w["sch"].facility.id  # type: ignore[attr-defined]
    now = world.clock.now()
    async with world.db.write() as s:
        await s.execute(
            update(Facility).where(Facility.id == iris).values(planned_end=now + timedelta(days=2))
        )
        await s.execute(
            update(Facility).where(Facility.id == nord).values(valid_from=now + timedelta(days=1))
        )
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = (await client.get("/web/staff")).text
    iris_p = re.search(rf'<p[^>]*id="scheme-{iris}">(.*?)</p>', page, re.S)
    nord_p = re.search(rf'<p[^>]*id="scheme-{nord}">(.*?)</p>', page, re.S)
    assert iris_p and iris_p.group(1).startswith("The scheme runs until ")
    assert nord_p and "no placements are offered here before then" in nord_p.group(1)
    world.clock.advance(days=3)
    await web_sign_in(client, str(w["staff"]))
    page = (await client.get("/web/staff")).text
    iris_p = re.search(rf'<p[^>]*id="scheme-{iris}">(.*?)</p>', page, re.S)
    assert iris_p and "no new placements are offered here" in iris_p.group(1)
    assert f'id="scheme-{nord}"' not in page  # started, no end: nothing to say


async def test_plus_is_disabled_when_every_place_is_already_free(
    client: AsyncClient, world: World
) -> None:
    """The '+' of a pool whose places in service are all free (or held) cannot be tapped: it
    could only answer an error."""
    w = await seed_world(world)
    empty = await world.facility(
        "Refuges Solidaires",
        "Refuge Vide",
        municipality="21009",
        pools=[PoolCreate(label="Beds", units_total=2)],
    )
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = (await client.get("/web/staff")).text
    pid = empty.pools[0].id
    card = re.search(rf'<article class="pool[^"]*" id="pool-{pid}".*?</article>', page, re.S)
    assert card, page
    plus = re.search(r"<button[^>]*One place more free[^>]*>", card.group(0))
    minus = re.search(r"<button[^>]*One place fewer free[^>]*>", card.group(0))
    assert plus and "disabled" in plus.group(0)
    assert minus and "disabled" not in minus.group(0)


async def test_an_extension_that_would_add_nothing_says_to_extend_later(
    client: AsyncClient, world: World
) -> None:
    """A police hold extended once runs to its 3-hour maximum: a second extension now would add
    nothing and is refused without being counted. The console says so ("extend it later"),
    not that the hold can never be extended again."""
    await world.operator("Refuges", "shelter_operator")
    await world.facility(
        "Refuges",
        "Family House",
        municipality="21009",
        policy=seed_policy(),
        pools=[
            PoolCreate(label="Rooms", unit_kind="family_room", places_per_unit=4, units_total=2)
        ],
        intake_phone_24h=False,  # R21: the hold page says so
    )
    await world.operator("Zone", "police")
    await web_sign_in(client, await world.token("Zone", "police"))
    page = await client.get("/web/console")
    r = await client.post(
        "/web/console/search", data={**FAMILY_FORM, "avoid0": "", "csrf": csrf_of(page.text)}
    )
    fields = hold_form(r.text)
    hold_url = (await client.post("/web/console/hold", data=fields)).headers["location"]
    await client.post("/web/lang", data={"csrf": fields["csrf"], "lang": "en"})
    page = await client.get(hold_url)
    assert re.search(r'id="phone-hours">\(office hours only\)', page.text), page.text
    r = await client.post(f"{hold_url}/extend", data={"csrf": fields["csrf"]})
    assert "already runs as long" not in r.text and "cannot be extended" not in r.text
    r = await client.post(f"{hold_url}/extend", data={"csrf": fields["csrf"]})
    assert "Extend it later, when its deadline is nearer." in r.text
    assert "cannot be extended any further" not in r.text
    await client.post("/web/lang", data={"csrf": fields["csrf"], "lang": "fr"})
    r = await client.post(f"{hold_url}/extend", data={"csrf": fields["csrf"]})
    assert "Prolongez-la plus tard" in r.text


async def test_the_console_points_out_a_preferred_area_inside_an_area_to_avoid(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "preferred": "Mechelen"}
    )
    assert r.status_code == 200, r.text
    notice = re.search(r'id="search-notice">([^<]*)<', r.text)
    assert notice and "The preferred area lies in an area to avoid" in notice.group(1)
    assert "Refuge Iris" in r.text  # the search still ran
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "preferred": "Ixelles"}
    )
    assert 'id="search-notice"' not in r.text


async def test_the_console_takes_places_as_an_officer_types_them(
    client: AsyncClient, world: World
) -> None:
    """No hyphens ("Sint Jans Molenbeek"), a straight apostrophe, or a municipality's name from
    before the 2025 mergers ("Borsbeek", now part of Antwerpen; "Meulebeke", now Tielt): each
    is the place meant, never "Unknown municipality"."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    for preferred, avoid in (
        ("Borsbeek", "Antwerpen"),
        ("Sint Jans Molenbeek", "Molenbeek-Saint-Jean"),
        ("Braine l'Alleud", "Eigenbrakel"),
        ("Meulebeke", "Tielt"),
    ):
        r = await post_form(
            client,
            "/web/console",
            "/web/console/search",
            {**FAMILY_FORM, "preferred": preferred, "avoid0": avoid},
        )
        assert r.status_code == 200, (preferred, r.text)
        notice = re.search(r'id="search-notice">([^<]*)<', r.text)
        assert notice and "The preferred area lies in an area to avoid" in notice.group(1)


async def test_the_console_asks_which_saint_nicolas(client: AsyncClient, world: World) -> None:
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "avoid0": "Saint-Nicolas"}
    )
    assert r.status_code == 422 and "Several municipalities match" in html.unescape(r.text)
    r = await post_form(
        client,
        "/web/console",
        "/web/console/search",
        {**FAMILY_FORM, "avoid0": "Saint-Nicolas (62093)"},
    )
    assert r.status_code == 200, r.text


async def test_a_name_found_only_inside_another_is_never_silently_that_town(
    client: AsyncClient, world: World
) -> None:
    """ "Berchem" is a district of Antwerpen: the console took it for Sint-Agatha-Berchem in
    Brussels (the only name it is found in) and kept away from the wrong city, with the field
    still reading "Berchem". Such a name is now a question; the start of a name ("Comines")
    or a postal code still resolves; and after a search each area field shows the
    municipality it was taken for."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    for typed, meant in (("Berchem", "21003"), ("Heverlee", "24086"), ("Comines", "57097")):
        r = await post_form(
            client, "/web/console", "/web/console/search", {**FAMILY_FORM, "avoid0": typed}
        )
        text = html.unescape(r.text)
        assert r.status_code == 422 and f"No municipality is called {typed}" in text
        assert f"({meant})" in text
    client.headers["Accept-Language"] = "nl"
    r = await post_form(
        client,
        "/web/console",
        "/web/console/search",
        {
            **FAMILY_FORM,
            "avoid0": "Comines-Warneton",
            "avoid1": "9090",
            "preferred": "Borsbeek",
        },
    )
    assert r.status_code == 200, r.text
    text = html.unescape(r.text)
    assert re.search(r'id="avoid0"[^>]*value="Komen-Waasten \(57097\)"', text)
    assert re.search(r'id="avoid1"[^>]*value="Merelbeke-Melle \(44088\)"', text)
    assert re.search(r'id="preferred"[^>]*value="Antwerpen \(11002\)"', text)
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "avoid0": "Berchem"}
    )
    assert "Geen gemeente heet Berchem" in html.unescape(r.text)


@pytest.mark.parametrize("typed", ["²", "9" * 5000])
async def test_a_number_that_is_not_plain_digits_is_a_form_error_not_a_500(
    client: AsyncClient, world: World, typed: str
) -> None:
    """``str.isdigit()`` accepts a superscript ² (a phone keyboard offers it) and ``int()`` then
    refuses it; ``int()`` also refuses more than 4300 digits. Either was an internal error (a
    JSON page) on the console, the dashboard and the staff API, instead of a clear message."""
    w = await seed_world(world)
    await world.operator("Task Force", "taskforce")
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "nights": typed}
    )
    assert r.status_code == 422 and "text/html" in r.headers["content-type"], r.text[:200]
    assert "Nights: a whole number from 1 to 365." in r.text
    r = await post_form(
        client, "/web/console", "/web/console/search", {**FAMILY_FORM, "child0_age": typed}
    )
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    client.cookies.clear()
    await web_sign_in(client, await world.token("Task Force", "taskforce"))
    r = await client.get("/web/taskforce", params={"days": typed})
    assert r.status_code == 200
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    r = await client.put(
        f"/staff/pools/{pool.id}/availability",
        json={"unitsTotal": 3, "unitsOccupied": 1},
        headers={**bearer(str(w["staff"])), "If-Match": f'"{typed}"'.encode("latin-1")},
    )
    assert r.status_code == 422 and r.json()["field"] == "If-Match"


async def test_the_console_lists_only_the_relaxations_that_would_help(
    client: AsyncClient, world: World
) -> None:
    """A man: Refuge Iris takes women only, Refuge Nord too and lies in the area to avoid.
    Dropping the area to avoid alone opens nothing (Nord still takes women only): the console
    used to say "0 more option(s) if the areas to avoid were dropped" beside "2 places do not
    take this gender", which reads as a contradiction. The API keeps every count."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    form = {**FAMILY_FORM, "adult0_gender": "male"}
    r = await post_form(client, "/web/console", "/web/console/search", form)
    assert r.status_code == 200, r.text
    text = " ".join(r.text.split())  # the page is in French (the default)
    assert "1 possibilité(s) de plus si : les lieux pour d&#39;autres genres" in text, text
    assert "0 possibilité(s)" not in text
    # the current language's button keeps its own attributes (they once ran together)
    assert re.search(r'formnovalidate\s+aria-current="true"', text), text[:2000]
    api = await client.post(
        "/placements/search",
        headers=bearer(str(w["police"])),
        json={
            "household": {"adults": [{"gender": "male", "ageBand": "25-64"}]},
            "need": "ipv",
            "avoid": {"municipalities": ["12025"]},
        },
    )
    assert api.status_code == 200, api.text
    codes = {a["code"]: a["extraOptions"] for a in api.json()["alternatives"]}
    assert codes.get("avoid_area") == 0 and codes.get("gender_not_accepted") == 1, codes


async def test_pages_name_their_icon_and_it_is_served(client: AsyncClient) -> None:
    """Without one, every page's browser asked for /favicon.ico and logged its 404."""
    page = await client.get("/web/sign-in")
    assert '<link rel="icon" href="/static/web/favicon.svg"' in page.text
    r = await client.get("/static/web/favicon.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")


async def test_the_decline_reason_field_warns_that_the_requester_reads_it_and_names_no_one(
    client: AsyncClient, world: World
) -> None:
    """A decline reason is free text that the requester (police, helpline) reads and Abri
    keeps for ABRI_RETENTION_DAYS: the staff page says so, and asks for no name or contact of
    the person, as the status reason's field says who reads it."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    hold_url = (await client.post("/web/console/hold", data=hold_form(r.text))).headers["location"]
    ref = hold_url.rsplit("/", 1)[1]
    await web_sign_in(client, str(w["staff"]))
    page = (await client.get("/web/staff")).text
    field = re.search(rf'<input id="reason-{ref}"[^>]*>', page)
    assert field and f'aria-describedby="reason-hint-{ref}"' in field.group(0)
    hint = re.search(rf'<p class="hint" id="reason-hint-{ref}">(.*?)</p>', page, re.S)
    assert hint, "no hint under the decline reason"
    # the staff page of the seeded operator is in French
    assert "nom" in hint.group(1) and "police" in hint.group(1), hint.group(1)
    # and the API says as much to a shelter's or a dispatch system's developers
    spec = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    decline = spec["HoldDecline"]["properties"]["reason"]["description"]
    assert "no name" in decline and "requester" in decline
    for schema in ("HoldCreate", "StandingCreate"):
        callback = spec[schema]["properties"]["callback"]
        text = callback.get("description") or callback["anyOf"][0]["description"]
        assert "never the person's name" in text, schema


def _visible(page: str) -> str:
    """A page's text as a browser lays it out: inline tags join their neighbours, blocks and
    line breaks separate."""
    body = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    body = re.sub(r"</?(?:strong|span|a|em|time|b)\b[^>]*>", "", body)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.parametrize(
    ("lang", "stale", "children", "pet"),
    [
        (
            "nl",
            "3 dagen geleden bijgewerkt verouderd",
            "(25-64) · Kinderen (leeftijden): 4",
            "Rolstoeltoegankelijk · Met een huisdier",
        ),
        (
            "de",
            "vor 3 Tagen aktualisiert veraltet",
            "(25-64) · Kinder (Alter): 4",
            "Rollstuhlgerecht · Mit Haustier",
        ),
        ("fr", "il y a 3 jours à mettre à jour", "(25-64) · Enfants", "roulant · Avec un animal"),
    ],
)
async def test_staff_page_words_do_not_run_together(
    client: AsyncClient, world: World, lang: str, stale: str, children: str, pet: str
) -> None:
    """The staff page drew "updated 4320 min agoout of date" ("aktualisiertveraltet"), "(25-64)·
    Children" and "Wheelchair access· With a pet": the templates' line breaks were trimmed
    away with the tags, so words and separators touched."""
    from datetime import timedelta

    from sqlalchemy import update

    from capacity.models import Pool
    from placement.policy import AccessPolicy

    w = await seed_world(world)
    await world.facility(
        "Refuges Solidaires",
        "Refuge Patte",
        municipality="21009",
        policy=AccessPolicy(genders=["female"], wheelchair_accessible=True, accepts_pets=True),
        pools=[PoolCreate(label="Rooms", unit_kind="room", places_per_unit=2, units_total=2)],
    )
    police = bearer(str(w["police"]))
    household = {
        "adults": [{"gender": "female", "ageBand": "25-64"}],
        "children": [{"age": 4}],
        "wheelchair": True,
        "pets": True,
    }
    found = await client.post(
        "/placements/search", headers=police, json={"household": household, "need": "ipv"}
    )
    assert found.status_code == 200, found.text
    ref = next(o["poolRef"] for o in found.json()["options"] if o["alias"] == "Refuge Patte")
    hold = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "staff-words-1"},
        json={"poolRef": ref, "need": "ipv", "household": household},
    )
    assert hold.status_code == 201, hold.text
    long_ago = world.clock.now() - timedelta(days=3)
    async with world.db.write() as s:
        await s.execute(
            update(Pool)
            .where(Pool.id == w["sch"].pools[0].id)  # type: ignore[attr-defined]
            .values(reported_at=long_ago, confirmed_at=long_ago)
        )
    client.headers["Accept-Language"] = lang
    await web_sign_in(client, str(w["staff"]))
    text = _visible((await client.get("/web/staff")).text)
    assert stale in text, text
    assert children in text, text
    assert pet in text, text


@pytest.mark.parametrize(
    ("lang", "title"),
    [("nl", "Pagina niet gevonden"), ("de", "Seite nicht gefunden"), ("fr", "Page introuvable")],
)
async def test_a_web_address_that_answers_no_page_is_a_page_in_the_users_language(
    client: AsyncClient, world: World, lang: str, title: str
) -> None:
    """The address bar after a search reads /web/console/search (after a saved count
    /web/staff/pools/7): a tablet that restores the tab, a bookmark or a shared address opens
    it with GET, and a mistyped address under /web/ likewise. Both answered the API's JSON
    problem in English ({"title":"Method not allowed"...}). A GET of a form's address now
    goes to the page that form is on, and an unknown page is a page in the user's language."""
    w = await seed_world(world)
    client.headers["Accept-Language"] = lang
    await web_sign_in(client, str(w["police"]))
    r = await client.get("/web/console/search")
    assert r.status_code == 303 and r.headers["location"] == "/web/console"
    r = await client.get("/web/console/holds/ABCD-EFGH/extend")
    assert r.status_code == 303 and r.headers["location"] == "/web/console/holds/ABCD-EFGH"
    r = await client.get("/web/staff/pools/7")
    assert r.status_code == 303 and r.headers["location"] == "/web/staff"
    r = await client.get("/web/link/arrived")
    assert r.status_code == 303 and r.headers["location"] == "/web/link"
    r = await client.get("/web/consol")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert f'<html lang="{lang}">' in r.text and title in r.text
    assert r.headers["content-security-policy"] == CSP
    # the API keeps its problems
    r = await client.get("/placements/nope", headers=bearer(str(w["police"])))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_console_says_before_the_hold_that_an_intake_phone_answers_in_office_hours(
    client: AsyncClient, world: World
) -> None:
    """A CPAS place's intake phone answers in office hours only: the hold page said so, the
    results did not. A police officer holding it at 23:55 learnt it only once held, when a
    place with a phone answered at night might have been the better choice."""
    from datetime import timedelta

    from sqlalchemy import update

    from capacity.models import Facility

    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "fr"
    said = "Téléphone d&#39;accueil\u202f: heures de bureau uniquement"
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200 and "Refuge Iris" in r.text and said not in r.text
    async with world.db.write() as s:
        await s.execute(
            update(Facility)
            .where(Facility.alias == "Refuge Iris")
            .values(intake_phone_24h=False, updated_at=world.clock.now() + timedelta(seconds=1))
        )  # as an admin's edit does (the search index follows `updated_at`)
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200 and r.text.count(said) == 1, r.text


async def test_the_console_says_which_household_each_held_place_is_for(
    client: AsyncClient, world: World
) -> None:
    """An operator holding places for two households saw two codes and two refuges in
    "Places you are holding", nothing to tell which was whose: each now shows the
    household's composition (as typed; never a name)."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert r.status_code == 200, r.text
    r = await client.post("/web/console/hold", data=hold_form(r.text))
    assert r.status_code == 303, r.text
    ref = r.headers["location"].rsplit("/", 1)[1]
    page = _visible((await client.get("/web/console")).text)
    assert f"{ref} · Refuge Iris · Adults: Woman (25-64), Children (ages): 4, 13 ·" in page, page


@pytest.mark.parametrize(("lang", "said"), [("fr", "Temps restant\u202f:"), ("en", "Time left:")])
async def test_the_hold_page_time_left_takes_the_languages_colon(
    client: AsyncClient, world: World, lang: str, said: str
) -> None:
    """The colon pass ("Adultes : …") left the hold page's countdown label with a bare colon:
    a French page read "État : Réservée" above "Temps restant: 89:59"."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = lang
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    hold_url = (await client.post("/web/console/hold", data=hold_form(r.text))).headers["location"]
    page = (await client.get(hold_url)).text
    countdown = re.search(r'<p class="countdown">(.*?)</p>', page, re.S)
    assert countdown and said in html.unescape(countdown.group(1)), countdown
    if lang == "fr":  # every label of the page, the same way
        assert re.search(r"\w:\s", html.unescape(re.sub(r"<[^>]+>", "", page))) is None


async def test_the_console_tells_apart_two_single_adults_it_holds_for(
    client: AsyncClient, world: World
) -> None:
    """A helpline operator on three calls at once held a place for a homeless man and one for
    a woman in a wheelchair with her dog: "Places you are holding" said "Adults: 1" beside
    both codes, so the code read out to the caller on the line could be the other one's. Each
    hold now says who (the adults' gender and age band, a wheelchair, a pet), and so does the
    hold's own page, from which the code is read out."""
    from placement.policy import AccessPolicy

    w = await seed_world(world)
    await world.facility(
        "Refuges Solidaires",
        "Hotel Accueil",
        municipality="21009",
        kind="crisis_hotel",
        policy=AccessPolicy(
            accepts_undocumented=True,
            wheelchair_accessible=True,
            accepts_pets=True,
            languages=["fr", "nl"],
        ),
        pools=[PoolCreate(label="Rooms", unit_kind="room", places_per_unit=2, units_total=4)],
    )
    await web_sign_in(client, str(w["helpline"]))
    client.headers["Accept-Language"] = "en"
    single = {"adult0_band": "25-64", "need": "homelessness", "nights": "1", "languages": "fr"}
    man = {**single, "adult0_gender": "male"}
    woman = {**single, "adult0_gender": "female", "wheelchair": "1", "pets": "1"}
    refs = {}
    for who, form in (("man", man), ("woman", woman)):
        r = await post_form(client, "/web/console", "/web/console/search", form)
        assert r.status_code == 200 and "Hotel Accueil" in r.text, r.text
        r = await client.post("/web/console/hold", data=hold_form(r.text))
        assert r.status_code == 303, r.text
        refs[who] = r.headers["location"].rsplit("/", 1)[1]
    page = _visible((await client.get("/web/console")).text)
    assert f"{refs['man']} · Hotel Accueil · Adults: Man (25-64) ·" in page, page
    assert (
        f"{refs['woman']} · Hotel Accueil · Adults: Woman (25-64), Wheelchair access, With a pet ·"
        in page
    ), page
    hold_page = _visible((await client.get(f"/web/console/holds/{refs['woman']}")).text)
    assert "Adults: Woman (25-64), Wheelchair access, With a pet" in hold_page, hold_page


async def test_the_console_tells_apart_two_households_waiting_for_a_place(
    client: AsyncClient, world: World
) -> None:
    """Nothing fitted a homeless man nor a woman in a wheelchair with her dog, and the operator
    on both calls left each waiting in line: "Waiting for a place" showed two codes, each
    "Homelessness · Waiting", nothing to tell whose was whose, so "Stop waiting" for the one
    who found a bed with family could take the other out of the line. Each waiting request
    now says who it is for, as a hold does."""
    w = await seed_world(world)  # women-only refuges, no wheelchair access: neither fits
    await web_sign_in(client, str(w["helpline"]))
    client.headers["Accept-Language"] = "en"
    single = {"adult0_band": "25-64", "need": "homelessness", "nights": "1", "languages": "fr"}
    man = {**single, "adult0_gender": "male"}
    woman = {**single, "adult0_gender": "female", "wheelchair": "1", "pets": "1"}
    refs = {}
    for who, form in (("man", man), ("woman", woman)):
        r = await post_form(client, "/web/console", "/web/console/search", form)
        assert r.status_code == 200, r.text
        wait = _form_fields(r.text, "/web/console/standing")
        assert (await client.post("/web/console/standing", data=wait)).status_code == 303
        mine = await client.get(
            "/standing-requests/?state=waiting", headers=bearer(str(w["helpline"]))
        )
        refs[who] = next(x["ref"] for x in mine.json() if x["ref"] not in refs.values())
    page = _visible((await client.get("/web/console")).text)
    assert f"{refs['man']} · Homelessness · Adults: Man (25-64) · Waiting" in page, page
    assert (
        f"{refs['woman']} · Homelessness · Adults: Woman (25-64), Wheelchair access, "
        "With a pet · Waiting" in page
    ), page


async def test_stop_waiting_keeps_the_household_being_typed(
    client: AsyncClient, world: World
) -> None:
    """An operator typing the next caller's household pressed "Stop waiting" for an earlier
    caller's request in the list above: the console came back as a new household's, empty,
    with a new episode token, and what was typed (the areas to avoid among it) was gone. The
    button sends the form along, and the console comes back with it as typed, whether the
    request stopped or had been answered meanwhile."""
    w = await seed_world(world)  # women-only refuges: nothing fits a man
    await web_sign_in(client, str(w["helpline"]))
    client.headers["Accept-Language"] = "en"
    man = {"adult0_gender": "male", "adult0_band": "25-64", "need": "homelessness"}
    r = await post_form(client, "/web/console", "/web/console/search", man)
    wait = _form_fields(r.text, "/web/console/standing")
    assert (await client.post("/web/console/standing", data=wait)).status_code == 303
    console = (await client.get("/web/console")).text
    ref = re.search(r'id="standing-([^"]+)" data-state="waiting"', console)
    assert ref
    button = re.search(
        rf'<button type="submit" form="search-form" formaction="/web/console/standing/'
        rf'{ref.group(1)}/cancel" formnovalidate',
        console,
    )
    assert button, console  # the button sends the search form (what is being typed) along
    episode = re.search(r'name="episode" value="([^"]+)"', console)
    assert episode
    typed = {**FAMILY_FORM, "episode": episode.group(1), "csrf": csrf_of(console)}
    for status in (200, 409):  # stopped; then, sent again, already answered
        r = await client.post(f"/web/console/standing/{ref.group(1)}/cancel", data=typed)
        assert r.status_code == status, r.text
        assert f'name="episode" value="{episode.group(1)}"' in r.text
        assert 'value="Mechelen' in r.text and 'value="Ligne Ecoute, poste 12"' in r.text
        assert f'id="standing-{ref.group(1)}" data-state="cancelled"' in r.text
