"""A shelter network's own case-management system driving Abri over HTTP (review 13): pushing
counts, following incoming holds, marking arrivals and no-shows from its own servers."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from capacity.audit import Actor
from capacity.commands import PoolCreate
from placement import holds_service
from placement.errors import IllegalTransition
from placement.policy import AccessPolicy
from tests.conftest import World, bearer

HOUSEHOLD = {"adults": [{"gender": "female"}], "languages": ["fr"]}


@pytest.fixture
async def setup(world: World) -> dict[str, Any]:
    await world.operator("CAW Oost", "caw")
    await world.operator("Zone Nord", "police")
    fac = await world.facility(
        "CAW Oost",
        "Vluchthuis 1",
        policy=AccessPolicy(languages=["fr", "nl"]),
        pools=[PoolCreate(label="Beds", units_total=12)],
    )
    return {
        "fac": fac,
        "pool": fac.pools[0],
        "police": await world.token("Zone Nord", "police"),
        "staff": await world.token("CAW Oost", "staff"),
    }


async def _hold(client: AsyncClient, setup: dict[str, Any], key: str) -> str:
    r = await client.post(
        "/holds",
        headers={**bearer(setup["police"]), "Idempotency-Key": key},
        json={"poolRef": setup["pool"].ref, "need": "ipv", "household": HOUSEHOLD},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ref"])


async def test_a_retried_staff_action_says_where_the_hold_is_now(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """The case system marks an arrival, the answer is lost (a timeout) and it retries: the
    retry is refused (409 illegal-transition), and the problem must say in a field, not only
    in an English sentence, that the hold is already arrived, so the system can tell "my
    first try went through" from "someone declined it meanwhile". The state was passed to
    the error and dropped on the way out."""
    staff = bearer(setup["staff"])
    arrived = await _hold(client, setup, "retry-arrived-1")
    no_show = await _hold(client, setup, "retry-noshow-01")
    assert (await client.post(f"/staff/holds/{arrived}/arrived", headers=staff)).status_code == 200
    assert (await client.post(f"/staff/holds/{no_show}/no-show", headers=staff)).status_code == 200

    r = await client.post(f"/staff/holds/{arrived}/arrived", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "illegal-transition", r.text
    assert r.json()["current"] == {"state": "arrived"}, r.text
    r = await client.post(f"/staff/holds/{no_show}/no-show", headers=staff)
    assert r.status_code == 409 and r.json()["current"] == {"state": "no_show"}, r.text
    r = await client.post(f"/staff/holds/{no_show}/arrived", headers=staff)
    assert r.status_code == 409 and r.json()["current"] == {"state": "no_show"}, r.text

    expired = await _hold(client, setup, "retry-expired-1")
    world.clock.advance(hours=2)  # police hold: 90 min
    r = await client.post(f"/staff/holds/{expired}/arrived", headers=staff)
    assert r.status_code == 409 and r.json()["code"] == "hold-expired", r.text
    assert r.json()["current"] == {"state": "expired"}, r.text


async def test_the_loser_of_two_servers_marking_one_hold_learns_its_state(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """Two of the case system's servers mark the same hold at once: one read it held, the other
    moved it first. The loser's refusal says where the hold is now, like any other refusal."""
    ref = await _hold(client, setup, "race-arrived-01")
    seen = await holds_service.get(
        world.db, ref, actor=Actor(operator_id=None, role="admin"), side="staff"
    )
    staff = bearer(setup["staff"])
    assert (await client.post(f"/staff/holds/{ref}/arrived", headers=staff)).status_code == 200
    with pytest.raises(IllegalTransition) as caught:
        async with world.db.raw_write() as tx:
            await holds_service._move(
                tx,
                seen,
                "no_show",
                actor=Actor(operator_id=None, role="admin"),
                now=world.clock.now(),
                reason=None,
            )
    assert caught.value.extra.get("state") == "arrived"


