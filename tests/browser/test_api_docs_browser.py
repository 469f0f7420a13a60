"""The API documentation page (Swagger UI), where admins paste their tokens, in a real Chromium:
it renders and "Try it out" works with every request to another host refused, and the page's
Content-Security-Policy is never violated. Litestar's default page loaded Swagger UI's scripts
and a favicon from a public CDN: whoever controlled what it served could read an admin token,
and with it every secret address."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capacity import migrate
from capacity.settings import Settings
from tests.browser import test_web_browser as wb
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY
from tests.servers import serving

pytestmark = pytest.mark.browser

browser = wb.browser  # the module-scoped Chromium fixture


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from api.app import create_app

    path: Path = tmp_path_factory.mktemp("docs") / "abri.db"
    url = f"sqlite+aiosqlite:///{path}"
    # in a thread: Playwright's sync API may own this thread's event loop
    worker = threading.Thread(target=migrate.upgrade, args=(url,))
    worker.start()
    worker.join()
    settings = Settings(
        database_url=url,
        address_key=TEST_KEY,
        episode_key=TEST_EPISODE_KEY,
        run_jobs=False,
        auto_migrate=False,
        log_level="WARNING",
    )
    with serving(create_app(settings)) as base:
        yield base


def test_the_docs_page_needs_no_other_host(browser: Any, docs_server: str) -> None:
    base = docs_server
    page = wb._page(browser, 1280, 900)
    elsewhere: list[str] = []
    violations: list[str] = []

    def only_here(route: Any) -> None:
        url = route.request.url
        if url.startswith(base) or url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", only_here)
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{base}/schema/swagger")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Abri" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 20  # the operations are drawn
    # Try it out on the liveness probe: the page may call its own API
    block = page.locator("#operations-operations-HealthLiveLive")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    status = block.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert elsewhere == [], elsewhere
    assert violations == [], violations
    wb._shot(page, "api-docs-1280")
