"""`abri serve --demo`: a realistic Belgian world, one token per role, on a fresh SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from capacity import registry
from capacity.areas import areas
from capacity.availability import freshness, stale_threshold
from capacity.settings import DEFAULT_STALE_MINUTES
from ops.demo import load_demo
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
        r = httpx.get(
            f"{base}/staff/facilities", headers={"Authorization": f"Bearer {tokens['police']}"}
        )
        assert r.status_code == 403
        assert (tmp_path / "abri-demo.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
