"""rev9 review (diff): defects found reading the session's changes (73dfd4a..main)."""

from __future__ import annotations

from httpx import AsyncClient

from capacity.clock import FrozenClock
from tests.browser.web_helpers import csrf_of, seed_world
from tests.conftest import World, bearer
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
