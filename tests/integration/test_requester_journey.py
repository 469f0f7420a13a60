"""A police officer's or helpline operator's night on the web console, step by step: what
they see when a step fails, when they switch language on a results page, and what the hold
page tells them (its deadline on the wall clock, a countdown a screen reader can live with)."""

from __future__ import annotations

import html
import re
from typing import Any

from httpx import AsyncClient

from placement import holds_service, standing_service
from placement.household import Adult, Household, SearchRequest
from tests.browser.web_helpers import csrf_of, post_form, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_web_pages import FAMILY_FORM, hold_form


def _field(page: str, name: str) -> str | None:
    """The value of the input ``name`` in the search form of a console page."""
    form = re.search(r'<form method="post" action="/web/console/search".*?</form>', page, re.S)
    assert form, "no search form on the page"
    m = re.search(rf'name="{name}"[^>]*value="([^"]*)"', form.group(0))
    return html.unescape(m.group(1)) if m else None


async def _fill(client: AsyncClient, token: str, alias: str) -> None:
    """Another requester holds every free unit of ``alias`` (the race an officer loses)."""
    one = {"adults": [{"gender": "female"}]}
    found = await client.post(
        "/placements/search", headers=bearer(token), json={"household": one, "need": "ipv"}
    )
    ref = next(o["poolRef"] for o in found.json()["options"] if o["alias"] == alias)
    for i in range(20):
        r = await client.post(
            "/holds",
            headers={**bearer(token), "Idempotency-Key": f"fill-{alias[-4:]}-{i:02d}"},
            json={"poolRef": ref, "need": "ipv", "household": one},
        )
        if r.status_code == 409:
            return
        assert r.status_code == 201, r.text
    raise AssertionError("never full")


async def test_a_hold_lost_to_someone_else_keeps_the_typed_household(
    client: AsyncClient, world: World
) -> None:
    """At 2 a.m. the place goes between the search and "Hold this place" (409). The console
    says so and asks to search again, so the household as typed must still be in the form:
    children's ages, the areas to avoid, the callback, the episode token. An empty form makes
    the officer retype it all, and an area to avoid forgotten in the retyping is a safety
    risk (R17); a new episode token counts the household twice (R33)."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    page = (await client.get("/web/console")).text
    episode = _field(page, "episode")
    typed = {**FAMILY_FORM, "avoid_km": "0", "episode": episode or "", "preferred": "Ixelles"}
    r = await post_form(client, "/web/console", "/web/console/search", typed)
    assert r.status_code == 200 and "Refuge Iris" in r.text
    fields = hold_form(r.text)

    await _fill(client, str(w["helpline"]), "Refuge Iris")
    r = await client.post("/web/console/hold", data=fields)
    assert r.status_code == 409 and "This place was just taken" in r.text
    # kept as the search understood it (the console shows the municipality it was taken for)
    assert _field(r.text, "avoid0") == "Mechelen (12025)", "the area to avoid was dropped"
    assert _field(r.text, "avoid_km") == "0"
    assert _field(r.text, "child0_age") == "4" and _field(r.text, "child1_age") == "13"
    assert _field(r.text, "callback") == "Ligne Ecoute, poste 12"
    assert _field(r.text, "episode") == episode, "a new episode token: counted twice"
    assert re.search(r'<option value="undocumented" selected>', r.text)
    assert re.search(r'id="adult0_gender".*?<option value="female" selected>', r.text, re.S)


async def test_switching_language_on_a_results_page_does_not_end_in_an_error(
    client: AsyncClient, world: World
) -> None:
    """FR · NL · DE · EN sit at the top of every page. A results page was drawn for a POST
    (/web/console/search), and so is the page saying a hold failed: switching language there
    must land on a page, not on a JSON "405 Method Not Allowed"."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    pages = {}
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    pages["results"] = r
    bad = {**hold_form(r.text), "household": "{}"}
    pages["failed hold"] = await client.post("/web/console/hold", data=bad)
    for what, page in pages.items():
        nxt = re.search(r'name="next" value="([^"]*)"', page.text)
        assert nxt, what
        r = await client.post(
            "/web/lang",
            data={"csrf": csrf_of(page.text), "lang": "nl", "next": html.unescape(nxt.group(1))},
        )
        assert r.status_code == 303
        landed = await client.get(r.headers["location"])
        assert landed.status_code == 200, f"{what}: {landed.status_code} {landed.text[:120]}"
        assert "text/html" in landed.headers["content-type"]


