"""The officer's hold page left open on a patrol car's tablet, for a household that already
arrived, when the refuge then reports its location compromised (Debian's Chromium)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.test_web_browser import _page, _sign_in, browser, server

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # the module's own server and browser (module-scoped)


def test_an_open_arrived_hold_page_says_do_not_go_there_by_itself(
    browser: Any, server: dict[str, Any]
) -> None:
    """The page looked for news only while the place was held: an officer whose household
    had arrived kept a page with the refuge's intake phone and handover protocol, and no
    word that its location was compromised, until they reloaded it by hand. It now keeps
    looking while the household is there and draws the warning by itself."""
    base, fac = server["base"], server["ixl"]
    police, staff = (
        {"Authorization": f"Bearer {server['police']}"},
        {"Authorization": f"Bearer {server['staff']}"},
    )
    with httpx.Client(base_url=base, timeout=10) as api:
        r = api.post(
            "/holds",
            headers={**police, "Idempotency-Key": "open-page-arrived-1"},
            json={
                "poolRef": fac.pools[0].ref,
                "need": "ipv",
                "household": {"adults": [{"gender": "female"}], "languages": ["fr"]},
            },
        )
        assert r.status_code == 201, r.text
        ref = r.json()["ref"]
        assert api.post(f"/staff/holds/{ref}/arrived", headers=staff).status_code == 200
        op = _page(browser, 360, 780)
        _sign_in(op, base, server["police"])
        op.goto(f"{base}/web/console/holds/{ref}")
        assert op.locator("#hold-state[data-state='arrived']").count() == 1
        assert op.locator("#do-not-go").count() == 0
        r = api.put(
            f"/staff/facilities/{fac.facility.id}/status",
            headers=staff,
            json={"status": "location_compromised", "reason": "Partner seen outside"},
        )
        assert r.status_code == 200, r.text
    op.locator("#do-not-go").wait_for(timeout=30000)
    assert "do not go there" in op.locator("#do-not-go").inner_text()
    assert "Intake phone" not in op.locator("main").inner_text()
    op.context.close()
