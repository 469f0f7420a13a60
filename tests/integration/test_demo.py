"""`abri serve --demo`: a realistic Belgian world, one token per role, on a fresh SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from capacity import migrate, registry
from capacity import taskforce_service as tf
from capacity.areas import areas
from capacity.availability import freshness, stale_threshold
from capacity.db import Database
from capacity.models import AuditEntry, Facility, Hold, Pool, SaturationRun, UnmetDemand
from capacity.phones import fixed_line_zone
from capacity.settings import DEFAULT_STALE_MINUTES
from ops.demo import load_demo
from placement import holds_service
from tests.conftest import TEST_KEY, World
from tests.servers import free_port


async def test_demo_world_covers_belgium(world: World) -> None:
    tokens = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    assert set(tokens) == {"admin", "staff", "helpline", "police", "taskforce"}
    views = await registry.list_facilities(world.db)
    assert 55 <= len(views) <= 65
    provinces = {areas().municipality(v.facility.municipality_nis).province_nis for v in views}
    assert len(provinces) == 11  # 10 provinces + Brussels-Capital
    kinds = {v.facility.kind for v in views}
    assert kinds == {"refuge", "crisis_hotel", "cpas_place", "night_shelter", "safe_house"}
    secret = [v.facility.secret_address for v in views]
    assert any(secret) and not all(secret)
    # the demo shows good practice: no secret place gives a landline (capacity.phones)
    assert await registry.secret_landlines(world.db) == []
    assert any(fixed_line_zone(v.facility.intake_phone) for v in views)  # public ones may
    now = world.clock.now()
    stale = [
        v
        for v in views
        for p in v.pools
        if freshness(
            p, threshold_minutes=stale_threshold(v.facility, DEFAULT_STALE_MINUTES), now=now
        ).stale
    ]
    assert stale
    assert {v.facility.status for v in views} >= {"open", "closed_to_admissions", "reduced"}
    full = [p for v in views for p in v.pools if p.units_occupied >= p.units_total]
    free = [p for v in views for p in v.pools if p.units_occupied < p.units_total]
    assert full and free
    for role, tok in tokens.items():
        actor = await registry.authenticate(world.db, tok, now)
        assert actor is not None and actor.role == role


async def test_demo_world_has_a_past_week(world: World, tmp_path: Path) -> None:
    """Closed holds, unmet searches and saturation snapshots over the last 7 days, so the
    task-force pages are not empty; no hold is left active and every pool ends with the same
    counts as a world without a past."""
    await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    now = world.clock.now()
    async with world.db.read() as s:
        holds = (await s.execute(select(Hold.state, Hold.created_at, Hold.household))).all()
        unmet = (await s.scalars(select(UnmetDemand.at))).all()
        runs = (await s.scalars(select(SaturationRun.at).order_by(SaturationRun.at))).all()
    assert len(holds) > 100 and len(unmet) > 14
    assert {h.state for h in holds} == {"arrived", "released", "declined", "expired", "no_show"}
    assert all(now - timedelta(days=7) <= h.created_at < now for h in holds)
    assert all("name" not in str(h.household).lower() for h in holds)  # composition only
    assert len(runs) == 28 and runs[0] >= now - timedelta(days=7, minutes=15)
    assert await holds_service.counters_agree(world.db) == []
    demand = await tf.hold_demand(
        world.db, k=3, level="country", start=now - timedelta(days=7), end=now
    )
    assert demand[0].figures is not None and demand[0].figures["requested"] == len(holds)

    # R28: every hold of that past is in the audit log, as a real one would be
    async with world.db.read() as s:
        past = (
            await s.execute(
                select(Hold.ref, Hold.state, Hold.facility_id, Hold.created_at, Hold.closed_at)
            )
        ).all()
        rows = (
            await s.execute(
                select(
                    AuditEntry.object_id,
                    AuditEntry.action,
                    AuditEntry.at,
                    AuditEntry.actor_role,
                    AuditEntry.facility_id,
                    AuditEntry.actor_token_id,
                ).where(AuditEntry.object_type == "hold")
            )
        ).all()
    by_ref: dict[str, list[Any]] = {}
    for r in rows:
        by_ref.setdefault(r.object_id, []).append(r)
    for h in past:
        created, ended = sorted(by_ref[h.ref], key=lambda r: r.at)
        assert (created.action, created.at, created.facility_id) == (
            "hold.created",
            h.created_at,
            h.facility_id,
        )
        assert created.actor_role in ("helpline", "police")
        assert ended.action == f"hold.{h.state}"
        expected_role = {"expired": "system", "released": created.actor_role}.get(h.state, "staff")
        assert ended.actor_role == expected_role
        if h.closed_at is not None:
            assert ended.at == h.closed_at
    assert any(r.actor_token_id is not None for r in rows)  # the demo tokens acted too

    bare = Database(f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}")
    await asyncio.to_thread(migrate.upgrade, bare.url)
    try:
        await load_demo(bare, cipher=world.cipher, clock=world.clock, history_days=0)

        async def counts(db: Database) -> list[tuple[str, str, int, int]]:
            async with db.read() as s:
                rows = await s.execute(
                    select(Facility.alias, Pool.label, Pool.units_total, Pool.units_occupied)
                    .join(Facility, Facility.id == Pool.facility_id)
                    .order_by(Facility.alias, Pool.label)
                )
                return [tuple(r) for r in rows.all()]

        assert await counts(world.db) == await counts(bare)
    finally:
        await bare.dispose()


def test_serve_demo_starts_and_answers(tmp_path: Path) -> None:
    """The README's first command, minus the install: serve --demo on a fresh directory."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABRI_")}
    env["ABRI_ADDRESS_KEY"] = TEST_KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not become ready")
        assert proc.stdout is not None
        tokens = {}
        while len(tokens) < 5:
            line = proc.stdout.readline().split()
            tokens[line[0]] = line[1]
        r = httpx.get(
            f"{base}/staff/facilities", headers={"Authorization": f"Bearer {tokens['staff']}"}
        )
        assert r.status_code == 200 and len(r.json()) >= 5
        # what the README tells a new user about the demo's staff token and its pool 31
        assert {f["alias"].split()[-1] for f in r.json()} == {
            "WAV-19",
            "NIV-22",
            "SNK-30",
            "ARL-50",
            "MAR-53",
        }
        r = httpx.get(
            f"{base}/staff/pools/31", headers={"Authorization": f"Bearer {tokens['staff']}"}
        )
        assert r.status_code == 200 and r.headers["ETag"] == '"1"'
        r = httpx.get(
            f"{base}/staff/facilities", headers={"Authorization": f"Bearer {tokens['police']}"}
        )
        assert r.status_code == 403
        assert (tmp_path / "abri-demo.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_demo_never_loads_into_the_database_the_environment_names(tmp_path: Path) -> None:
    """README: "`--demo` always uses a fresh `./abri-demo.db` file and never touches
    `./abri.db`". With `ABRI_DATABASE_URL` exported as "Running it for real" says, pointing at
    a SQLite file, `abri serve --demo` loaded its 59 fictional places and five fresh tokens
    (an admin's among them) into that database, as if they were real, and served it. It now
    refuses, like it does for a PostgreSQL URL, and leaves the file alone."""
    real = tmp_path / "abri.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABRI_")}
    env["ABRI_ADDRESS_KEY"] = TEST_KEY
    env["ABRI_DATABASE_URL"] = f"sqlite+aiosqlite:///{real}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(free_port())],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=20)
        raise AssertionError(
            "serve --demo started on the database ABRI_DATABASE_URL names"
        ) from None
    assert proc.returncode == 2
    assert "unset ABRI_DATABASE_URL" in out + err
    assert not real.exists()
    assert not (tmp_path / "abri-demo.db").exists()
