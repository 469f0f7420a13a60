"""/metrics: Prometheus text with request latency by route, searches, holds by outcome, stale
pools and job runs — and no identifier of a facility, pool, hold or household in it."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from capacity.commands import PoolCreate
from capacity.db import Database
from capacity.settings import Settings
from ops.scheduler import JobContext, JobSpec, run_job
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World, bearer

ROOT = Path(__file__).resolve().parents[2]


def _value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name} {labels} not in metrics"
    return float(found.group(1))


async def test_metrics_count_what_operations_need_and_no_identifiers(
    client: AsyncClient, world: World
) -> None:
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone", "police")
    fac = await world.facility(
        "Refuges", "Refuge M", pools=[PoolCreate(label="Beds", units_total=1)]
    )
    police = await world.token("Zone", "police")
    before = (await client.get("/metrics")).text
    searches = 0.0
    if "abri_searches_total{" in before and 'outcome="found"' in before:
        searches = _value(before, "abri_searches_total", requester_kind="police", outcome="found")

    body = {"household": {"adults": [{"gender": "female"}]}, "need": "ipv"}
    r = await client.post("/placements/search", json=body, headers=bearer(police))
    assert r.status_code == 200 and r.json()["options"]
    hold = {"poolRef": fac.pools[0].ref, "need": "ipv", "household": body["household"]}
    r = await client.post(
        "/holds", json=hold, headers={**bearer(police), "Idempotency-Key": "metrics-hold-1"}
    )
    assert r.status_code == 201
    ref = r.json()["ref"]
    r = await client.post(
        "/holds", json=hold, headers={**bearer(police), "Idempotency-Key": "metrics-hold-2"}
    )
    assert r.status_code == 409
    ctx = JobContext(world.db, world.clock, None, None)  # type: ignore[arg-type]
    await run_job(JobSpec("unit_test_job", _boom, 60), ctx)
    await run_job(JobSpec("unit_test_job_ok", _fine, 60), ctx)
    ran_at = world.clock.now().timestamp()
    world.clock.advance(minutes=5)
    await run_job(JobSpec("unit_test_job_ok", _boom, 60), ctx)  # a failure leaves it as it was

    r = await client.get("/metrics")  # public path: scraped without a token
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _value(text, "abri_searches_total", requester_kind="police", outcome="found") == (
        searches + 1
    )
    assert _value(text, "abri_hold_attempts_total", outcome="granted") >= 1
    assert _value(text, "abri_hold_attempts_total", outcome="no_longer_free") >= 1
    assert _value(text, "abri_holds_active") == 1
    assert _value(text, "abri_pools") == 1
    assert _value(text, "abri_pools_stale") == 0  # reported at creation, on the frozen clock
    assert _value(text, "abri_job_runs_total", job="unit_test_job", outcome="failed") >= 1
    # when each job last succeeded: an alert on it sees a job that hangs or keeps failing
    assert _value(text, "abri_job_last_success_timestamp_seconds", job="unit_test_job_ok") == (
        ran_at
    )
    assert 'abri_job_last_success_timestamp_seconds{job="unit_test_job"}' not in text
    assert 'route="/placements/search"' in text and 'route="/holds"' in text
    assert _value(text, "abri_feeds", health="healthy") == 0  # no feed registered here
    for secret in (ref, fac.pools[0].ref, fac.facility.ref, "Refuge M", "Refuges"):
        assert secret not in text
    world.clock.advance(hours=30)  # past every kind's threshold
    assert _value((await client.get("/metrics")).text, "abri_pools_stale") == 1


async def _fine(_ctx: JobContext) -> int:
    return 0


async def _boom(_ctx: JobContext) -> int:
    raise RuntimeError("a failing job is counted, not fatal")


async def test_gauges_say_unknown_when_the_database_does_not_answer(
    client: AsyncClient, world: World, db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The gauges are process-wide: when a scrape cannot read the database, they kept the
    figures of the last scrape that could (no stale pool, no failing feed, holds in progress),
    so an alert on ``abri_pools_stale`` or ``abri_feeds_alerting`` stayed quiet for as long as
    the outage lasted. They read NaN (unknown) instead until the database answers again."""
    await world.operator("Refuges", "shelter_operator")
    await world.facility("Refuges", "Refuge N", pools=[PoolCreate(label="Beds", units_total=2)])
    assert _value((await client.get("/metrics")).text, "abri_pools") == 1

    if db_url.startswith("sqlite"):
        gone = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'abri.db'}"
    else:  # a database that does not exist on the same server
        gone = db_url.rsplit("/", 1)[0] + "/abri_no_such_database"
    broken = Database(gone)
    app = create_app(settings, db=broken, clock=world.clock)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://testserver"
        ) as down:
            r = await down.get("/metrics")
        assert r.status_code == 200  # metrics still answer
        for name, labels in [
            ("abri_pools", {}),
            ("abri_pools_stale", {}),
            ("abri_holds_active", {}),
            ("abri_standing_requests_waiting", {}),
            ("abri_feeds_alerting", {}),
            ("abri_feeds", {"health": "healthy"}),
        ]:
            assert math.isnan(_value(r.text, name, **labels)), name
    finally:
        await broken.dispose()
    # the database answers again: so do the gauges
    assert _value((await client.get("/metrics")).text, "abri_pools") == 1


