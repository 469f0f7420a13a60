"""Health, OpenAPI, problem details, request ids, structured logs, PostgreSQL isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from capacity.db import Database
from capacity.settings import Settings
from tests.conftest import World, bearer

ROOT = Path(__file__).resolve().parents[2]


async def abri_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``abri check`` in its own process, as an operator runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api.cli", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


async def test_health_and_openapi(client: AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json()["database"] == "ok"
    r = await client.get("/schema/openapi.json")
    doc = r.json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    put = doc["paths"]["/staff/pools/{pool_id}/availability"]["put"]
    assert {"412", "422", "428"} <= set(put["responses"])
    assert "application/problem+json" in put["responses"]["412"]["content"]
    assert (await client.get("/schema/swagger")).status_code == 200


async def test_ready_reports_a_dead_database(tmp_path, settings, clock) -> None:  # type: ignore[no-untyped-def]
    from httpx import ASGITransport

    from api.app import create_app

    dead = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    app = create_app(settings, db=dead, clock=clock)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/health/ready")
    finally:
        await dead.dispose()  # its driver threads end with this test's event loop
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


async def test_ready_tells_a_schema_left_behind_by_an_upgrade(
    client: AsyncClient, db: Database
) -> None:
    """RUNBOOK, Upgrade: install the new version, `systemctl restart abri-migrate`, restart API
    and worker, then check `/health/ready`. abri-migrate is a one-shot that stays "active":
    restarting only abri-api runs no migration, and the new code met the old schema with
    /health/ready answering 200 ok (it only pinged). It now says the schema is behind (503),
    and notes a schema newer than the code (a rollback without downgrade) without failing."""
    from capacity import migrate

    async with db.read() as s:
        at = await s.scalar(text("SELECT version_num FROM alembic_version"))
    assert at == migrate.head_revision()
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}
    previous = migrate.previous_revision(at)
    try:
        for version, status, said in [
            (previous, 503, f"behind: at {previous}, this version needs {at}"),
            ("9999", 200, f"newer than this version: at 9999, this version knows {at}"),
        ]:
            async with db.write() as s:
                await s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
            r = await client.get("/health/ready")
            assert r.status_code == status, r.text
            assert said in r.json()["schema"]
    finally:
        async with db.write() as s:
            await s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": at})
    assert (await client.get("/health/ready")).status_code == 200


async def test_problem_details_and_request_id(client: AsyncClient, world: World) -> None:
    await world.operator("Admin", "admin")
    tok = await world.token("Admin", "admin")
    r = await client.post(
        "/admin/operators",
        headers={**bearer(tok), "X-Request-ID": "abc-123", "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["requestId"] == "abc-123" and r.headers["x-request-id"] == "abc-123"
    assert set(body) >= {"type", "title", "status", "code", "detail"}
    r = await client.post(
        "/admin/operators", headers=bearer(tok), json={"name": "X", "kind": "spaceship"}
    )
    assert r.status_code == 422 and r.json()["field"] == "kind"
    r = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


async def test_an_unknown_route_or_method_answers_with_a_request_id(client: AsyncClient) -> None:
    """README: every problem carries ``requestId``, to quote when asking for help. A 404 for
    an unknown path and a 405 for a wrong method had none, no X-Request-ID, no log line and no
    ``Cache-Control: no-store``: the request-id middleware ran only once a route matched."""
    for method, path, status in (("GET", "/no/such/route", 404), ("DELETE", "/health/live", 405)):
        r = await client.request(method, path, headers={"X-Request-ID": f"rid-{status}"})
        assert r.status_code == status, r.text
        assert r.json()["requestId"] == f"rid-{status}" == r.headers["x-request-id"]
        assert r.headers["cache-control"] == "no-store"


async def test_json_logs_carry_request_id(db, clock, capsys) -> None:  # type: ignore[no-untyped-def]
    from httpx import ASGITransport

    from api.app import create_app
    from capacity.settings import Settings
    from tests.conftest import TEST_EPISODE_KEY, TEST_KEY

    app = create_app(
        Settings(
            database_url=db.url,
            log_format="json",
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
        ),
        db=db,
        clock=clock,
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        await c.get("/health/live", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    req = [ln for ln in lines if ln.get("event") == "request"]
    assert req and req[-1]["request_id"] == "req-42" and req[-1]["status"] == 200


def test_json_logs_keep_the_traceback_of_a_library_error(capsys) -> None:  # type: ignore[no-untyped-def]
    """With ABRI_LOG_FORMAT=json (production), an error the standard library's loggers report
    with its exception (SQLAlchemy's pool, uvicorn, APScheduler) came out as
    `"exc_info": ["<class 'ConnectionResetError'>", "…", "<traceback object at 0x7f…>"]`:
    no traceback, nothing to act on. It is rendered like our own lines' `exception`."""
    import logging

    from api.logging import configure_logging

    configure_logging("json", "INFO")
    try:
        raise ConnectionResetError("connection reset by peer")
    except ConnectionResetError:
        logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool").error(
            "Exception during reset or similar", exc_info=True
        )
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    line = next(ln for ln in lines if ln["event"] == "Exception during reset or similar")
    assert "traceback object" not in json.dumps(line)
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ConnectionResetError: connection reset by peer" in line["exception"]
    assert line["level"] == "error"


