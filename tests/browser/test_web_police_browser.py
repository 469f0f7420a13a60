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


def test_back_to_the_form_keeps_the_areas_to_avoid(
    browser: Any,  # noqa: F811
    server: dict[str, Any],  # noqa: F811
) -> None:
    """Back from the results (or from the browser's error page after a send lost in a network
    blip), Chromium filled the form in again (the household, the languages) but not the areas
    or the callback: fields with autocomplete=off are never restored. The officer saw a form
    that looked complete and searched again without the partner's municipality avoided. They
    come back as typed now."""
    base = server["base"]
    page = wb._page(browser, *PHONE)
    try:
        wb._sign_in(page, base, server["police"])
        page.get_by_label("Adult 1", exact=True).select_option("female")
        page.get_by_label("Child 1: age", exact=True).fill("14")
        page.get_by_label("Child 2: age").fill("3")
        page.get_by_label("Area to avoid 1").fill("Mechelen (12025)")
        page.get_by_label("Preferred area").fill("Ixelles (21009)")
        page.get_by_label("How the shelter can reach you (name, phone)").fill("INP 0470 12 34 56")
        page.locator("#search-button").click()
        page.wait_for_load_state()
        assert "Refuge Nord" not in page.locator("#results").inner_text()
        page.go_back()
        page.wait_for_load_state()
        assert page.url.endswith("/web/console")
        assert page.locator("#child0_age").input_value() == "14"  # the browser's own restoring
        assert page.locator("#avoid0").input_value() == "Mechelen (12025)"
        assert page.locator("#preferred").input_value() == "Ixelles (21009)"
        assert page.locator("#callback").input_value() == "INP 0470 12 34 56"
        # the send lost in a network blip, then Back from the browser's error page
        page.get_by_label("Area to avoid 2").fill("Schaerbeek (21015)")
        page.context.set_offline(True)
        try:
            page.locator("#search-button").click()
            page.wait_for_load_state()
        finally:
            page.context.set_offline(False)
        page.go_back()
        page.wait_for_load_state()
        assert page.locator("#avoid0").input_value() == "Mechelen (12025)"
        assert page.locator("#avoid1").input_value() == "Schaerbeek (21015)"
        # a new household starts empty, whatever was kept for the last one
        page.locator("#new-household").click()
        page.wait_for_load_state()
        assert page.locator("#avoid0").input_value() == ""
        page.reload()
        page.wait_for_load_state()
        assert page.locator("#avoid0").input_value() == ""
    finally:
        page.context.close()
