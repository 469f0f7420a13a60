"""rev9 staff review: defects found in the staff journey (counts, holds, feeds, streams)."""

from __future__ import annotations

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
