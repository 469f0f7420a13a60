"""/metrics: Prometheus text with request latency by route, searches, holds by outcome, stale
pools and job runs — and no identifier of a facility, pool, hold or household in it."""

from __future__ import annotations

import re

from httpx import AsyncClient

from capacity.commands import PoolCreate
from ops.scheduler import JobContext, JobSpec, run_job
from tests.conftest import World, bearer


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
    assert 'route="/placements/search"' in text and 'route="/holds"' in text
    assert _value(text, "abri_feeds", health="healthy") == 0  # no feed registered here
    for secret in (ref, fac.pools[0].ref, fac.facility.ref, "Refuge M", "Refuges"):
        assert secret not in text
    world.clock.advance(hours=30)  # past every kind's threshold
    assert _value((await client.get("/metrics")).text, "abri_pools_stale") == 1


async def _boom(_ctx: JobContext) -> int:
    raise RuntimeError("a failing job is counted, not fatal")
