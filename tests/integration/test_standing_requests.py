"""Standing requests end to end: a freed place goes to the oldest matching request, exactly once,
through the ordinary hold gate; requests expire and keep no household data once closed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, insert, select

from capacity import retention
from capacity.commands import PoolCreate
from capacity.models import AuditEntry, Event, Hold, OutboxMessage, StandingRequest, WebhookEndpoint
from capacity.settings import Settings
from placement import standing_service
from placement.holds_service import counters_agree
from placement.policy import AccessPolicy
from tests.conftest import World, bearer

MOTHER_AND_GIRL = {
    "adults": [{"gender": "female"}],
    "children": [{"age": 6, "gender": "female"}],
    "residenceStatus": "documented",
    "languages": ["fr"],
}
MOTHER_AND_BOY_15 = {
    "adults": [{"gender": "female"}],
    "children": [{"age": 15, "gender": "male"}],
    "languages": ["fr"],
}


def search(household: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"household": household, "need": "ipv", "preferredMunicipalityNis": "21004", **extra}


@pytest.fixture
async def setup(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    await world.operator("Ligne 0800", "helpline")
    await world.operator("Ligne 1712", "helpline")
    fa = await world.facility(
        "Refuges A",
        "Refuge A-1",
        policy=AccessPolicy(max_boy_age=12, languages=["fr"]),
        pools=[
            PoolCreate(label="Family", unit_kind="family_room", places_per_unit=3, units_total=1)
        ],
    )
    return {
        "fa": fa,
        "family": fa.pools[0].ref,
        "police": await world.token("Zone Nord", "police"),
        "helpline": await world.token("Ligne 0800", "helpline"),
        "helpline2": await world.token("Ligne 1712", "helpline"),
        "staff": await world.token("Refuges A", "staff"),
    }


async def _fill(client: AsyncClient, setup: dict[str, Any]) -> str:
    """The only family room gets held by the police: nothing is free any more."""
    r = await client.post(
        "/holds",
        headers={**bearer(setup["police"]), "Idempotency-Key": "fill-the-room-1"},
        json={"poolRef": setup["family"], "need": "ipv", "household": MOTHER_AND_GIRL},
    )
    assert r.status_code == 201, r.text
    return r.json()["ref"]


async def test_a_release_offers_the_place_to_the_oldest_matching_request_once(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    held = await _fill(client, setup)
    # Nothing fits: the search says so, and the helplines wait in line.
    r = await client.post(
        "/placements/search", json=search(MOTHER_AND_GIRL), headers=bearer(setup["helpline"])
    )
    assert r.json()["options"] == []
    # In line: a boy of 15 (never fits here), then helpline 1, then helpline 2.
    boy = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_BOY_15)},
        headers=bearer(setup["helpline2"]),
    )
    world.clock.advance(minutes=1)
    first = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 600, "callback": "Desk 0800"},
        headers={**bearer(setup["helpline"]), "Idempotency-Key": "standing-0800-01"},
    )
    world.clock.advance(minutes=1)
    second = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL)},
        headers=bearer(setup["helpline2"]),
    )
    for r in (boy, first, second):
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "waiting" and r.json()["hold"] is None
    assert first.json()["minutesLeft"] == 600
    # A retry with the same key is the same request, not a second place in line.
    again = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 600, "callback": "Desk 0800"},
        headers={**bearer(setup["helpline"]), "Idempotency-Key": "standing-0800-01"},
    )
    assert again.status_code == 200 and again.json()["ref"] == first.json()["ref"]

    # The police release their hold: the place goes to the OLDEST MATCHING request.
    r = await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/standing-requests/{first.json()['ref']}", headers=bearer(setup["helpline"])
    )
    offer = r.json()
    assert offer["state"] == "offered", offer
    assert offer["hold"]["state"] == "held"
    assert offer["hold"]["intakePhone"] and offer["hold"]["handoverProtocol"]
    assert offer["hold"]["callback"] == "Desk 0800"
    assert offer["hold"]["minutesLeft"] == 240  # the helpline default
    assert "address" not in r.text.lower() and "street" not in r.text.lower()
    # The hold is the requester's own, like any other.
    r = await client.get(f"/holds/{offer['hold']['ref']}", headers=bearer(setup["helpline"]))
    assert r.status_code == 200
    for other in (boy, second):
        r = await client.get(
            f"/standing-requests/{other.json()['ref']}", headers=bearer(setup["helpline2"])
        )
        assert r.json()["state"] == "waiting"

    # More rounds (the scheduler, another process) change nothing: offered exactly once.
    settings = Settings(database_url=world.db.url)
    for _ in range(3):
        assert await standing_service.run_round(world.db, settings, now=world.clock.now()) == 0
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Hold)) == 2
        assert (
            await s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "standing.offered")
            )
            == 1
        )
        offered = await s.scalar(
            select(StandingRequest.search).where(StandingRequest.ref == first.json()["ref"])
        )
        # kept while the offer may still fall through on the place's side (then it goes back
        # in line), dropped once settled (tests/integration/test_standing_back_in_line.py)
        assert offered is not None
        ev = (
            await s.execute(
                select(Event.operator_id, Event.payload).where(Event.kind == "standing.offered")
            )
        ).one()
        assert ev.payload["holdRef"] == offer["hold"]["ref"]
    assert await counters_agree(world.db) == []

    # The helpline releases the offered hold: next in line (the second request) gets it.
    r = await client.post(
        f"/holds/{offer['hold']['ref']}/release", headers=bearer(setup["helpline"])
    )
    assert r.status_code == 200
    r = await client.get(
        f"/standing-requests/{second.json()['ref']}", headers=bearer(setup["helpline2"])
    )
    assert r.json()["state"] == "offered"
    r = await client.get(
        f"/standing-requests/{boy.json()['ref']}", headers=bearer(setup["helpline2"])
    )
    assert r.json()["state"] == "waiting"


async def test_concurrent_rounds_never_offer_one_place_twice(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    held = await _fill(client, setup)
    refs = []
    for i in range(5):
        world.clock.advance(seconds=10)
        r = await client.post(
            "/standing-requests",
            json={"search": search(MOTHER_AND_GIRL)},
            headers=bearer(setup["helpline" if i % 2 else "helpline2"]),
        )
        refs.append(r.json()["ref"])
    # Free the room behind the API's back, then let many rounds race for it.
    async with world.db.write() as s:
        await s.execute(Hold.__table__.update().where(Hold.ref == held).values(state="released"))
        from capacity.models import Pool

        await s.execute(Pool.__table__.update().values(units_held=0))
    settings = Settings(database_url=world.db.url)
    results = await asyncio.gather(
        *(standing_service.run_round(world.db, settings, now=world.clock.now()) for _ in range(8))
    )
    assert sum(results) == 1
    async with world.db.read() as s:
        states = dict((await s.execute(select(StandingRequest.ref, StandingRequest.state))).all())
        assert [states[r] for r in refs] == ["offered", "waiting", "waiting", "waiting", "waiting"]
        assert (
            await s.scalar(select(func.count()).select_from(Hold).where(Hold.state == "held")) == 1
        )
    assert await counters_agree(world.db) == []


async def test_requests_expire_cancel_and_keep_no_household_data(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    await _fill(client, setup)
    # The operator has a webhook: expiry is told to its system.
    async with world.db.write() as s:
        op_id = (
            await s.execute(select(Hold.requester_operator_id).limit(1))
        ).scalar_one()  # the police operator
        await s.execute(
            insert(WebhookEndpoint).values(
                operator_id=op_id,
                url="http://127.0.0.1:9/hook",
                secret_ciphertext="x",
                created_at=world.clock.now(),
            )
        )
    short = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 30, "callback": "Desk 3"},
        headers={**bearer(setup["police"]), "Idempotency-Key": "case-2026-000123"},
    )
    other = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL)},
        headers=bearer(setup["helpline"]),
    )
    assert short.status_code == other.status_code == 201
    # Cancel the helpline's: gone from the line, its search data dropped at once.
    r = await client.post(
        f"/standing-requests/{other.json()['ref']}/cancel", headers=bearer(setup["helpline"])
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = await client.post(
        f"/standing-requests/{other.json()['ref']}/cancel", headers=bearer(setup["helpline"])
    )
    assert r.status_code == 409
    # Past its deadline the police request reads as expired at once, before any round.
    world.clock.advance(minutes=31)
    r = await client.get(
        f"/standing-requests/{short.json()['ref']}", headers=bearer(setup["police"])
    )
    assert r.json()["state"] == "expired" and r.json()["minutesLeft"] == 0
    await standing_service._expire_waiting(world.db, world.clock.now())
    async with world.db.read() as s:
        rows = (await s.execute(select(StandingRequest.state, StandingRequest.search))).all()
        assert sorted(st for st, _ in rows) == ["cancelled", "expired"]
        assert all(search_data is None for _, search_data in rows)
        outbox = (await s.execute(select(OutboxMessage.event, OutboxMessage.payload))).all()
        assert [o.event for o in outbox] == ["standing.expired"]
        assert "household" not in str(outbox[0].payload)
    # After the retention period, nothing ties them to the requester's case any more.
    world.clock.advance(days=91)
    await retention.purge(world.db, now=world.clock.now(), days=90)
    async with world.db.read() as s:
        rows = (
            await s.execute(
                select(
                    StandingRequest.callback,
                    StandingRequest.idempotency_key,
                    StandingRequest.request_hash,
                )
            )
        ).all()
        assert rows and all(tuple(r) == (None, None, None) for r in rows)


async def test_only_the_requesting_operator_sees_its_standing_requests(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    r = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_BOY_15)},
        headers=bearer(setup["helpline"]),
    )
    ref = r.json()["ref"]
    for tok in ("helpline2", "police"):
        r = await client.get(f"/standing-requests/{ref}", headers=bearer(setup[tok]))
        assert r.status_code == 404
        r = await client.post(f"/standing-requests/{ref}/cancel", headers=bearer(setup[tok]))
        assert r.status_code == 404
        r = await client.get("/standing-requests", headers=bearer(setup[tok]))
        assert r.json() == []
    r = await client.get("/standing-requests", headers=bearer(setup["staff"]))
    assert r.status_code == 403
    r = await client.get("/standing-requests/KM4T-9RCX", headers=bearer(setup["helpline"]))
    assert r.status_code in (404, 422)
    r = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL, preferredMunicipalityNis="99999")},
        headers=bearer(setup["helpline"]),
    )
    assert r.status_code == 422 and r.json()["code"] == "unknown-area"
    r = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 100000},
        headers=bearer(setup["helpline"]),
    )
    assert r.status_code in (400, 422)


async def test_an_expiry_offers_the_place_to_the_request_in_line_at_once(
    client: AsyncClient, setup: dict[str, Any], world: World, settings: Settings
) -> None:
    """The sweeper that expires a hold hands the place on in the same run, not at the next
    standing round (up to 15 s later): the place is not left free for whoever searches first
    while a request has been waiting for it."""
    from ops.scheduler import JobContext
    from placement.jobs import expire_holds

    await _fill(client, setup)
    first = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 600},
        headers=bearer(setup["helpline"]),
    )
    assert first.status_code == 201 and first.json()["state"] == "waiting"
    world.clock.advance(minutes=91)  # past the police hold's 90 minutes
    ctx = JobContext(world.db, world.clock, settings, world.cipher)
    assert await expire_holds(ctx) == 1
    r = await client.get(
        f"/standing-requests/{first.json()['ref']}", headers=bearer(setup["helpline"])
    )
    assert r.json()["state"] == "offered", r.json()
    assert await counters_agree(world.db) == []


async def test_a_staff_read_that_expires_a_hold_offers_the_place_to_the_request_in_line(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """Staff reads expire the holds past their deadline (so their figures are right before
    the sweeper comes by). A place freed that way went to nobody: the sweeper then found
    nothing to expire, so it offered nothing, and until the next standing round the place was
    free for whoever searched first while a request had been waiting for it."""
    await _fill(client, setup)
    first = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 600},
        headers=bearer(setup["helpline"]),
    )
    assert first.status_code == 201 and first.json()["state"] == "waiting"
    world.clock.advance(minutes=91)  # past the police hold's 90 minutes; no sweeper ran
    pool_id = setup["fa"].pools[0].id
    r = await client.get(f"/staff/pools/{pool_id}", headers=bearer(setup["staff"]))
    assert r.status_code == 200, r.text
    r = await client.get(
        f"/standing-requests/{first.json()['ref']}", headers=bearer(setup["helpline"])
    )
    assert r.json()["state"] == "offered", r.json()
    # the next searcher is not offered the place the request in line was waiting for
    r = await client.post(
        "/placements/search", json=search(MOTHER_AND_GIRL), headers=bearer(setup["helpline2"])
    )
    assert r.json()["options"] == [], r.json()
    assert await counters_agree(world.db) == []


async def test_a_waiting_request_keeps_only_the_hash_of_its_episode_token(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """The README says Abri keeps only a hash of an `episodeToken` (a requester may use a
    case number). A waiting standing request kept it in clear, with the areas to avoid, for
    up to 72 h. It now keeps the hash its holds keep, and the hold it is offered carries the
    same hash as the household's own holds (the household still counts once)."""
    from placement.holds_service import episode_hash
    from tests.conftest import TEST_EPISODE

    held = await _fill(client, setup)
    token = "PV-2026-BXL-004711"  # a case number
    r = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL, episodeToken=token)},
        headers=bearer(setup["helpline"]),
    )
    assert r.status_code == 201, r.text
    async with world.db.read() as s:
        stored = (await s.execute(select(StandingRequest.search))).scalar_one()
    assert token not in str(stored), stored
    r = await client.post(f"/holds/{held}/release", headers=bearer(setup["police"]))
    assert r.status_code == 200, r.text
    async with world.db.read() as s:
        offered = (await s.execute(select(Hold).where(Hold.ref != held))).scalar_one()
        helpline = offered.requester_operator_id
    assert offered.episode_hash == episode_hash(TEST_EPISODE, helpline, token)


