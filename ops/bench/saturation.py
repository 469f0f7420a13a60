"""Saturation time-series benchmark (issue 5, item 3): one year of downsampled snapshots,
every province queried at once. Target: < 200 ms on SQLite and PostgreSQL (printed, not
asserted).

    python -m ops.bench.saturation                 # both databases
    python -m ops.bench.saturation --only sqlite --repeat 20

A scratch database gets one year of runs as the downsampling keeps them (15-min points for 7
days, hourly for 90 days, daily beyond: ~2,900 runs) with, per run, every area at every level
for all kinds and all segments, plus every province per kind (124 cells per run; a real
cube stores more, other levels and segments, which the series index skips). Then
``taskforce_service.series(level=province)`` for the whole year is timed, with the JSON
encoding of the API answer (``SeriesReport``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import insert

from api.taskforce.schemas import AreaSeries, SeriesReport, point_read, tf_area
from capacity import snapshots
from capacity import taskforce_service as tf
from capacity.db import Database
from capacity.models import SaturationRun, SaturationSnapshot
from capacity.saturation import KINDS
from ops.bench import _harness as h

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def year_of_runs(now: datetime) -> list[datetime]:
    slots = [now - timedelta(minutes=15 * i) for i in range(365 * 96)]
    drop = set(snapshots.thin(slots, now))
    return sorted(t for t in slots if t not in drop)


def cells_for(at: datetime, rnd: random.Random) -> list[dict[str, Any]]:
    rows = []
    targets = [("country", "BE", "all")]
    targets += [
        (lvl, nis, "all")
        for lvl in ("region", "province", "arrondissement")
        for nis in tf.areas_at(lvl)
    ]
    targets += [("province", nis, kind) for nis in tf.areas_at("province") for kind in KINDS]
    for level, nis, kind in targets:
        cap = rnd.randint(20, 400)
        occ = rnd.randint(0, cap)
        suppressed = rnd.random() < 0.05
        rows.append(
            {
                "at": at,
                "level": level,
                "nis": nis,
                "kind": kind,
                "segment": "all",
                "suppressed": suppressed,
                "facilities": None if suppressed else rnd.randint(3, 40),
                "capacity": None if suppressed else cap,
                "occupied": None if suppressed else occ,
                "held": None if suppressed else 0,
                "free": None if suppressed else cap - occ,
                "fresh": None if suppressed else cap,
                "stale": None if suppressed else 0,
                "closed": None if suppressed else 0,
                "blocked": None if suppressed else 0,
                "surge_24h": None if suppressed else 0,
                "surge_72h": None if suppressed else 0,
            }
        )
    return rows


async def load(db: Database) -> tuple[int, int]:
    rnd = random.Random(5)
    runs = year_of_runs(NOW)
    batch: list[dict[str, Any]] = []
    n_cells = 0
    for i, at in enumerate(runs):
        batch += cells_for(at, rnd)
        if len(batch) >= 20_000 or i == len(runs) - 1:
            async with db.write() as s:
                await s.execute(insert(SaturationSnapshot), batch)
            n_cells += len(batch)
            batch = []
    async with db.write() as s:
        await s.execute(insert(SaturationRun), [{"at": t, "k": 3, "cells": 124} for t in runs])
    return len(runs), n_cells


async def query_once(db: Database, resolution: str = "auto") -> tuple[float, float, int, int]:
    """Wall and CPU time (this process: SQLAlchemy, the driver, points, JSON; for SQLite also
    the database, which runs in aiosqlite's thread) of one query, JSON size, points per area."""
    t0, c0 = time.perf_counter(), time.process_time()
    start = NOW - timedelta(days=365)
    data = await tf.series(
        db,
        level="province",
        kind="all",
        segment="all",
        start=start,
        end=NOW,
        resolution=resolution,
    )
    report = SeriesReport(
        level="province",
        kind="all",
        segment="all",
        start=start,
        end=NOW,
        areas=[
            AreaSeries(area=tf_area(code), points=[point_read(p) for p in pts])
            for code, pts in data.items()
        ],
    )
    body = msgspec.json.encode(report)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, len(body), len(next(iter(data.values())))


async def bench(url: str, label: str, repeat: int) -> dict[str, Any]:
    await h.migrate_db(url)
    db = Database(url)
    try:
        t0 = time.perf_counter()
        runs, cells = await load(db)
        h.say(f"[{label}] loaded {runs} runs, {cells} cells in {time.perf_counter() - t0:.1f} s")
        await query_once(db)  # warm-up
        out: dict[str, Any] = {"runs": runs, "cells": cells}
        for resolution, n in (("auto", repeat), ("all", 3)):
            samples, cpus, size, points = [], [], 0, 0
            for _ in range(n):
                dt, cpu, size, points = await query_once(db, resolution)
                samples.append(dt)
                cpus.append(cpu)
            s = h.summary_ms(samples)
            cpu_p50 = h.summary_ms(cpus)["p50"]
            h.say(
                f"[{label}] one year, all 11 provinces, resolution={resolution} ({points} points "
                f"each, {size // 1024} KiB JSON): p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms, "
                f"max {s['max']:.0f} ms, CPU p50 {cpu_p50:.0f} ms"
                + (" (target < 200 ms)" if resolution == "auto" else "")
            )
            out[resolution] = {"bytes": size, "points": points, "cpu_p50": cpu_p50, **s}
        return out
    finally:
        await db.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=("sqlite", "postgres"))
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    h.say(h.machine())
    out: dict[str, Any] = {}
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            out["sqlite"] = await bench(url, "sqlite", args.repeat)
    if args.only in (None, "postgres"):
        async with h.scratch_pg(h.DEFAULT_PG_URL, "abri_bench_sat") as name:
            out["postgres"] = await bench(
                h.asyncpg_url(h.DEFAULT_PG_URL, name), "postgres", args.repeat
            )
    h.say(f"saved {h.save('saturation', out)}")


if __name__ == "__main__":
    asyncio.run(main())