#: Two API processes of one host sharing PROMETHEUS_MULTIPROC_DIR (the systemd unit's shape),
#: played in one interpreter by switching the process identity prometheus-client files under:
#: one scraped while the database answered, then one scraped while it did not.
_TWO_PROCESSES = r"""
import asyncio, sys
from prometheus_client import values

healthy, down, broken_url, key, episode_key = sys.argv[1:6]
first, second = (healthy, down) if sys.argv[6] == "healthy-first" else (down, healthy)
pid = [int(first)]
values.ValueClass = values.MultiProcessValue(lambda: pid[0])

from httpx import ASGITransport, AsyncClient
from api.app import create_app
from capacity import metrics as m
from capacity.db import Database
from capacity.settings import Settings

def scraped(n):  # what a scrape that read the database sets
    for gauge in (m.POOLS_TOTAL, m.POOLS_STALE, m.HOLDS_ACTIVE, m.STANDING_WAITING):
        gauge.set(n)
    for health in ("healthy", "failing", "circuit_open"):
        m.FEEDS.labels(health).set(n)
    m.FEEDS_ALERTING.set(n)

for p in (first, second):  # each process scraped once while the database answered
    pid[0] = int(p)
    scraped(3)

async def outage():
    pid[0] = int(down)  # this process is scraped now, and its database read fails
    settings = Settings(database_url=broken_url, address_key=key, episode_key=episode_key,
                        run_jobs=False)
    db = Database(broken_url)
    try:
        app = create_app(settings, db=db)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/metrics")
        assert r.status_code == 200, r.status_code
        sys.stdout.write(r.text)
    finally:
        await db.dispose()

asyncio.run(outage())
"""


@pytest.mark.parametrize("order", ["healthy-first", "down-first"])
@pytest.mark.parametrize("pids", [("1001", "2002"), ("2002", "1001")])
def test_gauges_say_unknown_across_api_processes(
    tmp_path: Path, order: str, pids: tuple[str, str]
) -> None:
    """With several API processes (``abri serve --workers 2``, the systemd unit) the gauges are
    aggregated over the processes' files. As ``livemax`` the NaN of the process whose database
    read failed lost (or won) against the other process's last figures by the order the files
    were read in: an outage still showed no stale pool and no alerting feed. The gauge of the
    latest scrape is what counts (each scrape reads the database afresh)."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    healthy, down = pids
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    env.update(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PYTHONPATH=str(ROOT))
    broken = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'abri.db'}"
    args = [healthy, down, broken, TEST_KEY, TEST_EPISODE_KEY, order]
    done = subprocess.run(
        [sys.executable, "-c", _TWO_PROCESSES, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name, labels in [
        ("abri_pools", {}),
        ("abri_pools_stale", {}),
        ("abri_holds_active", {}),
        ("abri_standing_requests_waiting", {}),
        ("abri_feeds_alerting", {}),
        ("abri_feeds", {"health": "healthy"}),
    ]:
        assert math.isnan(_value(done.stdout, name, **labels)), (name, done.stdout)
