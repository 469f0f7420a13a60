"""The staff journey: defects found (counts, holds, feeds, streams)."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.conftest import World, bearer
from tests.integration.test_feeds import (
    HAVE_GOOD,
    FeedServer,
    Reply,
    Setup,
    feed_server,  # noqa: F401  (fixture)
    make_feed,
    poll,
    pools,
    setup,  # noqa: F401  (fixture)
)


async def test_a_feed_that_never_reports_blocked_units_is_not_rejected_for_staff_ones(
    client: AsyncClient,
    world: World,
    setup: Setup,  # noqa: F811
    feed_server: FeedServer,  # noqa: F811
) -> None:
    """A CPAS's EDXL-HAVE feed has no blocked count. Staff reported 3 double rooms out of
    service (repairs) earlier. The CPAS then reduces the rooms in service to 2: the document
    is valid, yet every poll was rejected whole ("blocked exceeds total"), for a figure the
    feed never sent, and every pool of the feed silently went stale."""
    staff = await world.token("Hotels Solidaires", "staff")
    dbl = setup.pools["Doubles"]
    r = await client.get(f"/staff/pools/{dbl}", headers=bearer(staff))
    r = await client.put(
        f"/staff/pools/{dbl}/availability",
        json={"unitsTotal": 10, "unitsOccupied": 4, "unitsBlocked": 3},
        headers={**bearer(staff), "If-Match": r.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    doc = HAVE_GOOD.replace(b"<AvailableCount>3", b"<AvailableCount>1").replace(
        b"<BaselineCount>10", b"<BaselineCount>2"
    )
    feed_server.serve(Reply(body=doc, ctype="application/xml"))
    created = await make_feed(client, setup, feed_server.url, fmt="edxl_have", name="cpas")
    world.clock.advance(minutes=5)
    report = await poll(world, created["id"])
    assert report.outcome == "ok", report.reason
    now = await pools(world)
    assert (now[dbl].units_total, now[dbl].units_occupied) == (2, 1)
    assert (now[setup.pools["Family"]].units_total, now[setup.pools["Family"]].units_occupied) == (
        4,
        4,
    )


# --------------------------------------------------------------------------- the live stream


async def _incoming_holds_setup(world: World) -> dict[str, object]:
    from capacity.commands import PoolCreate

    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    fac = await world.facility(
        "Refuges A",
        "Refuge A-1",
        pools=[PoolCreate(label="Beds", units_total=3), PoolCreate(label="Rooms", units_total=3)],
    )
    return {"fac": fac, "staff_op": fac.facility.operator_id}


@pytest.mark.postgres
async def test_a_hold_event_committed_after_a_later_one_still_reaches_the_staff_stream(
    pg_world: World,
) -> None:
    """PostgreSQL hands out event ids when a row is written, not when its transaction commits.
    The sweeper expires a hold (event N, not yet committed) while a police hold on the other
    pool commits first (event N+1). The stream sends N+1 and moves its cursor past N, so N —
    committed a moment later — never reaches the staff: their page keeps showing the expired
    hold as incoming (the same happens to a hold.created behind a slower transaction)."""
    import asyncio

    from api.holds.controllers import hold_event_stream
    from capacity.audit import Actor
    from capacity.clock import FrozenClock
    from placement import holds_service
    from placement.household import Adult, Household

    world = pg_world
    s = await _incoming_holds_setup(world)
    fac = s["fac"]
    police = Actor(
        operator_id=await _op_id(world, "Zone Nord"), role="police", operator_kind="police"
    )
    staff = Actor(operator_id=int(s["staff_op"]), role="staff")
    household = Household(adults=[Adult(gender="female")])
    first = await holds_service.reserve(
        world.db,
        pool_ref=fac.pools[0].ref,
        household=household,
        need="ipv",
        minutes=None,
        callback=None,
        idempotency_key="stream-gap-1",
        actor=police,
        now=world.clock.now(),
    )
    world.clock.advance(hours=2)  # the first hold is due
    got: list[object] = []
    stream = hold_event_stream(world.db, staff, FrozenClock(world.clock.now()), None, 20)

    async def pull() -> None:
        async for m in stream:
            got.append(m)

    task = asyncio.create_task(pull())
    try:
        await asyncio.sleep(0.5)  # connected: the cursor is at the newest event
        async with world.db.raw_write() as tx:  # the sweeper's transaction for the first pool
            await holds_service.expire_due_in_pool(tx, fac.pools[0].id, world.clock.now())
            second = await holds_service.reserve(
                world.db,
                pool_ref=fac.pools[1].ref,
                household=household,
                need="ipv",
                minutes=None,
                callback=None,
                idempotency_key="stream-gap-2",
                actor=police,
                now=world.clock.now(),
            )
            for _ in range(40):  # the stream sends the committed later event
                if any(second.view.ref in str(getattr(m, "data", "")) for m in got):
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # the sweeper committed: the stream has time to send it
    finally:
        task.cancel()
    kinds = [(getattr(m, "event", None), str(getattr(m, "data", ""))) for m in got]
    assert any(k == "hold.created" and second.view.ref in d for k, d in kinds), kinds
    assert any(k == "hold.expired" and first.view.ref in d for k, d in kinds), kinds


async def _op_id(world: World, name: str) -> int:
    from sqlalchemy import select

    from capacity.models import Operator

    async with world.db.read() as s:
        return int(await s.scalar(select(Operator.id).where(Operator.name == name)))


async def test_a_stream_client_that_saw_no_event_yet_resumes_without_a_gap(
    client: AsyncClient, world: World
) -> None:
    """A quiet night: the staff system's stream connection ends (``seconds``, a proxy's idle
    timeout) having carried no event, so the client has no Last-Event-ID. A hold made before it
    reconnects (EventSource waits ``retry`` = 3 s) must still reach it: the stream tells its
    position at once, and the reconnection resumes from there instead of from "now"."""
    import re

    s = await _incoming_holds_setup(world)
    fac = s["fac"]
    staff = await world.token("Refuges A", "staff")
    police = await world.token("Zone Nord", "police")
    r = await client.get("/staff/holds/stream", params={"seconds": 1}, headers=bearer(staff))
    ids = re.findall(r"^id: ?(\d+)", r.text, flags=re.M)
    r = await client.post(
        "/holds",
        json={
            "poolRef": fac.pools[0].ref,
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
        },
        headers={**bearer(police), "Idempotency-Key": "between-connections-1"},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    again = {"Last-Event-ID": ids[-1]} if ids else {}
    r = await client.get(
        "/staff/holds/stream", params={"seconds": 1}, headers={**bearer(staff), **again}
    )
    assert ref in r.text


# --------------------------------------------------------------------------- the staff page


def _plus_minus_forms(page: str, pool_id: int) -> dict[str, dict[str, str]]:
    """The "−" and "+" forms of a pool card, as a browser would send them."""
    import html as html_mod
    import re

    card = re.search(
        rf'<article class="pool card" id="pool-{pool_id}"[^>]*>(.*?)</article>', page, re.S
    )
    assert card, page
    forms = re.findall(r"<form[^>]*>(.*?)</form>", card.group(1), re.S)
    out: dict[str, dict[str, str]] = {}
    for body in forms:
        button = re.search(r"<button[^>]*>\s*([−+])\s*</button>", body)
        if button:
            fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', body)
            out[button.group(1)] = {k: html_mod.unescape(v) for k, v in fields}
    return out


async def test_plus_on_an_overfull_pool_frees_one_place_not_three(
    client: AsyncClient, world: World
) -> None:
    """Emergency mattresses: 5 beds in service, 7 people (the API allows it: nothing free).
    One person leaves and the night worker taps "+" once: 6 are left, still nothing free.
    The page turned the tap into "1 free", i.e. 4 occupied: three people vanished from the
    count and a helpline was offered a bed in a shelter that is still over full."""
    from capacity.models import Pool
    from tests.browser.web_helpers import seed_world, web_sign_in

    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    staff = str(w["staff"])
    r = await client.get(f"/staff/pools/{pool.id}", headers=bearer(staff))
    r = await client.put(
        f"/staff/pools/{pool.id}/availability",
        json={"unitsTotal": 3, "unitsOccupied": 5},
        headers={**bearer(staff), "If-Match": r.headers["etag"]},
    )
    assert r.status_code == 200 and r.json()["unitsFree"] == 0, r.text
    await web_sign_in(client, staff)
    page = await client.get("/web/staff")
    plus = _plus_minus_forms(page.text, pool.id)["+"]
    r = await client.post(f"/web/staff/pools/{pool.id}", data=plus)
    assert r.status_code == 303, r.text
    async with world.db.read() as s:
        row = await s.get(Pool, pool.id)
        assert row is not None and (row.units_total, row.units_occupied) == (3, 4)


async def test_minus_and_plus_still_move_one_place_and_a_double_tap_is_refused(
    client: AsyncClient, world: World
) -> None:
    """The ordinary case keeps working: "−" takes one place, "+" gives one back, and the
    second of two taps sent from the same page (a double tap) is refused, not applied twice."""
    from capacity.models import Pool
    from tests.browser.web_helpers import seed_world, web_sign_in

    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    await web_sign_in(client, str(w["staff"]))
    page = await client.get("/web/staff")
    minus = _plus_minus_forms(page.text, pool.id)["−"]
    assert (await client.post(f"/web/staff/pools/{pool.id}", data=minus)).status_code == 303
    assert (await client.post(f"/web/staff/pools/{pool.id}", data=minus)).status_code == 409
    async with world.db.read() as s:
        assert (await s.get(Pool, pool.id)).units_occupied == 1  # type: ignore[union-attr]
    page = await client.get("/web/staff")
    plus = _plus_minus_forms(page.text, pool.id)["+"]
    assert (await client.post(f"/web/staff/pools/{pool.id}", data=plus)).status_code == 303
    assert (await client.post(f"/web/staff/pools/{pool.id}", data=plus)).status_code == 409
    async with world.db.read() as s:
        assert (await s.get(Pool, pool.id)).units_occupied == 0  # type: ignore[union-attr]


async def test_the_night_workers_link_page_learns_of_a_new_hold_without_a_reload(
    client: AsyncClient, world: World
) -> None:
    """The night worker who opened a one-time link is the one at the door at night. A police
    hold made while their page is open must reach it live, as on the staff page: the page
    has a live source, and that source announces the hold (its state: never its code, which
    the household gives at the door, nor the household, the requester or the callback, which
    a link session may not see)."""
    import re

    from tests.integration.test_staff_links import issue, open_link

    w = await seed_world_for_links(world)
    ixl = w["ixl"]
    r, secret = await issue(client, str(w["staff"]), ixl.facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    live = re.search(r'data-live="([^"]+)"', page.text)
    assert live, "the link page has no live source: a new hold shows only after a reload"
    police = bearer(str(w["police"]))
    hold = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "link-live-00001"},
        json={
            "poolRef": ixl.pools[0].ref,  # type: ignore[attr-defined]
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}], "languages": ["fr"]},
            "callback": "CALLBACKCANARY +32 2 555 00 00",
        },
    )
    assert hold.status_code == 201, hold.text
    ref = hold.json()["ref"]
    r = await client.get(live.group(1), params={"seconds": 1}, headers={"Last-Event-ID": "0"})
    assert r.status_code == 200 and r.text.count("event: hold.created") == 1, r.text
    assert '"state":"held"' in r.text and ref not in r.text and ref.replace("-", "") not in r.text
    assert "CALLBACKCANARY" not in r.text and "household" not in r.text
    assert "Zone Ixelles" not in r.text
    # the stream of another facility's hold says nothing here
    other = await client.post(
        "/holds",
        headers={**police, "Idempotency-Key": "link-live-00002"},
        json={
            "poolRef": w["sch"].pools[0].ref,  # type: ignore[attr-defined]
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
        },
    )
    assert other.status_code == 201, other.text
    r = await client.get(live.group(1), params={"seconds": 1}, headers={"Last-Event-ID": "0"})
    assert r.text.count("event: hold.created") == 1, r.text  # still only the first


async def seed_world_for_links(world: World) -> dict[str, object]:
    from tests.browser.web_helpers import seed_world

    return await seed_world(world)


async def test_setting_the_free_places_it_already_shows_keeps_an_overfull_count(
    client: AsyncClient, world: World
) -> None:
    """7 people in 5 places (mattresses), the page shows 0 free and prefills 0 in "Free
    places". A worker who taps "Set free places" without changing it (to say "still full")
    must not make two people vanish from the occupancy: nothing free changed."""
    import re

    from capacity.models import Pool
    from tests.browser.web_helpers import csrf_of, seed_world, web_sign_in

    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    staff = str(w["staff"])
    r = await client.get(f"/staff/pools/{pool.id}", headers=bearer(staff))
    r = await client.put(
        f"/staff/pools/{pool.id}/availability",
        json={"unitsTotal": 3, "unitsOccupied": 5},
        headers={**bearer(staff), "If-Match": r.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    await web_sign_in(client, staff)
    page = await client.get("/web/staff")
    form = re.search(
        rf'<form method="post" action="/web/staff/pools/{pool.id}" class="setfree">(.*?)</form>',
        page.text,
        re.S,
    )
    assert form, page.text
    fields = dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form.group(1)))
    assert fields["free"] == "0"
    fields["csrf"] = csrf_of(page.text)
    r = await client.post(f"/web/staff/pools/{pool.id}", data=fields)
    assert r.status_code == 303, r.text
    async with world.db.read() as s:
        row = await s.get(Pool, pool.id)
        assert row is not None and (row.units_total, row.units_occupied) == (3, 5)


async def test_a_hotel_room_out_of_order_is_never_offered(
    client: AsyncClient,
    world: World,
    setup: Setup,  # noqa: F811
    feed_server: FeedServer,  # noqa: F811
) -> None:
    """A hotel's inventory: 12 double rooms, 7 occupied, 1 out of order (the adapter itself
    refuses more out of order than the total: they are part of it). 4 rooms can be given.
    Abri stored 12 in service and 1 blocked beside them, so it showed 5 free, and a fifth
    helpline hold took a room with a broken window."""
    import json

    from tests.integration.test_feeds import inventory

    doc = json.loads(inventory((12, 7), (4, 4)))
    doc["rooms"][0]["outOfOrder"] = 1
    feed_server.serve(Reply(body=json.dumps(doc).encode()))
    created = await make_feed(client, setup, feed_server.url, name="hotel-ooo")
    world.clock.advance(minutes=5)
    assert (await poll(world, created["id"])).outcome == "ok"
    await world.operator("Ligne", "helpline")
    line = await world.token("Ligne", "helpline")
    body = {
        "poolRef": setup.refs["Doubles"],
        "need": "ipv",
        "household": {"adults": [{"gender": "female"}]},
    }
    granted = 0
    for i in range(6):
        r = await client.post(
            "/holds", json=body, headers={**bearer(line), "Idempotency-Key": f"ooo-hold-{i:04d}"}
        )
        granted += r.status_code == 201
    assert granted == 4
    dbl = (await pools(world))[setup.pools["Doubles"]]
    assert (dbl.units_total, dbl.units_blocked) == (11, 1)


async def test_revoking_a_staff_token_ends_its_open_hold_stream(
    client: AsyncClient, world: World
) -> None:
    """A shelter phone is lost; the coordinator has its token revoked. A stream it had open
    (up to an hour on the API) kept sending every incoming household's composition and the
    requester's callback to whoever holds the phone. It must stop at the revocation."""
    import asyncio

    from capacity import registry
    from capacity.audit import CLI

    s = await _incoming_holds_setup(world)
    fac = s["fac"]
    lost = await world.token("Refuges A", "staff")
    police = await world.token("Zone Nord", "police")
    stream = asyncio.create_task(
        client.get("/staff/holds/stream", params={"seconds": 8}, headers=bearer(lost))
    )
    await asyncio.sleep(0.5)
    tokens = await registry.list_tokens(world.db)
    lost_id = next(t.id for t, _ in tokens if t.role == "staff")
    await registry.revoke_token(world.db, token_id=lost_id, actor=CLI, now=world.clock.now())
    await asyncio.sleep(0.2)
    r = await client.post(
        "/holds",
        json={
            "poolRef": fac.pools[0].ref,
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
            "callback": "CALLBACKCANARY +32 2 555 00 00",
        },
        headers={**bearer(police), "Idempotency-Key": "after-revoke-0001"},
    )
    assert r.status_code == 201, r.text
    body = (await stream).text
    assert r.json()["ref"] not in body and "CALLBACKCANARY" not in body


