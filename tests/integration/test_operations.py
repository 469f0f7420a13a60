"""Operators' side: what the runbook tells administrators to do keeps working."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from api.app import create_app
from api.cli import main
from capacity import registry
from capacity.audit import CLI
from capacity.models import Facility
from capacity.settings import Settings
from tests.browser.web_helpers import seed_world, web_sign_in
from tests.conftest import TEST_KEY, World, bearer
from tests.integration.test_staff_links import issue, open_link
from tests.servers import free_port


async def test_rotating_the_address_key_as_the_runbook_says_keeps_web_sessions(
    world: World, settings: Settings
) -> None:
    """RUNBOOK "Address key": put a new key first (old after it), restart, `abri keys rotate`,
    remove the old key, restart. The session cookies are signed with a key derived from the
    address key; a night worker's one-time link cannot be opened a second time, so if the
    restart with the new key first dropped every session, night workers would be locked out
    until someone issued new links (and every staff member signed out mid-shift)."""
    w = await seed_world(world)
    old = settings.address_key
    assert old is not None
    new = Fernet.generate_key().decode()

    def client_for(address_key: str) -> httpx.AsyncClient:
        app = create_app(
            dataclasses.replace(settings, address_key=address_key), db=world.db, clock=world.clock
        )
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://abri.be")

    before = client_for(old)
    r, secret = await issue(before, str(w["staff"]), w["ixl"].facility.id)  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
    assert (await open_link(before, secret)).status_code == 303
    assert (await web_sign_in(before, str(w["staff"]))).status_code == 303
    # one browser each: the night worker's link session and a coordinator's staff session
    night = client_for(old)
    night.cookies = httpx.Cookies()
    _, secret2 = await issue(before, str(w["staff"]), w["ixl"].facility.id, label="Night 2")
    assert (await open_link(night, secret2)).status_code == 303
    assert (await night.get("/web/link")).status_code == 200
    assert (await before.get("/web/staff")).status_code == 200

    # Step 1: the new key first, the old one after it; every process restarted.
    during = client_for(f"{new},{old}")
    during.cookies = night.cookies
    assert (await during.get("/web/link")).status_code == 200, "night worker signed out"
    staff_during = client_for(f"{new},{old}")
    staff_during.cookies = before.cookies
    assert (await staff_during.get("/web/staff")).status_code == 200, "staff signed out"

    # Step 3: the old key removed, restarted again: sessions used meanwhile still work.
    after = client_for(new)
    after.cookies = during.cookies
    assert (await after.get("/web/link")).status_code == 200
    for c in (before, night, during, staff_during, after):
        await c.aclose()


async def test_a_failed_restore_or_backup_says_why_instead_of_a_traceback(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`abri restore` into a database that is not empty (the runbook: "into an empty
    database"; e.g. abri-migrate.service ran on it first) fails, as it should, but the operator
    saw a Python traceback ending in "pg_restore ... returned non-zero exit status 1", without
    pg_restore's own message (its stderr was captured and dropped). On SQLite, a mistyped path
    in ABRI_DATABASE_URL made `abri backup` create an empty database there and report success."""
    await world.operator("Refuges", "shelter_operator")
    file = tmp_path / "abri.backup"
    monkeypatch.setenv("ABRI_DATABASE_URL", world.db.url)
    assert await asyncio.to_thread(main, ["backup", str(file)]) == 0
    capsys.readouterr()
    # into the same, non-empty database
    assert await asyncio.to_thread(main, ["restore", str(file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
    if not world.db.sqlite:
        assert "is not empty" in err  # said before pg_restore stumbles on its first clash
    assert await asyncio.to_thread(main, ["restore", str(tmp_path / "missing.backup")]) == 2
    assert "no such file" in capsys.readouterr().err
    if world.db.sqlite:
        typo = tmp_path / "abri-typo.db"
        monkeypatch.setenv("ABRI_DATABASE_URL", f"sqlite+aiosqlite:///{typo}")
        assert await asyncio.to_thread(main, ["backup", str(tmp_path / "b2.backup")]) == 2
        assert "no such database file" in capsys.readouterr().err
        assert not typo.exists() and not (tmp_path / "b2.backup").exists()


async def test_the_job_metrics_the_runbook_says_to_watch_can_be_scraped_from_the_worker(
    world: World, tmp_path: Path
) -> None:
    """RUNBOOK "Metrics": watch `abri_job_runs_total{outcome="failed"}`. In the documented
    deployment the jobs run in `abri worker` (ABRI_RUN_JOBS=0 on the API), whose counters live
    in the worker's process: the API's /metrics never had a sample of them, and the worker
    served none. The worker now serves them (ABRI_WORKER_METRICS)."""
    port = free_port()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "ABRI_DATABASE_URL": world.db.url,
        "ABRI_ADDRESS_KEY": TEST_KEY,
        "ABRI_LOG_FORMAT": "json",
        "ABRI_AUTO_MIGRATE": "0",
        "ABRI_WORKER_POLL_SECONDS": "0.3",
        "ABRI_WORKER_METRICS": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real worker process
        [sys.executable, "-c", "from api.cli import main; raise SystemExit(main(['worker']))"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        text = ""
        for _ in range(200):
            await asyncio.sleep(0.1)
            try:
                async with httpx.AsyncClient() as c:
                    text = (await c.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                continue
            if 'abri_job_runs_total{job="expire_holds",outcome="ok"}' in text:
                break
        assert 'abri_job_runs_total{job="expire_holds",outcome="ok"}' in text, log.read_text()
        assert 'abri_job_last_success_timestamp_seconds{job="expire_holds"}' in text, text
        assert "abri_pools_stale" not in text  # the API's gauges are the API's
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def test_a_spreadsheets_empty_rows_do_not_reject_the_csv_import(
    client: httpx.AsyncClient, world: World
) -> None:
    """Spreadsheets save rows that were once used (or merely formatted) as ",,,,,,,,": the import
    rejected the whole file for them ("row 5: Object missing required field `operator`"). An
    empty row is skipped like a blank line; row numbers of real errors stay those of the sheet."""
    from tests.integration.test_admin_api import GOOD_CSV, _admin

    h = {**bearer(await _admin(world)), "Content-Type": "text/csv"}
    padded = GOOD_CSV + ",,,,,,,,\n" + " , ,,,,,,,\n"
    r = await client.post("/admin/facilities/import", headers=h, content=padded.encode())
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 3
    bad = GOOD_CSV.replace("Nuit N-3,35013,night_shelter", "Nuit N-3,35013,no_template")
    r = await client.post(
        "/admin/facilities/import",
        headers=h,
        content=bad.replace("Refuges A,Refuge R-2", "\n,,,,,,,,\nRefuges A,Refuge R-2").encode(),
    )
    assert r.status_code == 422
    assert [e["row"] for e in r.json()["errors"]] == [6]  # header 1, H-1 2, empty 3 and 4...


async def test_patching_a_facility_can_make_a_temporary_scheme_permanent(
    client: httpx.AsyncClient, world: World
) -> None:
    """A requisitioned hotel kept for good: the admin clears its planned end with
    `PATCH {"plannedEnd": null}`. That answered 200 and changed nothing (null was read as "not
    given"), so the place still dropped out of every search at its old planned end. Leaving a
    field out still keeps it."""
    from tests.integration.test_admin_api import _admin

    admin = bearer(await _admin(world))
    now = world.clock.now()
    fac = await world.facility(
        "Refuges A",
        "Hotel H",
        kind="crisis_hotel",
        planned_end=now + timedelta(days=10),
        stale_after_minutes=60,
    )
    fid = fac.facility.id
    r = await client.patch(f"/admin/facilities/{fid}", json={"alias": "Hotel H2"}, headers=admin)
    assert r.status_code == 200, r.text
    async with world.db.read() as s:
        row = await s.get(Facility, fid)
        assert row is not None and row.planned_end is not None and row.alias == "Hotel H2"
    r = await client.patch(
        f"/admin/facilities/{fid}",
        json={"plannedEnd": None, "staleAfterMinutes": None},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    async with world.db.read() as s:
        row = await s.get(Facility, fid)
        assert row is not None
        assert row.planned_end is None and row.stale_after_minutes is None
        assert row.extensions in (0, None)  # made permanent: not an extension


async def test_keys_rotate_without_the_old_key_says_what_to_do_and_token_list_shows_expiry(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`abri keys rotate` run with the new key alone (the old one dropped too early) ended in a
    `cryptography.fernet.InvalidToken` traceback; it now says which key is missing and exits 2.
    `abri token list` showed an expired token as "active"."""
    from capacity.crypto import Address

    await world.operator("Refuges", "shelter_operator")
    await world.facility("Refuges", "Refuge R", address=Address(street="Rue 9", city="Namur"))
    await registry.create_token(
        world.db,
        operator="Refuges",
        role="staff",
        actor=CLI,
        now=world.clock.now(),
        expires_at=world.clock.now() + timedelta(hours=1),
    )
    monkeypatch.setenv("ABRI_DATABASE_URL", world.db.url)
    monkeypatch.setenv("ABRI_ADDRESS_KEY", Fernet.generate_key().decode())
    assert await asyncio.to_thread(main, ["keys", "rotate"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ABRI_ADDRESS_KEY" in err
    assert await asyncio.to_thread(main, ["token", "list"]) == 0  # real clock: long expired
    out = capsys.readouterr().out
    assert "\texpired" in out and "\tactive" not in out
