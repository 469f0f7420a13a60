"""The task-force dashboard in a real Chromium (Debian's, driven by Playwright): the SVG map and
trend chart render with the API's values, a filter switch changes them, no facility alias or
address on the page. Screenshots at 1280 px and 360 px go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from capacity import migrate, snapshots
from capacity.clock import FrozenClock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.settings import Settings
from tests.browser import test_web_browser as wb
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World, need
from tests.integration.test_web_taskforce import expected_class, seed_taskforce
from tests.servers import serving

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real uvicorn on a loopback port over a SQLite file with the dashboard's seed and four
    hourly snapshots."""

    from api.app import create_app

    path = tmp_path_factory.mktemp("tf") / "abri.db"
    url = f"sqlite+aiosqlite:///{path}"
    settings = Settings(
        database_url=url,
        address_key=TEST_KEY,
        episode_key=TEST_EPISODE_KEY,
        run_jobs=False,
        auto_migrate=False,
        matcher_cache_seconds=0,
        log_level="WARNING",
    )

    async def seed() -> dict[str, Any]:
        db = Database(url)
        try:
            now = datetime.now(UTC)
            world = World(db, FrozenClock(now), AddressCipher([TEST_KEY.encode()]))
            seeded = await seed_taskforce(world)
            for hours in (3, 2, 1, 0):
                await snapshots.take_snapshot(db, settings, now - timedelta(hours=hours))
            return seeded
        finally:
            await db.dispose()

    out: dict[str, Any] = {}

    def prepare() -> None:  # in a thread: Playwright's sync API may own this thread's loop
        migrate.upgrade(url)
        out.update(asyncio.run(seed()))

    worker = threading.Thread(target=prepare)
    worker.start()
    worker.join()
    with serving(create_app(settings)) as base:
        yield {"base": base, **out}


@pytest.fixture(scope="module")
def tf_browser() -> Iterator[Any]:
    if not Path(wb.CHROMIUM).exists() or shutil.which(wb.CHROMIUM) is None:
        need(f"Chromium not found at {wb.CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright (Python package) not installed")
    wb.ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=wb.CHROMIUM, args=wb.ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _api_map(base: str, token: str, **params: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(
        f"{base}/taskforce/saturation/map",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return {f["properties"]["nis"]: f["properties"] for f in r.json()["features"]}


def _no_facility_detail(page: Any, needles: list[str]) -> None:
    content, text = page.content(), page.locator("body").inner_text()
    for needle in needles:
        assert needle not in content and needle not in text, needle
    assert "CANARY" not in content.upper()


def test_taskforce_dashboard_map_chart_filter(tf_browser: Any, tf_server: dict[str, Any]) -> None:
    base, token, needles = tf_server["base"], tf_server["tf"], tf_server["needles"]
    page = wb._page(tf_browser, 1280, 900)
    wb._sign_in(page, base, token)
    assert page.url == f"{base}/web/taskforce"
    assert page.get_by_role("heading", name="Task force dashboard").is_visible()
    # the map: 10 provinces and the Brussels region, classes and figures as the API gives them
    shapes = page.locator("#tf-map path.area")
    assert shapes.count() == 11
    api = _api_map(base, token, level="province")
    for nis in ("60000", "70000", "10000", "90000"):
        shape = page.locator(f'#tf-map path[data-nis="{nis}"]')
        assert shape.get_attribute("data-class") == expected_class(api[nis]), nis
    liege = page.locator('#tf-map path[data-nis="60000"]')
    assert liege.get_attribute("data-class") == "sat-2"
    assert liege.get_attribute("data-saturation") == str(api["60000"]["saturation"])
    assert "69 %" in (liege.locator("title").text_content() or "")
    assert page.locator('#tf-map path[data-nis="70000"]').get_attribute("class") == (
        "area suppressed"
    )
    box = page.locator("#tf-map").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200  # drawn, not collapsed
    # the chart: four hourly points on one polyline
    chart = page.locator("#tf-chart")
    assert chart.get_attribute("data-points") == "4"
    assert page.locator("#tf-chart polyline.trend").count() == 1
    points = page.locator("#tf-chart polyline.trend").get_attribute("points") or ""
    assert len(points.split()) == 4
    # the table: Liège first (highest saturation), suppressed areas shown as such
    assert page.locator("#tf-table tbody tr").first.get_attribute("data-nis") == "60000"
    assert "suppressed" in page.locator('#tf-table tr[data-nis="70000"]').inner_text()
    _no_facility_detail(page, needles)
    wb._shot(page, "taskforce-1280")
    # switch the access filter: one Liège refuge takes undocumented people -> suppressed
    page.get_by_label("Access").select_option("undocumented")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    assert "segment=undocumented" in page.url
    api = _api_map(base, token, level="province", segment="undocumented")
    liege = page.locator('#tf-map path[data-nis="60000"]')
    assert liege.get_attribute("data-class") == expected_class(api["60000"]) == "suppressed"
    _no_facility_detail(page, needles)
    # zoom into Liège province on a phone
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(f"{base}/web/taskforce?province=60000")
    assert page.locator("#tf-map path.area").count() == 4
    assert page.locator('#tf-map path[data-nis="61000"]').get_attribute("data-class") == (
        "suppressed"
    )
    _no_facility_detail(page, needles)
    wb._shot(page, "taskforce-360")
    page.context.close()