async def test_a_hold_past_its_deadline_is_not_shown_as_incoming(
    client: AsyncClient, world: World
) -> None:
    """A hold whose deadline passed no longer blocks its place (searches see it free) even
    before the sweeper marks it expired. The staff page still listed it under "Incoming",
    with an "Arrived" button that then answered "This hold has expired" (the night worker's
    link page already leaves such holds out)."""
    from tests.browser.web_helpers import seed_world, web_sign_in

    w = await seed_world(world)
    r = await client.post(
        "/holds",
        headers={**bearer(str(w["police"])), "Idempotency-Key": "past-deadline-01"},
        json={
            "poolRef": w["ixl"].pools[0].ref,  # type: ignore[attr-defined]
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
        },
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    await web_sign_in(client, str(w["staff"]))
    assert f'id="hold-{ref}"' in (await client.get("/web/staff")).text
    world.clock.advance(minutes=91)  # the police hold ran 90 min; the sweeper has not run
    page = await client.get("/web/staff")
    assert f'id="hold-{ref}"' not in page.text


async def test_a_quiet_stream_still_sends_something_so_idle_timeouts_do_not_cut_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet night sent nothing at all for up to ``seconds`` (an hour): a shelter system
    reading with a timeout (httpx's default is 5 s) or behind a proxy closing idle connections
    saw its stream fail over and over. An idle stream now sends a comment every
    ``KEEPALIVE_SECONDS``: no event (EventSource dispatches nothing for it), no id."""
    import asyncio
    import itertools

    from api.holds import controllers
    from capacity.audit import Actor

    s = await _incoming_holds_setup(world)
    monkeypatch.setattr(controllers, "KEEPALIVE_SECONDS", 0.4, raising=False)
    staff = Actor(operator_id=int(s["staff_op"]), role="staff")  # type: ignore[call-overload]
    got: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    async for m in controllers.hold_event_stream(world.db, staff, world.clock, None, 3):
        got.append((loop.time() - start, m.encode()))
    quiet = [(t, raw) for t, raw in got if raw.startswith(b": keepalive")]
    assert len(quiet) >= 3, got
    assert all(b"data:" not in raw and b"id:" not in raw for _, raw in quiet), quiet
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(got)]
    assert max(gaps) < 1.2, gaps


async def test_the_stream_opens_with_a_comment_and_retry_not_an_empty_event(world: World) -> None:
    """README: the stream "opens with a comment and a `retry: 3000`, then an event with empty
    `data` whose `id` is the stream's position". The opening also carried a `data:` line, so an
    SSE client (EventSource, a shelter's library) got an extra empty `message` event without an
    id before the position's, one a system taking each event for news had to learn to ignore."""
    from api.holds import controllers
    from capacity.audit import Actor

    s = await _incoming_holds_setup(world)
    staff = Actor(operator_id=int(s["staff_op"]), role="staff")  # type: ignore[call-overload]
    stream = controllers.hold_event_stream(world.db, staff, world.clock, None, 1)
    opening = (await anext(stream)).encode()
    position = (await anext(stream)).encode()
    await stream.aclose()
    assert opening.startswith(b": abri hold stream") and b"retry: 3000" in opening
    assert b"data:" not in opening, opening
    assert b"id: " in position and b"data:" in position, position


async def test_a_last_event_id_from_before_a_reset_does_not_silence_the_stream(
    client: AsyncClient, world: World
) -> None:
    """A shelter system keeps the last event id it saw. Abri's events start again from 1 after
    a restore from an older backup, a fresh demo database or a test installation reset: the
    stream resumed after the remembered id (say 1000) and sent nothing until a thousand events
    had passed, hiding every new hold in silence. An id beyond the newest event now resumes
    from the newest one (nothing newer can have been seen), and the stream says so."""
    import re

    s = await _incoming_holds_setup(world)
    fac = s["fac"]
    staff = bearer(await world.token("Refuges A", "staff"))
    police = bearer(await world.token("Zone Nord", "police"))

    async def hold(key: str) -> str:
        r = await client.post(
            "/holds",
            json={
                "poolRef": fac.pools[0].ref,  # type: ignore[attr-defined]
                "need": "ipv",
                "household": {"adults": [{"gender": "female"}]},
            },
            headers={**police, "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["ref"])

    await hold("before-the-reset-1")
    r = await client.get(
        "/staff/holds/stream",
        params={"seconds": 1},
        headers={**staff, "Last-Event-ID": "1000"},
    )
    [position] = re.findall(r"^id: ?(\d+)", r.text, flags=re.M)
    assert int(position) < 1000, r.text
    ref = await hold("after-the-reset-2")
    r = await client.get(
        "/staff/holds/stream",
        params={"seconds": 1},
        headers={**staff, "Last-Event-ID": position},
    )
    assert ref in r.text


async def test_a_hold_past_its_deadline_no_longer_counts_as_held_for_staff(
    world: World, settings: object
) -> None:
    """A police hold ran out at 02:00; the sweeper runs every 30 s (or not at all while no
    process leads the jobs). Meanwhile the staff page, the night worker's link page and
    ``GET /staff/pools`` still counted it as held: "0 free, 1 held", "+" disabled, and "set 1
    free" refused with "at most 0 can be free", for a bed no hold blocks any more. A hold past
    its deadline stops blocking its place at once: what staff read says so, and a search made
    just after agrees with it."""
    import re

    import httpx

    from api.app import create_app
    from tests.browser.web_helpers import seed_world, web_sign_in
    from tests.integration.test_staff_links import issue, open_link

    w = await seed_world(world)
    pool = w["ixl"].pools[0]  # type: ignore[attr-defined]
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    app = create_app(settings, db=world.db, clock=world.clock)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    base = "https://abri.be"
    async with (
        httpx.AsyncClient(transport=transport, base_url=base) as api,
        httpx.AsyncClient(transport=transport, base_url=base) as web,
        httpx.AsyncClient(transport=transport, base_url=base) as night,
    ):
        web.headers["Accept-Language"] = night.headers["Accept-Language"] = "en"
        staff, police = bearer(str(w["staff"])), bearer(str(w["police"]))
        r = await api.post(
            "/holds",
            headers={**police, "Idempotency-Key": "runs-out-0001"},
            json={
                "poolRef": pool.ref,
                "need": "ipv",
                "household": {"adults": [{"gender": "female"}]},
            },
        )
        assert r.status_code == 201, r.text
        r, secret = await issue(api, str(w["staff"]), fid)
        assert r.status_code == 201, r.text
        assert (await open_link(night, secret)).status_code == 303
        r = await api.get(f"/staff/pools/{pool.id}", headers=staff)
        assert (r.json()["unitsHeld"], r.json()["unitsFree"]) == (1, 2)

        world.clock.advance(minutes=91)  # the police hold ran 90 min; no sweeper has run

        page = (await night.get("/web/link")).text
        figures = re.search(rf'id="figures-{pool.id}">([^<]*)<', page)
        assert figures and "0 held" in figures.group(1), figures
        assert f'<span class="free" id="free-{pool.id}">3</span>' in page
        await web_sign_in(web, str(w["staff"]))
        page = (await web.get("/web/staff")).text
        figures = re.search(rf'id="figures-{pool.id}">([^<]*)<', page)
        assert figures and "0 held" in figures.group(1), figures
        assert f'<span class="free" id="free-{pool.id}">3</span>' in page
        r = await api.get(f"/staff/pools/{pool.id}", headers=staff)
        assert (r.json()["unitsHeld"], r.json()["unitsFree"]) == (0, 3), r.json()
        r = await api.get("/staff/facilities", headers=staff)
        listed = {p["id"]: p for f in r.json() for p in f["pools"]}
        assert (listed[pool.id]["unitsHeld"], listed[pool.id]["unitsFree"]) == (0, 3)
        r = await api.get(f"/staff/facilities/{fid}", headers=staff)
        assert [p["unitsFree"] for p in r.json()["pools"] if p["id"] == pool.id] == [3]
        r = await api.post(
            "/placements/search",
            headers=police,
            json={"household": {"adults": [{"gender": "female"}]}, "need": "ipv"},
        )
        offered = {o["poolRef"]: o["freeUnits"] for o in r.json()["options"]}
        assert offered.get(pool.ref) == 3, r.json()