@pytest.mark.postgres
async def test_postgres_write_transactions_run_read_committed(pg_database: str) -> None:
    """The hold gate relies on READ COMMITTED re-checking its WHERE clause after a lock wait;
    someone changing the engine default must break this test, not production."""
    db = Database(pg_database)
    try:
        async with db.write() as s:
            level = (await s.execute(text("SHOW transaction_isolation"))).scalar()
            timeout = (await s.execute(text("SHOW lock_timeout"))).scalar()
    finally:
        await db.dispose()
    assert level == "read committed"
    assert timeout == "2s"


async def test_objects_of_a_started_app_leave_the_cyclic_collector_when_asked(
    db: Database,
    settings,
    clock,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """``ABRI_GC_FREEZE`` (on by default for ``abri serve``): after start-up the long-lived
    objects are frozen, so that the collector's full passes no longer walk them."""
    import dataclasses
    import gc

    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from capacity.settings import Settings

    monkeypatch.delenv("ABRI_GC_FREEZE", raising=False)
    assert Settings.from_env().gc_freeze
    monkeypatch.setenv("ABRI_GC_FREEZE", "0")
    assert not Settings.from_env().gc_freeze
    assert not settings.gc_freeze  # apps built in code (tests) leave the collector alone

    gc.unfreeze()
    try:
        for freeze in (False, True):
            app = create_app(
                dataclasses.replace(settings, gc_freeze=freeze, run_jobs=False), db=db, clock=clock
            )
            async with AsyncTestClient(app=app) as c:
                assert gc.get_freeze_count() > 0 if freeze else gc.get_freeze_count() == 0
                assert (await c.get("/health/live")).status_code == 200
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("route", ["/placements/search", "/holds", "/standing-requests"])
async def test_a_deeply_nested_body_is_the_clients_mistake(
    client: AsyncClient, world: World, route: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON nested thousands deep (a fuzzer, a broken client) is a 400, not an internal error
    with a traceback logged for every such request."""
    await world.operator("Zone Nord", "police")
    police = await world.token("Zone Nord", "police")
    for body in ("[" * 5000 + "]" * 5000, '{"household": ' + "[" * 5000 + "]" * 5000 + "}"):
        r = await client.post(
            route,
            content=body,
            headers={**bearer(police), "Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "bad-request" and "nested" in r.json()["detail"]
    assert "unhandled_error" not in capsys.readouterr().err


async def test_answers_with_addresses_households_or_secrets_are_never_stored_by_a_browser(
    client: AsyncClient, world: World
) -> None:
    """The web pages say ``Cache-Control: no-store``; the API, which admins and staff use from
    Swagger UI ("Authorize" with a token) in the same browsers, did not: a facility's address,
    a household's details or a new token's clear text were left to the browser's disk cache
    (an ordinary 200 without that header may be stored)."""
    from capacity.commands import PoolCreate
    from capacity.crypto import Address

    await world.operator("Abri admins", "admin")
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone Nord", "police")
    admin = bearer(await world.token("Abri admins", "admin"))
    staff = bearer(await world.token("Refuges", "staff"))
    police = bearer(await world.token("Zone Nord", "police"))
    fac = await world.facility(
        "Refuges",
        "R",
        address=Address(street="Rue Cachée 1", postal_code="1000", city="Bruxelles"),
        pools=[PoolCreate(label="B", units_total=5)],
    )
    household = {"adults": [{"gender": "female"}]}
    hold = await client.post(
        "/holds",
        json={"poolRef": fac.pools[0].ref, "need": "ipv", "household": household},
        headers={**police, "Idempotency-Key": "no-store-0001"},
    )
    answers = {
        "address": await client.get(f"/admin/facilities/{fac.facility.id}/address", headers=admin),
        "staff facilities": await client.get("/staff/facilities", headers=staff),
        "staff holds": await client.get("/staff/holds", headers=staff),
        "hold": hold,
        "hold again": await client.get(f"/holds/{hold.json()['ref']}", headers=police),
        "new token": await client.post(
            "/admin/tokens", json={"operator": "Refuges", "role": "staff"}, headers=admin
        ),
    }
    for what, r in answers.items():
        assert r.status_code < 500, (what, r.text)
        assert r.headers.get("cache-control") == "no-store", what


async def test_a_refused_token_is_logged_and_counted_as_a_401_with_its_request_id(
    db: Database, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bearer check answers before the request-id layer sees a response: every refused
    token was logged and counted as a 500 (server errors to alert on, while someone trying
    tokens went unseen as 401s), and the answer had no X-Request-ID to quote."""
    from httpx import ASGITransport

    from api.app import create_app
    from capacity import metrics as m
    from capacity.settings import Settings
    from tests.conftest import TEST_EPISODE_KEY, TEST_KEY

    app = create_app(
        Settings(
            database_url=db.url,
            log_format="json",
            address_key=TEST_KEY,
            episode_key=TEST_EPISODE_KEY,
        ),
        db=db,
        clock=clock,
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        for headers in ({}, {"Authorization": "Bearer abri_not-a-token"}):
            r = await c.get("/staff/facilities", headers={**headers, "X-Request-ID": "req-401"})
            assert r.status_code == 401
            assert r.headers.get("x-request-id") == "req-401" == r.json()["requestId"]
            assert r.headers.get("cache-control") == "no-store"
            assert r.headers["www-authenticate"].startswith("Bearer")
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    req = [ln for ln in lines if ln.get("event") == "request" and ln["request_id"] == "req-401"]
    assert [ln["status"] for ln in req] == [401, 401]
    assert b'route="/staff/facilities",status="500"' not in m.render()


async def test_the_docs_page_loads_nothing_from_another_host(client: AsyncClient) -> None:
    """Admins paste tokens into Swagger UI. Its scripts, stylesheet and favicon came from a
    public CDN: whoever controlled what it served could run code there and read the token. They
    are served by Abri now, and the page's Content-Security-Policy refuses any other host (a
    browser test, tests/browser/test_api_docs_browser.py, renders it with other hosts cut)."""
    r = await client.get("/schema/swagger")
    assert r.status_code == 200
    head = r.text.split("<body", 1)[0]
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)""", head)
    assert len(urls) >= 4 and all(u.startswith("/static/swagger/") for u in urls), urls
    assert "//" not in "".join(urls)
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200 and asset.content, url
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "http" not in csp


async def test_a_body_field_missing_or_unknown_is_named_as_the_client_wrote_it(
    client: AsyncClient, world: World
) -> None:
    """``field`` names the offending field as sent, whatever part of the body it is in: a
    required field left out or an unknown one at the top of the body was reported as
    ``data`` (the handler's parameter), and a missing body as ``data: 'data'``, which a
    client mapping ``field`` onto its own form cannot use."""
    await world.operator("Refuges A", "shelter_operator")
    fac = await world.facility("Refuges A", "Refuge A-1")
    staff = bearer(await world.token("Refuges A", "staff"))
    path = f"/staff/pools/{fac.pools[0].id}/availability"
    h = {**staff, "If-Match": '"1"'}
    r = await client.put(path, headers=h, json={"unitsTotal": 5})
    assert r.status_code == 422 and r.json()["field"] == "unitsOccupied", r.text
    assert r.json()["errors"][0]["field"] == "unitsOccupied"
    r = await client.put(path, headers=h, json={"unitsTotal": 5, "unitsOccupied": 1, "free": 4})
    assert r.status_code == 422 and r.json()["field"] == "free", r.text
    r = await client.put(path, headers=staff | {"If-Match": '"1"'})
    assert r.status_code == 422 and r.json().get("field") is None, r.text
    assert "data" not in r.json()["detail"] and "body" in r.json()["detail"].lower(), r.text
    # nested: the path to the object, then the field
    r = await client.post(
        "/placements/search",
        headers=bearer(await world.token("Refuges A", "helpline")),
        json={"need": "ipv", "household": {"adults": [{"gender": "female"}], "children": [{}]}},
    )
    assert r.status_code == 422 and r.json()["field"] == "household.children[0].age", r.text


async def test_a_required_header_left_out_is_named_in_field(
    client: AsyncClient, world: World
) -> None:
    """A hold sent without its ``Idempotency-Key`` answered ``invalid-input`` with no
    ``field`` and litestar's own sentence ("Missing required header parameter
    'Idempotency-Key' for path /holds"), where the README promises the offending field as the
    client wrote it (``If-Match`` is named so): a requester system showing ``field`` had
    nothing to show."""
    await world.operator("Ligne 1712", "helpline")
    line = bearer(await world.token("Ligne 1712", "helpline"))
    body = {"poolRef": "pool_0123456789ab", "need": "ipv", "household": {"adults": []}}
    r = await client.post("/holds", headers=line, json=body)
    problem = r.json()
    assert r.status_code == 422 and problem["code"] == "invalid-input", r.text
    assert problem["field"] == "Idempotency-Key", r.text
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert problem["detail"] == "Idempotency-Key: The Idempotency-Key header is required."


async def test_the_openapi_document_declares_the_headers_clients_must_read(
    client: AsyncClient, world: World
) -> None:
    """A client generated from the OpenAPI document only exposes the headers it declares: the
    pool's version (``ETag``, to send back as ``If-Match``; also on a 412), ``Retry-After`` on
    every 429 and 503, and ``Location`` of what a POST created. Each is also really sent."""
    doc = (await client.get("/schema/openapi.json")).json()
    paths = doc["paths"]
    for path, method in (
        ("/staff/pools/{pool_id}", "get"),
        ("/staff/pools/{pool_id}/availability", "put"),
        ("/staff/pools/{pool_id}/confirm", "post"),
    ):
        responses = paths[path][method]["responses"]
        assert "ETag" in responses["200"].get("headers", {}), (path, method)
        if method != "get":
            assert "ETag" in responses["412"].get("headers", {}), (path, method)
    for path, ops in paths.items():
        for method, op in ops.items():
            for status in ("429", "503"):
                if status == "503" and op.get("tags") == ["operations"]:
                    continue  # /health/ready: not ready, no time to give
                if status in op["responses"]:
                    assert "Retry-After" in op["responses"][status].get("headers", {}), (
                        path,
                        method,
                        status,
                    )
    for path in ("/holds", "/standing-requests", "/admin/feeds"):
        assert "Location" in paths[path]["post"]["responses"]["201"].get("headers", {}), path
    await world.operator("Refuges A", "shelter_operator")
    fac = await world.facility("Refuges A", "Refuge A-1")
    r = await client.get(
        f"/staff/pools/{fac.pools[0].id}", headers=bearer(await world.token("Refuges A", "staff"))
    )
    assert r.headers["etag"] == f'"{r.json()["version"]}"'


async def test_ready_and_check_tell_a_process_started_with_another_address_key(
    world: World, settings: Settings, db_url: str
) -> None:
    """A process given another installation's ABRI_ADDRESS_KEY (or one regenerated, or the old
    key removed before `abri keys rotate`) answered /health/ready 200 and failed on every
    address read, webhook signature and feed credential: the load balancer kept sending it
    traffic. Readiness now opens the newest stored secret of each kind, and `abri check` every
    one of them, naming those no configured key opens."""
    from cryptography.fernet import Fernet
    from httpx import ASGITransport

    from api.app import create_app
    from capacity.crypto import Address

    await world.operator("Refuges", "shelter_operator")
    fac = await world.facility("Refuges", "R-1", address=Address(street="Canary 1", city="X"))
    other = dataclasses.replace(settings, address_key=Fernet.generate_key().decode())
    # the old key after a new one (a rotation under way) is a right key
    rotating = dataclasses.replace(
        settings, address_key=f"{Fernet.generate_key().decode()},{settings.address_key}"
    )
    for s, status in [(settings, 200), (rotating, 200), (other, 503)]:
        app = create_app(s, db=world.db, clock=world.clock)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/health/ready")
        assert r.status_code == status, r.text
        if status == 503:
            assert r.json()["database"] == "ok" and "wrong" in r.json()["addressKey"], r.text
        else:
            assert "addressKey" not in r.json()

    for key, code in [(settings.address_key, 0), (other.address_key, 1)]:
        env = {**os.environ, "ABRI_DATABASE_URL": db_url, "ABRI_ADDRESS_KEY": str(key)}
        r = await abri_check(env)
        assert r.returncode == code, r.stderr
        if code:
            assert f"opens 1 stored secret(s) (facility_addresses {fac.facility.id})" in r.stderr
        else:
            assert "address key opens every stored secret" in r.stderr


async def test_check_fails_on_a_schema_behind_this_version(world: World, db_url: str) -> None:
    """After an upgrade whose migrations did not run, or a restored backup from before it,
    `/health/ready` said "behind" but `abri check` — the RUNBOOK's check after an upgrade or a
    restore — said "counters agree" and exited 0. It now says the schema is behind and fails."""
    from sqlalchemy import text

    from capacity.migrate import head_revision, previous_revision

    head = head_revision()
    older = previous_revision(head)
    assert older is not None

    async def stamp(revision: str) -> None:
        async with world.db.write() as s:
            await s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

    env = {**os.environ, "ABRI_DATABASE_URL": db_url}
    await stamp(older)  # as after `pip install` of a new version without `abri db upgrade`
    try:
        r = await abri_check(env)
    finally:
        await stamp(head)
    assert r.returncode == 1, r.stderr
    assert f"schema: behind: at {older}" in r.stderr and "abri db upgrade" in r.stderr


async def test_an_options_request_is_authenticated_like_any_other(
    client: AsyncClient, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """OPTIONS skipped the bearer check (litestar's default) but not the role guards, which
    then found no caller: every OPTIONS on an API route was a 500 with a traceback logged,
    so anyone without a token could fill the error log and the 5xx alert. It is now a 401
    without a token, a 403 for another role, and the allowed methods for the right one."""
    await world.operator("Zone Nord", "police")
    police = await world.token("Zone Nord", "police")
    for path in ("/holds", "/staff/facilities", "/admin/tokens", "/taskforce/saturation"):
        r = await client.options(path)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["code"] == "unauthenticated"
    r = await client.options("/admin/tokens", headers=bearer(police))
    assert r.status_code == 403, r.text
    r = await client.options("/holds", headers=bearer(police))
    assert r.status_code == 204 and "POST" in r.headers["allow"], r.text
    assert (await client.options("/health/live")).status_code == 204  # public stays public
    assert "unhandled_error" not in capsys.readouterr().err


async def test_every_kind_of_answer_tells_the_browser_not_to_guess_its_type(
    client: AsyncClient, world: World
) -> None:
    """Only the web pages said `X-Content-Type-Options: nosniff`; the API's JSON and CSV
    answers, the static files, health and the problem answers did not, so a browser could
    guess a CSV or a JSON answer to be a page or a script. Every answer says it now, once."""
    await world.operator("Task force", "taskforce")
    tf = await world.token("Task force", "taskforce")
    for path, headers in [
        ("/health/live", {}),
        ("/static/abri.js", {}),
        ("/no/such/path", {}),
        ("/taskforce/saturation?level=province", bearer(tf)),
        ("/taskforce/saturation?level=province&format=csv", bearer(tf)),
        ("/holds", {}),  # 401
        ("/web/sign-in", {}),
        ("/schema/openapi.json", {}),
    ]:
        r = await client.get(path, headers=headers)
        said = r.headers.get_list("x-content-type-options")
        assert said == ["nosniff"], (path, r.status_code, said)


async def test_a_database_that_cannot_write_is_a_503_that_says_so_not_a_500(
    client: AsyncClient, world: World, db: Database
) -> None:
    """SQLite's disk full (or a read-only file) and PostgreSQL's read-only transactions (a
    standby mid-failover, SQLSTATE 25006; disk full is 53100) answered `500 internal` with a
    traceback: the SDK and the console retry only a 503, and the operators' log said
    "unhandled". It is `503 database-unavailable` now, nothing saved, and the log names the
    cause for whoever is alerted."""
    from sqlalchemy import event
    from structlog.testing import capture_logs

    from tests.browser.web_helpers import post_form

    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    fac = await world.facility("Refuges", "R-1")
    police = await world.token("Zone", "police")
    staff = await world.token("Refuges", "staff")
    body = {
        "poolRef": fac.pools[0].ref,
        "need": "ipv",
        "household": {"adults": [{"gender": "female"}]},
    }
    if db.sqlite:
        # every new connection finds its file read-only (as on a read-only mount)
        def full(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only = 1")
            cur.close()

        event.listen(db.write_engine.sync_engine, "connect", full)
    else:
        name = db.write_engine.url.database
        async with db.write_engine.connect() as conn:
            await conn.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
            await conn.commit()
    await db.write_engine.dispose()
    try:
        with capture_logs() as logs:
            r = await client.post(
                "/holds", json=body, headers={**bearer(police), "Idempotency-Key": "full-disk-1"}
            )
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database-unavailable" and r.headers["retry-after"], r.text
        said = [e for e in logs if e["event"] == "database_storage_refused"]
        assert said and said[0]["reason"] in ("full", "read-only"), logs
        assert not [e for e in logs if e["event"] == "unhandled_error"], logs
        # a web form gets a page in the user's language, not the API's problem JSON
        client.headers["Accept-Language"] = "fr"
        r = await post_form(client, "/web/sign-in", "/web/sign-in", {"token": staff})
        assert r.status_code == 303, r.text  # signing in reads only
        r = await post_form(
            client,
            "/web/staff",
            f"/web/staff/facilities/{fac.facility.id}/status",
            {"status": "closed_to_admissions", "reason": "Travaux"},
        )
        assert r.status_code == 503 and r.headers["content-type"].startswith("text/html"), r.text
        assert "Réessayez dans un instant" in r.text and "rien n&#39;a été enregistré" in r.text
    finally:
        if db.sqlite:
            event.remove(db.write_engine.sync_engine, "connect", full)
        else:
            async with db.write_engine.connect() as conn:
                await conn.execute(text("SET TRANSACTION READ WRITE"))
                await conn.execute(
                    text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
                )
                await conn.commit()
        await db.write_engine.dispose()
    r = await client.post(
        "/holds", json=body, headers={**bearer(police), "Idempotency-Key": "full-disk-1"}
    )
    assert r.status_code == 201, r.text  # nothing was half-written: the same key holds now


def test_a_full_sqlite_disk_is_told_apart_from_other_errors() -> None:
    """SQLite's own "database or disk is full" (here: a file that may not grow), as the
    request path meets it, is a storage refusal; other errors are not."""
    import sqlite3

    from capacity.db import storage_refused

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert storage_refused(full.value) == "full"
    with pytest.raises(sqlite3.OperationalError) as other:
        conn.execute("SELECT nope FROM t")
    assert storage_refused(other.value) is None
