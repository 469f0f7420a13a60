"""A helpline operator on a shared office PC (Debian's Chromium, driven by Playwright): the
console's pages look for news by themselves; what they show must belong to the session, and
operator, that is signed in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import test_web_browser as wb
from tests.browser.test_web_a11y_browser import _police_hold, _release
from tests.browser.test_web_browser import browser, server  # noqa: F401  (module fixtures)
from tests.browser.web_helpers import CSRF, wait_js

pytestmark = pytest.mark.browser


def _csrf(page: Any) -> str:
    m = CSRF.search(page.content())
    assert m, "no CSRF field on the page"
    return m.group(1)


def _sign_out_elsewhere(page: Any, base: str) -> None:
    """Sign out with this browser's cookie (another tab, a colleague), the page left as it is."""
    r = page.context.request.post(f"{base}/web/sign-out", form={"csrf": _csrf(page)})
    assert r.ok, r.status


def test_a_hold_page_whose_session_ended_says_so(
    browser: Any,  # noqa: F811
    server: dict[str, Any],  # noqa: F811
) -> None:
    """The hold page looks every 15 s for news. Once the session had ended (30 minutes without
    the operator doing anything, a sign-out in another tab), each look got the sign-in page,
    found no hold in it and said nothing: the page sat there, frozen, looking live, with the
    household on a shared screen. It now goes to the sign-in page, which says why, and comes
    back to the hold once signed in again."""
    base, token = server["base"], server["police"]
    ref = _police_hold(base, token, server["ixl"].pools[0].ref, "console-session-ended-1")
    page = wb._page(browser)
    try:
        page.clock.install()
        wb._sign_in(page, base, token)
        page.goto(f"{base}/web/console/holds/{ref}")
        assert page.locator("#hold-state").get_attribute("data-state") == "held"
        _sign_out_elsewhere(page, base)
        page.clock.run_for(16000)  # the page's next look
        page.wait_for_url(f"{base}/web/sign-in?ended=1&next=%2Fweb%2Fconsole%2Fholds%2F{ref}")
        ended = page.get_by_role("alert")
        assert "Your session has ended" in ended.inner_text()
        assert ref not in page.inner_text("body")  # (only where to come back to, hidden)
        page.get_by_label("Access token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/web/console/holds/{ref}")
        assert page.locator("#hold-state").get_attribute("data-state") == "held"
    finally:
        page.context.close()
        _release(base, token, ref, check=False)


def test_a_console_left_open_across_a_change_of_operator_does_not_mix_them(
    browser: Any,  # noqa: F811
    server: dict[str, Any],  # noqa: F811
) -> None:
    """A helpline's console, waiting for a place, left open in a tab; the PC's next user signs
    out and in as the police zone in another tab. The old tab's next look for news drew the
    police zone's waiting list under the helpline's page (its name in the header, its forms,
    which were then refused). The page now sees that it was drawn for another session and
    draws itself again for the one signed in."""
    import httpx

    base = server["base"]
    helpline = {"Authorization": f"Bearer {server['helpline']}"}
    nothing = {  # the search finds nothing: every place is in an area to avoid
        "household": {"adults": [{"gender": "female"}]},
        "need": "ipv",
        "avoid": {"arrondissements": ["21000", "12000"]},
    }
    r = httpx.post(
        f"{base}/standing-requests",
        headers={**helpline, "Idempotency-Key": "console-session-changed-1"},
        json={"search": nothing, "minutes": 240},
    )
    assert r.status_code == 201 and r.json()["state"] == "waiting", r.text
    ref = r.json()["ref"]
    page = wb._page(browser)
    try:
        page.clock.install()
        wb._sign_in(page, base, server["helpline"])
        assert page.locator("#standing").get_attribute("data-waiting") == "1"
        assert "Ligne Ecoute" in page.locator(".who").inner_text()
        # another tab: sign out, sign in as the police zone (the same cookie jar)
        _sign_out_elsewhere(page, base)
        signin = page.context.request.get(f"{base}/web/sign-in")
        m = CSRF.search(signin.text())
        assert m
        r2 = page.context.request.post(
            f"{base}/web/sign-in", form={"csrf": m.group(1), "token": server["police"]}
        )
        assert r2.ok
        page.clock.run_for(16000)  # the old tab's next look
        wait_js(page, "/Zone Ixelles/.test(document.querySelector('.who').textContent)")
        assert f"standing-{ref}" not in page.content()
        # its forms are the police zone's session's own: a search is answered, not refused
        page.get_by_label("Adult 1", exact=True).select_option("female")
        page.get_by_label("Need", exact=True).select_option("ipv")
        page.locator("#search-button").click()
        page.wait_for_load_state()
        assert page.locator("#results").count() == 1
    finally:
        page.context.close()
        httpx.post(f"{base}/standing-requests/{ref}/cancel", headers=helpline)