async def test_the_staff_hold_list_pages_past_its_cap_instead_of_dropping_holds(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """After an outage the case system reads GET /staff/holds ("after a long outage, read GET
    /staff/holds first"). A network's list stopped at its 200 newest holds, silently and with
    no way to ask for the rest: the households that arrived before them were never seen.
    The list now takes a ``limit`` and pages back with ``before`` (a reference code)."""
    staff = bearer(setup["staff"])
    made = []
    for i in range(7):
        ref = await _hold(client, setup, f"page-hold-{i:04d}")
        assert (await client.post(f"/staff/holds/{ref}/arrived", headers=staff)).status_code == 200
        made.append(ref)
    seen: list[str] = []
    before = None
    while True:
        params: dict[str, Any] = {"state": "arrived", "limit": 3}
        if before is not None:
            params["before"] = before
        r = await client.get("/staff/holds", headers=staff, params=params)
        assert r.status_code == 200, r.text
        page = [h["ref"] for h in r.json()]
        assert len(page) <= 3
        seen += page
        if len(page) < 3:
            break
        before = page[-1]
    assert seen == made[::-1]  # newest first, each once, none left out
    r = await client.get("/staff/holds", headers=staff, params={"limit": 1001})
    assert r.status_code == 422 and r.json()["field"] == "limit", r.text
    r = await client.get("/staff/holds", headers=staff, params={"before": "not-a-code"})
    assert r.status_code == 422 and r.json()["code"] == "bad-reference", r.text
    assert r.json()["field"] == "before", r.text


# PostgreSQL only (not a skip on SQLite): SQLite takes one writer at a time, so the two
# updates cannot interleave there.
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_412_lost_in_a_race_carries_the_figures_that_won(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """Two of the case system's servers push counts for one pool with the same If-Match. On
    PostgreSQL the loser read the pool before the winner committed, then found its UPDATE
    matched nothing: its 412 answered the figures and ETag it had read — its own If-Match
    back, "version 5" — not the ones that won, so retrying with that ETag failed again."""
    import asyncio

    from sqlalchemy import update

    from capacity.models import Pool

    assert not world.db.sqlite
    staff = bearer(setup["staff"])
    pid = setup["pool"].id
    r = await client.get(f"/staff/pools/{pid}", headers=staff)
    etag = r.headers["ETag"]
    for path, body in (
        ("availability", {"unitsTotal": 12, "unitsOccupied": 3}),
        ("confirm", None),
    ):
        locked, go = asyncio.Event(), asyncio.Event()

        async def winner(locked: asyncio.Event, go: asyncio.Event) -> None:
            async with world.db.write() as s:  # the other server, committing a moment later
                await s.execute(
                    update(Pool)
                    .where(Pool.id == pid)
                    .values(units_occupied=7, version=Pool.version + 1)
                )
                locked.set()
                await go.wait()

        won = asyncio.create_task(winner(locked, go))
        await locked.wait()
        send = client.put if path == "availability" else client.post
        kwargs: dict[str, Any] = {"json": body} if body else {}
        loser = asyncio.create_task(
            send(f"/staff/pools/{pid}/{path}", headers={**staff, "If-Match": etag}, **kwargs)
        )
        await asyncio.sleep(0.5)  # the loser has read the pool and waits for its row
        go.set()
        await won
        r = await loser
        assert r.status_code == 412, r.text
        now = await client.get(f"/staff/pools/{pid}", headers=staff)
        assert r.headers["ETag"] == now.headers["ETag"] != etag, (path, r.headers, r.text)
        assert r.json()["current"]["unitsOccupied"] == 7
        assert r.json()["current"]["version"] == now.json()["version"]
        etag = now.headers["ETag"]


async def test_the_staff_hold_list_filters_by_the_state_it_shows(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """A hold past its deadline is expired whether or not the sweeper came by, and the list
    says so ("state": "expired"). Yet ``?state=held`` still returned it — an incoming
    household that will not come, as far as the case system's filter could tell — and
    ``?state=expired`` left it out."""
    staff = bearer(setup["staff"])
    ref = await _hold(client, setup, "filter-expired-1")
    world.clock.advance(hours=2)  # police: 90 min; no sweeper runs in tests

    r = await client.get("/staff/holds", headers=staff, params={"state": "held"})
    assert r.status_code == 200 and [h["ref"] for h in r.json()] == [], r.text
    r = await client.get("/staff/holds", headers=staff, params={"state": "expired"})
    assert [(h["ref"], h["state"]) for h in r.json()] == [(ref, "expired")], r.text


async def test_reporting_a_compromised_location_again_is_not_refused(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """The case system reports the refuge's location compromised; the answer is lost (a
    timeout) and it sends the same PUT again. Staff may not lift that status, and the guard
    also refused the very status already in force: 409 "only an administrator lifts it" to an
    identical PUT, as if the report had been taken back. The retry now answers the place as
    it is (no second alert, the first reason kept), and lifting it is still refused."""
    from sqlalchemy import func, select

    from capacity.models import Alert

    staff = bearer(setup["staff"])
    fid = setup["fac"].facility.id
    body = {"status": "location_compromised", "reason": "Partner seen outside"}
    for _ in range(2):
        r = await client.put(f"/staff/facilities/{fid}/status", headers=staff, json=body)
        assert r.status_code == 200 and r.json()["status"] == "location_compromised", r.text
    assert r.json()["statusReason"] == "Partner seen outside"
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Alert)) == 1
    r = await client.put(f"/staff/facilities/{fid}/status", headers=staff, json={"status": "open"})
    assert r.status_code == 409 and r.json()["field"] == "status", r.text