async def test_a_departure_offers_the_freed_place_to_the_request_in_line(
    client: AsyncClient, setup: dict[str, Any], world: World
) -> None:
    """A household placed through Abri leaves (``departed``): its room is free again, like
    after a release or a no-show. The request waiting for such a room got nothing until some
    other change ran a standing round, and meanwhile the next searcher could take the room."""
    held = await _fill(client, setup)
    staff = bearer(setup["staff"])
    r = await client.post(f"/staff/holds/{held}/arrived", headers=staff)
    assert r.status_code == 200, r.text
    first = await client.post(
        "/standing-requests",
        json={"search": search(MOTHER_AND_GIRL), "minutes": 600},
        headers=bearer(setup["helpline"]),
    )
    assert first.status_code == 201 and first.json()["state"] == "waiting"
    r = await client.post(f"/staff/holds/{held}/departed", headers=staff)
    assert r.status_code == 200 and r.json()["state"] == "departed", r.text
    r = await client.get(
        f"/standing-requests/{first.json()['ref']}", headers=bearer(setup["helpline"])
    )
    assert r.json()["state"] == "offered", r.json()
    r = await client.post(
        "/placements/search", json=search(MOTHER_AND_GIRL), headers=bearer(setup["helpline2"])
    )
    assert r.json()["options"] == [], r.json()
    assert await counters_agree(world.db) == []
