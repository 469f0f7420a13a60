"""Per-token rate limits on search and hold: 429 with Retry-After and a problem body; other
tokens and other actions are not affected; the bucket refills."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.ratelimit import TokenBuckets
from api.web.session import CSP
from capacity.commands import PoolCreate
from capacity.settings import Settings
from tests.conftest import World, bearer


@pytest.fixture
async def limited(
    world: World, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, list[float]]]:
    limits = dataclasses.replace(settings, rate_search_per_minute=6, rate_hold_per_minute=3)
    app = create_app(limits, db=world.db, clock=world.clock)
    fake_time = [1000.0]
    app.state.rate_buckets = TokenBuckets(clock=lambda: fake_time[0])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c, fake_time


async def test_search_and_hold_are_limited_per_token(
    limited: tuple[httpx.AsyncClient, list[float]], world: World
) -> None:
    client, fake_time = limited
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    await world.operator("Line", "helpline")
    fac = await world.facility("Refuges", "R", pools=[PoolCreate(label="B", units_total=50)])
    police, line = await world.token("Zone", "police"), await world.token("Line", "helpline")
    body = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
    # burst = 6 // 3 = 2 searches at once, then 1 every 10 s
    codes = [
        (await client.post("/placements/search", json=body, headers=bearer(police))).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    r = await client.post("/placements/search", json=body, headers=bearer(police))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "10"
    assert r.json()["code"] == "rate-limited" and "try again" in r.json()["detail"]
    # Another token is not affected; nor is another action of the same token.
    r = await client.post("/placements/search", json=body, headers=bearer(line))
    assert r.status_code == 200
    hold = {"poolRef": fac.pools[0].ref, "need": "ipv", "household": body["household"]}
    r = await client.post(
        "/holds", json=hold, headers={**bearer(police), "Idempotency-Key": "rate-limit-h1"}
    )
    assert r.status_code == 201
    r = await client.post(
        "/holds", json=hold, headers={**bearer(police), "Idempotency-Key": "rate-limit-h2"}
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 20
    # Reading one's holds is not limited.
    assert (await client.get("/holds", headers=bearer(police))).status_code == 200
    # Ten seconds later one more search is allowed.
    fake_time[0] += 10
    r = await client.post("/placements/search", json=body, headers=bearer(police))
    assert r.status_code == 200


def test_bucket_arithmetic() -> None:
    now = [0.0]
    b = TokenBuckets(clock=lambda: now[0])
    key = (1, "search")
    assert [b.take(key, per_minute=60, burst=3) for _ in range(4)] == [0, 0, 0, 1.0]
    now[0] += 0.5
    assert b.take(key, per_minute=60, burst=3) == pytest.approx(0.5)
    now[0] += 100  # never more than the burst after a long pause
    assert [b.take(key, per_minute=60, burst=3) for _ in range(4)][-1] > 0


async def test_the_web_console_shares_the_tokens_limits(
    limited: tuple[httpx.AsyncClient, list[float]], world: World
) -> None:
    """A stolen helpline token pasted into the web sign-in page must not search (enumerate the
    country's places) or hold without the limits the API applies to the same token: the
    console and the API draw from one bucket per token."""
    from tests.browser.web_helpers import post_form, seed_world, web_sign_in
    from tests.integration.test_web_pages import FAMILY_FORM, hold_form

    client, fake_time = limited
    client.headers["Accept-Language"] = "en"
    w = await seed_world(world)
    police = str(w["police"])
    await web_sign_in(client, police)
    codes = []
    for _ in range(3):
        r = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
        codes.append(r.status_code)
    assert codes == [200, 200, 429]
    assert (
        "Too many requests in a short time" in r.text and "text/html" in r.headers["content-type"]
    )
    assert r.headers["retry-after"] == "10"
    body = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
    r = await client.post("/placements/search", json=body, headers=bearer(police))
    assert r.status_code == 429  # the API's budget is the same one
    fake_time[0] += 10
    page = await post_form(client, "/web/console", "/web/console/search", FAMILY_FORM)
    assert page.status_code == 200
    r = await client.post("/web/console/hold", data=hold_form(page.text))
    assert r.status_code == 303  # a burst of one hold (3 per minute // 3) ...
    r = await client.post("/web/console/hold", data=hold_form(page.text))
    assert r.status_code == 429 and "Too many requests in a short time" in r.text  # ... then wait


async def test_a_standing_request_spends_the_hold_budget(
    limited: tuple[httpx.AsyncClient, list[float]], world: World
) -> None:
    """A standing request is answered at once when a place is free: it holds that place for
    the requester. Unlimited, it was a way around the hold limit: a stolen token could leave
    request after request and hold every free place in the country (and learn each one)."""
    from tests.browser.web_helpers import post_form, web_sign_in

    client, _ = limited
    client.headers["Accept-Language"] = "en"
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    for i in range(3):
        await world.facility("Refuges", f"R{i}", pools=[PoolCreate(label="B", units_total=1)])
    police = await world.token("Zone", "police")
    search = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
    codes = []
    for i in range(3):
        r = await client.post(
            "/standing-requests",
            json={"search": search, "minutes": 60},
            headers={**bearer(police), "Idempotency-Key": f"standing-limit-{i}"},
        )
        codes.append(r.status_code)
    assert codes == [201, 429, 429]  # a burst of one (3 per minute // 3)
    assert r.json()["code"] == "rate-limited" and "retry-after" in r.headers
    await web_sign_in(client, police)
    r = await post_form(
        client,
        "/web/console",
        "/web/console/standing",
        {"search": json.dumps(search), "hours": "2", "idem": "web-standing-limit-1"},
    )
    assert r.status_code == 429 and "Too many requests in a short time" in r.text


async def test_live_streams_are_limited_per_token_across_the_api_and_the_web_pages(
    world: World, settings: Settings
) -> None:
    """Each open stream polls the database every second. A shelter's system that opens a new
    stream without closing the old one, or a leaked token, could open thousands: at
    ``ABRI_STREAMS_PER_TOKEN`` the next is refused with 429 and Retry-After, on the API and on
    the staff page alike; a one-time link has slots of its own; a stream that ends gives its
    slot back."""
    import asyncio

    from tests.browser.web_helpers import seed_world, web_sign_in
    from tests.integration.test_staff_links import issue, open_link

    app = create_app(
        dataclasses.replace(settings, streams_per_token=2), db=world.db, clock=world.clock
    )
    slots = app.state.stream_slots
    transport = httpx.ASGITransport(app=app)
    w = await seed_world(world)
    staff = str(w["staff"])
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as night,
    ):
        path = "/staff/holds/stream"
        open_ = [
            asyncio.create_task(client.get(path, params={"seconds": 3}, headers=bearer(staff)))
            for _ in range(2)
        ]
        for _ in range(100):
            if slots.total() == 2:
                break
            await asyncio.sleep(0.02)
        assert slots.total() == 2
        r = await client.get(path, params={"seconds": 1}, headers=bearer(staff))
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "30" and r.json()["code"] == "rate-limited"
        assert "2 live streams" in r.json()["detail"]
        # the staff page's stream, signed in with the same token: the same two slots
        await web_sign_in(client, staff)
        page = await client.get("/web/staff/stream")
        assert page.status_code == 429 and page.headers["retry-after"] == "30"
        assert page.headers["content-security-policy"] == CSP
        # a night worker's link (issued by that token) streams on slots of its own
        _, secret = await issue(client, staff, w["ixl"].facility.id)  # type: ignore[attr-defined]
        assert (await open_link(night, secret)).status_code == 303
        link = await night.get("/web/link/stream", params={"seconds": 1})
        assert link.status_code == 200 and "abri hold stream" in link.text
        assert [(await t).status_code for t in open_] == [200, 200]
        assert slots.total() == 0
        again = await client.get(path, params={"seconds": 1}, headers=bearer(staff))
        assert again.status_code == 200
