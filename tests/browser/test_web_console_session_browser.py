"""A helpline operator on a shared office PC (Debian's Chromium, driven by Playwright): the
console's pages look for news by themselves; what they show must belong to the session, and
operator, that is signed in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import test_web_browser as wb
from tests.browser.test_web_a11y_browser import _police_hold, _release
from tests.browser.test_web_browser import browser, server  # noqa: F401  (module fixtures)
from tests.browser.web_helpers import CSRF

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
    household on a shared screen. It now goes to the sign-in page, which says why."""
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
        page.wait_for_url(f"{base}/web/sign-in?ended=1")
        ended = page.get_by_role("alert")
        assert "Your session has ended" in ended.inner_text()
        assert ref not in page.content()
    finally:
        page.context.close()
        _release(base, token, ref, check=False)
