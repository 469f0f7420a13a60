"""Web forms sent as no page of ours would send them (a field edited in the browser's tools, a
text pasted with a control character, a form sent again after its hold changed): a page that
says why, in the user's language, with a 4xx status, and nothing written."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from capacity.models import Hold, StaffLink, StandingRequest
from tests.browser.web_helpers import csrf_of, post_form, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_web_pages import FAMILY_FORM, hold_form


async def _count(world: World, model: Any) -> int:
    async with world.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_nul_character_in_a_form_is_refused_with_a_page_and_nothing_saved(
    client: AsyncClient, world: World
) -> None:
    """A NUL (U+0000) pasted into a text field: PostgreSQL cannot store it in a text, so the
    link, the status and the hold below were an internal error (the API's problem, in English)
    there, and stored as typed on SQLite. Now both refuse it with a page, nothing saved."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id
    await web_sign_in(client, str(w["staff"]))
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/links",
        {"label": "Night\x00shift", "hours": "12", "nonce": "n" * 20},
    )  # fmt: skip
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), r.text
    assert "Veuillez vérifier le formulaire." in r.text  # French by default
    assert await _count(world, StaffLink) == 0
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status",
        {"status": "reduced", "reason": "Water\x00damage"},
    )  # fmt: skip
    assert r.status_code == 422, r.text
    api = await client.get(f"/staff/facilities/{fid}", headers=bearer(str(w["staff"])))
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None

    await web_sign_in(client, str(w["helpline"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    fields = {**hold_form(r.text), "callback": "Desk 12\x00"}
    r = await client.post("/web/console/hold", data=fields)
    assert r.status_code == 422 and "Veuillez vérifier le formulaire." in r.text
    assert await _count(world, Hold) == 0


async def test_a_hold_form_with_a_need_no_page_offers_is_refused(
    client: AsyncClient, world: World
) -> None:
    """The results page's hidden ``need`` edited: the hold was taken with whatever it said (a
    100 KB text stored as the need, counted so in the task force's figures). The API takes
    only its needs; so does the page now."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["helpline"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    fields = hold_form(r.text)
    for need in ("9" * 100_000, "<b>ipv</b>", "IPV"):
        r = await client.post("/web/console/hold", data={**fields, "need": need})
        assert r.status_code == 422, r.text[:300]
        assert "Veuillez vérifier le formulaire." in r.text
    assert await _count(world, Hold) == 0
    r = await client.post("/web/console/hold", data=fields)  # as the page sent it: held
    assert r.status_code == 303 and await _count(world, Hold) == 1


async def test_a_refused_release_or_extension_answers_with_its_status(
    client: AsyncClient, world: World
) -> None:
    """Releasing or extending a hold that has already changed (a second tab, a colleague) drew
    the hold's page with the refusal but status 200, as if it had worked."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    hold_url = (await client.post("/web/console/hold", data=hold_form(r.text))).headers["location"]
    csrf = csrf_of((await client.get(hold_url)).text)
    r = await client.post(f"{hold_url}/release", data={"csrf": csrf})
    assert r.status_code == 303
    for action in ("release", "extend"):
        r = await client.post(f"{hold_url}/{action}", data={"csrf": csrf})
        assert r.status_code == 409, (action, r.status_code)
        assert "Cette réservation a déjà changé" in r.text


async def test_a_form_sent_where_no_form_is_answers_with_a_page(
    client: AsyncClient, world: World
) -> None:
    """A form sent to an address with no such form (a page left open across an upgrade), with
    another method than the form's, or naming an id beyond any the database holds: the
    API's problem in English (JSON) came back; now a page in the user's language."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["staff"]))
    csrf = csrf_of((await client.get("/web/staff")).text)
    pool = w["ixl"].pools[0].id
    sent = (
        ("POST", "/web/staff/no-such-form", {"csrf": csrf}, 404),
        ("PUT", f"/web/staff/pools/{pool}", {"csrf": csrf, "version": "1", "free": "0"}, 405),
        ("DELETE", f"/web/staff/pools/{pool}", None, 405),
        ("POST", "/web/staff/pools/99999999999999999999", {"csrf": csrf, "version": "1"}, 404),
        ("POST", "/web/staff/links/99999999999999999999/revoke", {"csrf": csrf}, 404),
    )
    for method, url, data, status in sent:
        r = await client.request(method, url, data=data)
        assert r.status_code == status, (method, url, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), (method, url)
        assert "Page introuvable" in r.text, (method, url)
    api = await client.get(f"/staff/pools/{pool}", headers=bearer(str(w["staff"])))
    assert api.json()["version"] == 1  # nothing written
    # the API keeps its problems
    r = await client.put("/staff/pools/99999999999999999999/availability", json={})
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_nul_character_sent_to_the_api_is_refused_not_an_internal_error(
    client: AsyncClient, world: World
) -> None:
    """The API took a ``\\u0000`` in a text (a status reason, a link's label) as far as
    PostgreSQL, which cannot store it: a 500 "internal error". Now a 422, nothing saved.
    (Both databases alike: tests/integration/test_api_odd_text.py.)"""
    w = await seed_world(world)
    fid = w["ixl"].facility.id
    staff = bearer(str(w["staff"]))
    r = await client.put(
        f"/staff/facilities/{fid}/status",
        json={"status": "reduced", "reason": "Water\u0000damage"},
        headers=staff,
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid-input", r.text
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None


async def test_a_text_over_its_limit_is_refused_with_a_page_not_cut(
    client: AsyncClient, world: World
) -> None:
    """A status reason, a hold's callback, a standing request's callback or a decline's
    reason longer than its field (a script filling the form, a browser without maxlength) was
    stored cut at 500 or 200 characters without a word, and a status reason the API takes
    whole (up to 2000) was cut at 500 by the page. Now the page takes what the API takes and
    says when a text is too long, nothing written."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    assert f'id="status-reason-{fid}" name="reason" maxlength="2000"' in page.text
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status",
        {"status": "reduced", "reason": "R" * 2001},
    )  # fmt: skip
    assert r.status_code == 422, r.text[:300]
    assert "Le motif est trop long : 2000 caractères au maximum." in r.text
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status",
        {"status": "reduced", "reason": "R" * 2000},
    )  # fmt: skip
    assert r.status_code == 303, r.text[:300]
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["statusReason"] == "R" * 2000  # whole, as the API would keep it
    await post_form(client, "/web/staff", f"/web/staff/facilities/{fid}/status", {"status": "open"})

    await web_sign_in(client, str(w["helpline"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    fields = hold_form(r.text)
    r = await client.post("/web/console/hold", data={**fields, "callback": "C" * 201})
    assert r.status_code == 422, r.text[:300]
    assert "Le contact pour le lieu d&#39;accueil est trop long : 200 caractères au maximum." in (
        r.text
    )
    assert await _count(world, Hold) == 0
    search = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
    page = await client.get("/web/console")
    r = await client.post(
        "/web/console/standing",
        data={
            "csrf": csrf_of(page.text),
            "search": json.dumps(search),
            "hours": "2",
            "idem": "web-standing-too-long-1",
            "callback": "C" * 201,
        },
    )
    assert r.status_code == 422 and "200 caractères au maximum" in r.text, r.text[:300]
    assert await _count(world, StandingRequest) == 0
    r = await client.post("/web/console/hold", data={**fields, "callback": "C" * 200})
    assert r.status_code == 303 and await _count(world, Hold) == 1

    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    ref = re.search(r'action="/web/staff/holds/([^/"]+)/decline"', page.text)
    assert ref, page.text
    r = await client.post(
        f"/web/staff/holds/{ref.group(1)}/decline",
        data={"csrf": csrf_of(page.text), "reason": "D" * 501},
    )
    assert r.status_code == 422, r.text[:300]
    assert "Le motif est trop long : 500 caractères au maximum." in r.text
    async with world.db.read() as s:
        assert await s.scalar(select(Hold.state)) == "held"


async def test_a_control_or_bidi_character_in_a_form_is_refused_like_the_api_does(
    client: AsyncClient, world: World
) -> None:
    """A bidi override (U+202E) pasted with a callback number, an escape in a link's label, a
    C1 control in a status reason: stored as typed, and shown to the next reader (the number
    backwards). The forms now refuse what the API refuses (``capacity.text``), with a page,
    nothing saved; a status reason keeps its line breaks."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id
    staff = bearer(str(w["staff"]))
    await web_sign_in(client, str(w["staff"]))
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/links",
        {"label": "Night\x1bshift", "hours": "12", "nonce": "n" * 20},
    )  # fmt: skip
    assert r.status_code == 422 and "Veuillez vérifier le formulaire." in r.text, r.text[:300]
    assert await _count(world, StaffLink) == 0
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status",
        {"status": "reduced", "reason": "Water\x85damage"},
    )  # fmt: skip
    assert r.status_code == 422, r.text[:300]
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open" and api.json()["statusReason"] is None
    r = await post_form(
        client, "/web/staff", f"/web/staff/facilities/{fid}/status",
        {"status": "reduced", "reason": "Water damage\r\nfirst floor"},
    )  # fmt: skip
    assert r.status_code == 303, r.text[:300]

    await web_sign_in(client, str(w["helpline"]))
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    for callback in ("+32 475\u202e 12 34 56", "+32 475\u200b12 34 56"):
        fields = {**hold_form(r.text), "callback": callback}
        refused = await client.post("/web/console/hold", data=fields)
        assert refused.status_code == 422 and "Veuillez vérifier le formulaire." in refused.text
    assert await _count(world, Hold) == 0
