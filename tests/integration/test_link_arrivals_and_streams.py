"""The night worker's arrival by code and the hold streams: defects found reviewing the
ninth session's changes."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient
from sqlalchemy import event, insert, select, text

from api.holds.controllers import hold_event_stream
from capacity.audit import Actor
from capacity.clock import FrozenClock
from capacity.models import AuditEntry, Event, Hold
from tests.browser.web_helpers import csrf_of, seed_world, web_sign_in
from tests.conftest import World, bearer
from tests.integration.test_staff_journey import _incoming_holds_setup
from tests.integration.test_staff_links import issue, open_link


async def _link_page_with_one_expected_hold(
    client: AsyncClient, world: World, minutes: int = 30
) -> tuple[str, str, dict[str, object]]:
    """A helpline hold on Refuge Iris and a night worker's link page open for it: (the hold's
    code, the page's CSRF token, the seeded world)."""
    w = await seed_world(world)
    r = await client.post(
        "/holds",
        json={
            "poolRef": w["ixl"].pools[0].ref,  # type: ignore[attr-defined]
            "need": "ipv",
            "household": {"adults": [{"gender": "female"}]},
            "minutes": minutes,
        },
        headers={**bearer(str(w["helpline"])), "Idempotency-Key": "rev9-diff-late"},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    _, secret = await issue(client, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = await client.get("/web/link")
    assert 'id="arrival"' in page.text
    return ref, csrf_of(page.text), w


async def test_a_late_household_at_the_door_is_told_why_its_code_is_refused(
    client: AsyncClient, world: World, clock: FrozenClock
) -> None:
    """The household arrives after its hold's deadline: nobody is expected any more, so the
    page has no "Expected arrivals" section, and the refusal ("this hold has expired") was
    drawn inside that section only: the night worker saw the page as before, no message, the
    code gone, and could not tell whether the household was taken in."""
    ref, csrf, _ = await _link_page_with_one_expected_hold(client, world)
    clock.advance(minutes=31)
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": ref})
    assert r.status_code == 409, r.status_code  # hold-expired
    assert 'id="arrival-error"' in r.text and 'role="alert"' in r.text
    assert f'value="{ref}"' in r.text  # the code as typed, to check with them
    # a screen reader on the code field hears why it was refused, not only the hint
    assert 'aria-describedby="arrival-error arrival-hint"' in r.text


async def test_a_code_already_marked_arrived_elsewhere_is_answered_on_the_link_page(
    client: AsyncClient, world: World
) -> None:
    """Staff marked the household arrived on the staff page while the night worker typed its
    code: the refusal must be shown, not an unchanged page with a 409 status only."""
    ref, csrf, w = await _link_page_with_one_expected_hold(client, world)
    staff = await client.post(f"/staff/holds/{ref}/arrived", headers=bearer(str(w["staff"])))
    assert staff.status_code == 200, staff.text
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": ref})
    assert r.status_code == 409, r.status_code
    assert 'id="arrival-error"' in r.text


async def test_a_stream_catching_up_a_backlog_keeps_its_queries_small(world: World) -> None:
    """A staff system resumes its hold stream from an old Last-Event-ID (a night offline, an
    admin's stream over every facility). 8f32f3d re-reads ids below the cursor for 30 s and
    excludes those already sent with ``NOT IN (<every id sent in the last 30 s>)``: while it
    catches up, each look sends thousands of parameters more (here 5 000 events give a query
    of ~4 900). The stream slows quadratically (this box: 28 000 instead of 42 000 events in
    28 s on PostgreSQL) and past 32 767 ids in 30 s asyncpg refuses the query: the stream
    fails, reconnects from where it was and fails again."""
    s = await _incoming_holds_setup(world)
    fac = s["fac"]
    async with world.db.write() as ses:
        await ses.execute(
            insert(Event),
            [
                {
                    "at": world.clock.now(),
                    "kind": "hold.created",
                    "facility_id": fac.facility.id,  # type: ignore[attr-defined]
                    "operator_id": s["staff_op"],
                    "payload": {"ref": "not-a-ref", "holdId": i},
                }
                for i in range(5000)
            ],
        )
    biggest = [0]

    def count(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        n = len(params) if isinstance(params, (list, tuple, dict)) else 0
        if "FROM events" in statement:
            biggest[0] = max(biggest[0], n)

    engine = world.db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        actor = Actor(operator_id=s["staff_op"], role="staff")  # type: ignore[arg-type]
        async for _ in hold_event_stream(world.db, actor, world.clock, 0, 4):
            pass
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert biggest[0] < 1000, f"a look sent {biggest[0]} parameters"


async def test_an_arrival_marked_from_a_link_is_never_kept_without_the_link_that_made_it(
    client: AsyncClient, world: World
) -> None:
    """The hold's own audit entry names the role ``link``; which link did it was a second
    entry written in a second transaction after the move had committed. If that write failed
    (a crash, a full disk), the household stood as arrived with no trace of who marked it.
    Now both entries are one transaction: a failing link entry leaves the hold as it was. The
    failure is a real one: a trigger the test adds refuses the link's entry."""
    ref, csrf, w = await _link_page_with_one_expected_hold(client, world)
    refuse = "refused by the test"
    if world.db.sqlite:
        ddl = [
            "CREATE TRIGGER test_refuse_link_entry BEFORE INSERT ON audit_log "
            "WHEN NEW.action = 'staff_link.hold_arrived' "
            f"BEGIN SELECT RAISE(ABORT, '{refuse}'); END"
        ]
        undo = ["DROP TRIGGER test_refuse_link_entry"]
    else:
        ddl = [
            "CREATE FUNCTION test_refuse_link_entry() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.action = 'staff_link.hold_arrived' THEN "
            f"RAISE EXCEPTION '{refuse}'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse_link_entry BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_link_entry()",
        ]
        undo = [
            "DROP TRIGGER test_refuse_link_entry ON audit_log",
            "DROP FUNCTION test_refuse_link_entry()",
        ]
    async with world.db.write() as s:
        for statement in ddl:
            await s.execute(text(statement))
    try:
        r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": ref})
        assert r.status_code >= 500, r.status_code
    finally:
        async with world.db.write() as s:
            for statement in undo:
                await s.execute(text(statement))
    hold = await client.get(f"/holds/{ref}", headers=bearer(str(w["helpline"])))
    assert hold.json()["state"] == "held", hold.json()
    # and once the link's entry can be written, both are there
    r = await client.post("/web/link/arrived", data={"csrf": csrf, "code": ref})
    assert r.status_code == 303, r.status_code
    async with world.db.read() as s:
        actions = (
            await s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.action.in_(["hold.arrived", "staff_link.hold_arrived"])
                )
            )
        ).all()
    assert sorted(actions) == ["hold.arrived", "staff_link.hold_arrived"]


async def test_households_on_their_way_are_listed_soonest_deadline_first(
    client: AsyncClient, world: World
) -> None:
    """With a dozen facilities, the hold with 15 minutes left sat under every newer one, far
    down a phone's screen: the staff page's Incoming and the link page's Expected arrivals
    list them by deadline, soonest first. The API's list stays newest first: its pages
    (``beforeId``) follow the holds' ids."""
    w = await seed_world(world)
    pool_ref = w["ixl"].pools[0].ref  # type: ignore[attr-defined]
    refs = {}
    for minutes in (240, 15, 60):  # made in this order: the newest is not the soonest
        r = await client.post(
            "/holds",
            json={
                "poolRef": pool_ref,
                "need": "ipv",
                "household": {"adults": [{"gender": "female"}]},
                "minutes": minutes,
            },
            headers={**bearer(str(w["helpline"])), "Idempotency-Key": f"soonest-{minutes}"},
        )
        assert r.status_code == 201, r.text
        refs[minutes] = r.json()["ref"]
    staff = str(w["staff"])
    r = await client.get("/staff/holds?state=held", headers=bearer(staff))
    assert [h["ref"] for h in r.json()] == [refs[60], refs[15], refs[240]]  # newest first

    await web_sign_in(client, staff)
    page = (await client.get("/web/staff")).text
    incoming = page.split('id="in-house-live"')[0]
    assert sorted(refs.values(), key=incoming.index) == [refs[15], refs[60], refs[240]]

    client.cookies.clear()
    _, secret = await issue(client, staff, w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert (await open_link(client, secret)).status_code == 303
    page = (await client.get("/web/link")).text
    async with world.db.read() as s:
        ids = {ref: i for ref, i in (await s.execute(select(Hold.ref, Hold.id))).all()}
    shown = [int(i) for i in re.findall(r'id="arriving-(\d+)"', page)]
    assert shown == [ids[refs[15]], ids[refs[60]], ids[refs[240]]]
