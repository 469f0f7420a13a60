"""A household placed through Abri leaves: the staff page (and a night worker's link page) list
who is in house and mark a departure, which frees the units once — not the pool's "−", which
left the hold arrived for ever, so that a later ``departed`` (the API, a colleague's system)
lowered the occupied count a second time."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from api.web.controllers import local_when
from capacity.models import AuditEntry, Event, Hold, Pool
from placement.holds_service import counters_agree
from tests.browser.web_helpers import csrf_of, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_staff_links import issue, open_link

MOTHER_AND_GIRL = {
    "adults": [{"gender": "female", "ageBand": "25-64"}],
    "children": [{"age": 6, "gender": "female"}],
}


async def _arrived(client: AsyncClient, w: dict[str, Any], key: str = "departure-1") -> str:
    """A helpline hold on Refuge Iris (one family room), marked arrived by its staff."""
    r = await client.post(
        "/holds",
        json={"poolRef": w["ixl"].pools[0].ref, "need": "ipv", "household": MOTHER_AND_GIRL},
        headers={**bearer(str(w["helpline"])), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    r = await client.post(f"/staff/holds/{ref}/arrived", headers=bearer(str(w["staff"])))
    assert r.status_code == 200, r.text
    return str(ref)


async def _pool(world: World, pool_id: int) -> tuple[int, int, int]:
    async with world.db.read() as s:
        p = await s.get(Pool, pool_id)
        assert p is not None
        return p.units_occupied, p.units_held, p.version


def _minus_form(page: str, pool_id: int) -> dict[str, str]:
    m = re.search(
        rf'action="/web/staff/pools/{pool_id}">\s*<input type="hidden" name="csrf" value="([^"]+)">'
        r'\s*<input type="hidden" name="version" value="(\d+)">'
        r'\s*<input type="hidden" name="held" value="(\d+)">'
        r'\s*<input type="hidden" name="free" value="(\d+)">',
        page,
    )
    assert m, "no − form"
    return dict(zip(("csrf", "version", "held", "free"), m.groups(), strict=True))


async def test_staff_see_who_is_in_house_and_departed_frees_the_units_once(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    # a walk-in already takes one room (the pool's "−"), then a family placed through Abri
    r = await client.put(
        f"/staff/pools/{pool.id}/availability",
        headers={**staff, "If-Match": '"1"'},
        json={"unitsTotal": 3, "unitsOccupied": 1},
    )
    assert r.status_code == 200, r.text
    arrived_at = world.clock.now()
    ref = await _arrived(client, w)
    world.clock.advance(minutes=50)
    assert (await _pool(world, pool.id))[:2] == (2, 0)

    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    assert page.status_code == 200
    card = re.search(rf'<article class="hold in-house card" id="in-house-{ref}">.*?</article>',
                     page.text, re.S)  # fmt: skip
    assert card, page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card.group(0)))
    assert ref in text and "Refuge Iris" in text and "Family rooms" in text
    assert "1 place(s)" in text and "Woman (25-64)" in text and "Children (ages): 6 (Girl)" in text
    when = local_when(arrived_at, "en", world.clock.now())  # Belgian time
    assert f"arrived {when}" in text, text
    assert f'data-confirm="Mark {ref} as departed? Its places count as free from now on."' in (
        card.group(0)
    )
    assert f'action="/web/staff/holds/{ref}/departed"' in card.group(0)
    # no name is ever stored, so none can be shown; the callback is for incoming holds only
    assert "Ligne Ecoute" not in card.group(0)
    stale_minus = _minus_form(page.text, pool.id)  # drawn before the departure
    version_before = (await _pool(world, pool.id))[2]

    r = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and "ok=departed" in r.headers["location"], r.text
    occupied, held, version = await _pool(world, pool.id)
    assert (occupied, held) == (1, 0) and version == version_before + 1
    after = await client.get(r.headers["location"])
    assert "Marked as departed: its places are free again." in after.text
    assert f'id="in-house-{ref}"' not in after.text and 'id="in-house-live"' in after.text

    # a second tap (another phone, the browser's Back), the API, a stale "−": refused, and
    # the units are not freed again
    again = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "This hold has already changed" in again.text
    r = await client.post(f"/staff/holds/{ref}/departed", headers=staff)
    assert r.status_code == 409, r.text
    r = await client.post(f"/web/staff/pools/{pool.id}", data=stale_minus)
    assert r.status_code == 409 and f'id="conflict-{pool.id}"' in r.text
    assert (await _pool(world, pool.id))[0] == 1
    assert await counters_agree(world.db) == []
    async with world.db.read() as s:
        state = await s.scalar(select(Hold.state).where(Hold.ref == ref))
        audited = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "hold.departed", AuditEntry.object_id == ref)
        )
        events = await s.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "hold.departed")
        )
    assert (state, audited, events) == ("departed", 1, 1)


async def test_departed_needs_the_csrf_token_and_the_facilitys_own_staff(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    ref = await _arrived(client, w)
    await world.operator("Autres Refuges", "shelter_operator")
    other = await world.token("Autres Refuges", "staff")

    await web_sign_in(client, str(w["staff"]))
    r = await client.post(f"/web/staff/holds/{ref}/departed", data={})
    assert r.status_code == 403
    r = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": "forged"})
    assert r.status_code == 403

    client.cookies.clear()
    await web_sign_in(client, other)
    page = await client.get("/web/staff")
    assert page.status_code == 200 and ref not in page.text
    r = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404 and ref not in r.text
    assert (await _pool(world, pool.id))[0] == 1
    async with world.db.read() as s:
        assert await s.scalar(select(Hold.state).where(Hold.ref == ref)) == "arrived"


async def test_a_departure_on_the_staff_page_offers_the_place_to_the_request_in_line(
    client: AsyncClient, world: World
) -> None:
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    r = await client.put(
        f"/staff/pools/{pool.id}/availability",
        headers={**bearer(str(w["staff"])), "If-Match": '"1"'},
        json={"unitsTotal": 3, "unitsOccupied": 2},
    )
    assert r.status_code == 200, r.text
    r = await client.put(  # the other refuge is full too
        f"/staff/pools/{w['sch'].pools[0].id}/availability",  # type: ignore[attr-defined]
        headers={**bearer(str(w["staff"])), "If-Match": '"1"'},
        json={"unitsTotal": 2, "unitsOccupied": 2},
    )
    assert r.status_code == 200, r.text
    ref = await _arrived(client, w)  # the last room
    search = {"household": MOTHER_AND_GIRL, "need": "ipv", "preferredMunicipalityNis": "21009"}
    wait = await client.post(
        "/standing-requests", json={"search": search}, headers=bearer(str(w["police"]))
    )
    assert wait.status_code == 201 and wait.json()["state"] == "waiting", wait.text
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    r = await client.post(f"/web/staff/holds/{ref}/departed", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    r = await client.get(
        f"/standing-requests/{wait.json()['ref']}", headers=bearer(str(w["police"]))
    )
    assert r.json()["state"] == "offered", r.json()
    assert await counters_agree(world.db) == []


async def test_a_night_worker_marks_a_departure_on_the_link_page(
    client: AsyncClient, world: World
) -> None:
    """The link page marks arrivals, so the household's departure belongs there too: else the
    worker's only way is "−", and the hold stays arrived. Listed without its code or any
    household detail (the page shows neither), by pool and arrival time."""
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    ref = await _arrived(client, w)
    client.headers["Accept-Language"] = "en"
    _, secret = await issue(client, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    section = re.search(r'<section aria-labelledby="in-house-h".*?</section>', page.text, re.S)
    assert section, page.text
    assert ref not in page.text and "Woman" not in section.group(0)
    assert "Family rooms" in section.group(0) and "arrived " in section.group(0)
    hold_id = re.search(r'action="/web/link/holds/(\d+)/departed"', section.group(0))
    assert hold_id and "data-confirm=" in section.group(0)
    url = f"/web/link/holds/{hold_id.group(1)}/departed"
    assert (await client.post(url, data={})).status_code == 403  # CSRF
    r = await client.post(url, data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and "ok=departed" in r.headers["location"], r.text
    assert (await _pool(world, pool.id))[0] == 0
    after = await client.get(r.headers["location"])
    assert "Marked as departed" in after.text and 'id="in-house-h"' not in after.text
    r = await client.post(url, data={"csrf": csrf_of(page.text)})
    assert r.status_code == 409 and "This hold has already changed" in r.text
    # a hold of the operator's other facility is not this link's to touch
    r = await client.post(
        "/holds",
        json={"poolRef": w["sch"].pools[0].ref, "need": "ipv", "household": MOTHER_AND_GIRL},  # type: ignore[attr-defined]
        headers={**bearer(str(w["helpline"])), "Idempotency-Key": "departure-other"},
    )
    elsewhere = r.json()["ref"]
    await client.post(f"/staff/holds/{elsewhere}/arrived", headers=bearer(str(w["staff"])))
    async with world.db.read() as s:
        other_id = await s.scalar(select(Hold.id).where(Hold.ref == elsewhere))
    r = await client.post(f"/web/link/holds/{other_id}/departed", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404
    async with world.db.read() as s:
        assert await s.scalar(select(Hold.state).where(Hold.ref == elsewhere)) == "arrived"
        actions = (
            await s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.action.in_(["hold.departed", "staff_link.hold_departed"])
                )
            )
        ).all()
    assert sorted(actions) == ["hold.departed", "staff_link.hold_departed"]
    assert await counters_agree(world.db) == []


async def test_a_long_in_house_list_comes_folded_so_the_counts_stay_in_reach(
    client: AsyncClient, world: World
) -> None:
    """With 11 households in house (the demo), the list pushed the pools' counts ~1,900 px
    down a phone: the staff page's main task moved out of reach. Up to 3 are shown; more come
    folded under "Show the N households" (a native <details>: no script needed)."""
    from capacity.commands import PoolCreate

    w = await seed_world(world)
    beds = await world.facility(
        "Refuges Solidaires", "Refuge Lits", pools=[PoolCreate(label="Beds", units_total=10)]
    )
    staff, line = bearer(str(w["staff"])), bearer(str(w["helpline"]))
    await web_sign_in(client, str(w["staff"]))
    client.headers["Accept-Language"] = "en"
    for i in range(4):
        r = await client.post(
            "/holds",
            json={"poolRef": beds.pools[0].ref, "need": "ipv", "household": MOTHER_AND_GIRL},
            headers={**line, "Idempotency-Key": f"in-house-fold-{i}"},
        )
        assert r.status_code == 201, r.text
        r = await client.post(f"/staff/holds/{r.json()['ref']}/arrived", headers=staff)
        assert r.status_code == 200, r.text
        page = (await client.get("/web/staff")).text
        folded = re.search(r'<details id="in-house-list"( open)?>', page)
        assert folded, page
        assert (folded.group(1) is None) == (i >= 3), (i, folded.group(0))
    assert "Show the 4 households" in page


async def test_one_household_in_house_is_not_the_1_households(
    client: AsyncClient, world: World
) -> None:
    """The in-house list's summary read "Show the 1 households" ("Afficher les 1 ménages")
    whenever one household placed through Abri was staying: the commonest case."""
    w = await seed_world(world)
    await _arrived(client, w, "in-house-one")
    await web_sign_in(client, str(w["staff"]))
    for lang, said in (("en", "Show the household"), ("fr", "Afficher le ménage")):
        client.headers["Accept-Language"] = lang
        page = (await client.get("/web/staff")).text
        summary = re.search(r'<details id="in-house-list" open>\s*<summary>(.*?)</summary>', page)
        assert summary and summary.group(1) == said, summary and summary.group(1)


async def test_a_night_worker_marks_a_long_stay_departed_after_many_shorter_ones(
    client: AsyncClient, world: World
) -> None:
    """The link page found the hold to mark departed among the facility's newest 200 holds
    arrived *or departed*: a household staying for months at a place whose other rooms saw
    200 departures since (a crisis studio's two-night stays) was listed under "In house",
    yet its "Departed" answered "Not found" and its places could not be freed."""
    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    ref = await _arrived(client, w)
    async with world.db.write() as s:
        long_stay = await s.scalar(select(Hold).where(Hold.ref == ref))
        assert long_stay is not None
        columns = {
            c.key: getattr(long_stay, c.key)
            for c in Hold.__table__.columns
            if c.key not in ("id", "ref", "idempotency_key")
        }
        for i in range(200):  # newer holds, since gone (their units long freed)
            s.add(Hold(**{**columns, "ref": f"T{i:07d}", "idempotency_key": f"gone-{i}",
                          "state": "departed", "departed_at": world.clock.now()}))  # fmt: skip
    client.headers["Accept-Language"] = "en"
    _, secret = await issue(client, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    hold_id = re.search(r'action="/web/link/holds/(\d+)/departed"', page.text)
    assert hold_id and int(hold_id.group(1)) == long_stay.id, page.text
    r = await client.post(
        f"/web/link/holds/{hold_id.group(1)}/departed", data={"csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303 and "ok=departed" in r.headers["location"], r.text
    assert (await _pool(world, pool.id))[0] == 0
    async with world.db.read() as s:
        assert await s.scalar(select(Hold.state).where(Hold.ref == ref)) == "departed"


async def test_every_household_in_house_is_listed_not_the_newest_200(
    client: AsyncClient, world: World
) -> None:
    """The staff page (and a link's) listed the newest 200 households in house and counted
    "In house 200": at an operator with more (a network of refuges, a large night shelter)
    the longest stays silently fell off the page, with no "Departed" to free their places."""
    w = await seed_world(world)
    first = await _arrived(client, w)
    async with world.db.write() as s:
        oldest = await s.scalar(select(Hold).where(Hold.ref == first))
        assert oldest is not None
        columns = {
            c.key: getattr(oldest, c.key)
            for c in Hold.__table__.columns
            if c.key not in ("id", "ref", "idempotency_key")
        }
        for i in range(200):  # arrived since, at the same place
            s.add(Hold(**{**columns, "ref": f"T{i:07d}", "idempotency_key": f"stay-{i}"}))
    client.headers["Accept-Language"] = "en"
    await web_sign_in(client, str(w["staff"]))
    page = (await client.get("/web/staff")).text
    assert re.search(r'id="in-house-h">In house <span class="count">201</span>', page), page
    assert page.count('class="hold in-house card"') == 201
    assert f'action="/web/staff/holds/{first}/departed"' in page

    client.cookies.clear()
    _, secret = await issue(client, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = (await client.get("/web/link")).text
    assert f'action="/web/link/holds/{oldest.id}/departed"' in page