async def test_the_hold_page_gives_the_deadline_in_belgian_time_and_a_quiet_countdown(
    client: AsyncClient, world: World
) -> None:
    """The officer radios "held until 04:00" to the patrol and the shelter: the hold page
    shows the deadline on the Belgian wall clock (02:30 in Brussels is 01:30 UTC; a police hold
    of 90 min runs to 04:00 there), not only a countdown. The countdown ticks every second, so
    it must not be a live region: a screen reader would read it out every second and drown
    everything else (WCAG 4.1.3; role="timer" is not announced)."""
    w = await seed_world(world)
    await web_sign_in(client, str(w["police"]))
    client.headers["Accept-Language"] = "en"
    r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    r = await client.post("/web/console/hold", data=hold_form(r.text))
    assert r.status_code == 303
    page = (await client.get(r.headers["location"])).text
    assert "04:00" in page, "no deadline in Belgian time on the hold page"
    live = re.search(r'<[^>]*aria-live="(polite|assertive)"[^>]*>(.*?)</p>', page, re.S)
    assert not (live and 'id="countdown"' in live.group(2)), "the countdown is a live region"


async def test_an_offered_place_that_ended_is_not_shown_as_held(
    client: AsyncClient, world: World
) -> None:
    """A standing request is answered: a place is held for the operator. When that hold then
    ends (the shelter declines it, or it expires), the console's list must not go on saying
    "A place is held for you" for twelve hours: the officer would count on a bed that is gone."""
    w = await seed_world(world)
    client.headers["Accept-Language"] = "en"
    await _fill(client, str(w["helpline"]), "Refuge Iris")
    await _fill(client, str(w["helpline"]), "Refuge Nord")
    police_actor = await _actor(world, str(w["police"]))
    search = SearchRequest(
        household=Household(adults=[Adult(gender="female")]),
        need="ipv",
    )
    made = await standing_service.create(
        world.db,
        _settings(client),
        request=search,
        minutes=600,
        callback=None,
        idempotency_key=None,
        actor=police_actor,
        now=world.clock.now(),
    )
    assert made.view.state == "waiting"
    # a room frees up: the round holds it for the police zone
    helpline_holds = await client.get("/holds?state=held", headers=bearer(str(w["helpline"])))
    first = helpline_holds.json()[0]["ref"]
    r = await client.post(f"/holds/{first}/release", headers=bearer(str(w["helpline"])))
    assert r.status_code == 200
    view = await standing_service.get(world.db, made.view.ref, actor=police_actor)
    assert view.state == "offered" and view.hold is not None
    await web_sign_in(client, str(w["police"]))
    li = _standing_item(await client.get("/web/console"), made.view.ref)
    assert "A place is held for you" in li

    # the shelter declines it
    staff = await _actor(world, str(w["staff"]))
    await holds_service.transition(
        world.db, view.hold.ref, "declined", actor=staff, now=world.clock.now(), reason="Full"
    )
    li = _standing_item(await client.get("/web/console"), made.view.ref)
    assert "A place is held for you" not in li, li
    # back in line, in its place (tests/integration/test_standing_back_in_line.py)
    assert 'data-state="waiting"' in li
    assert f"Back in line, in its place: the place held for it ({view.hold.ref}) declined." in li


def _standing_item(page: Any, ref: str) -> str:
    m = re.search(rf'<li id="standing-{ref}".*?</li>', page.text, re.S)
    assert m, "the standing request is not listed"
    return " ".join(m.group(0).split())


def _settings(client: AsyncClient) -> Any:
    transport: Any = client._transport  # the ASGI app under test
    return transport.app.state.settings


async def _actor(world: World, token: str) -> Any:
    from capacity import registry

    actor = await registry.authenticate(world.db, token, world.clock.now())
    assert actor is not None
    return actor


async def test_a_second_extension_seconds_after_the_first_is_not_spent_for_nothing(
    client: AsyncClient, world: World
) -> None:
    """A police hold (90 min, at most 180 from now) extended once runs to its cap. Pressing
    "Extend" again a few seconds later (a double click on the console's button, or a dispatch
    system's retry) would move the deadline by those few seconds and use up the last of the
    two extensions: the officer then cannot extend when it matters. Like an extension that
    adds nothing, it must be refused and not counted."""
    w = await seed_world(world)
    police = bearer(str(w["police"]))
    one = {"adults": [{"gender": "female"}]}
    found = await client.post(
        "/placements/search", headers=police, json={"household": one, "need": "ipv"}
    )
    r = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "double-click-0001"},
        json={"poolRef": found.json()["options"][0]["poolRef"], "need": "ipv", "household": one},
    )
    ref = r.json()["ref"]
    r = await client.post(f"/holds/{ref}/extend", headers=police)
    assert r.status_code == 200 and r.json()["extensions"] == 1
    world.clock.advance(seconds=2)  # the second click
    r = await client.post(f"/holds/{ref}/extend", headers=police)
    assert r.status_code == 409 and r.json()["code"] == "extension-refused", r.json()
    held = (await client.get(f"/holds/{ref}", headers=police)).json()
    assert held["extensions"] == 1
