"""A police officer at night, on a phone in a patrol car (Debian's Chromium, driven by
Playwright): what the console shows about a held place must be what Abri holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser import test_web_browser as wb
from tests.browser.test_web_a11y_browser import _police_hold, _release
from tests.browser.test_web_browser import browser, server  # noqa: F401  (module fixtures)
from tests.browser.web_helpers import wait_js

pytestmark = pytest.mark.browser

PHONE = (390, 844)


def test_time_left_is_abris_not_the_devices_clock(
    browser: Any,  # noqa: F811
    server: dict[str, Any],  # noqa: F811
) -> None:
    """The countdown and "N min left" were worked out from the device's own clock: a patrol
    car's tablet 12 minutes slow showed a 60-minute hold as 72 minutes left, and the officer
    drove on believing the place was kept for longer than it was. They now count from Abri's
    time, given with the page."""
    base, token = server["base"], server["police"]
    ref = _police_hold(base, token, server["ixl"].pools[0].ref, "police-clock-skew-1")
    page = wb._page(browser, *PHONE)
    try:
        page.clock.install(time=datetime.now(UTC) - timedelta(minutes=12))  # 12 min slow
        wb._sign_in(page, base, token)
        left = page.locator(f'a[href="/web/console/holds/{ref}"] ~ [data-min-left]')
        page.clock.run_for(16000)  # the script's next tick has redrawn it
        assert left.inner_text() in ("90 min left", "89 min left"), left.inner_text()
        page.goto(f"{base}/web/console/holds/{ref}")
        page.clock.run_for(2000)
        wait_js(page, "/^[0-9]+:[0-9]{2}$/.test(document.getElementById('countdown').textContent)")
        minutes = int(page.locator("#countdown").inner_text().split(":")[0])
        assert minutes in (88, 89), page.locator("#countdown").inner_text()
    finally:
        page.context.close()
        _release(base, token, ref, check=False)
