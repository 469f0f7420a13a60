"""``taskforce_service.series`` on SQLite and PostgreSQL, read back from stored snapshot rows:
the runs each resolution picks, zero points (a run in which an area had no row), suppressed
points (no figures), rows of other levels / kinds / segments ignored, inclusive bounds, and
the same answer on every call (PostgreSQL plans a prepared statement generically from its
sixth execution on, asyncpg prepares every statement)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from api.taskforce.schemas import SeriesPointRead, figures, point_read
from capacity import snapshots
from capacity import taskforce_service as tf
from capacity.clock import BRUSSELS, brussels_date
from capacity.db import Database
from capacity.models import SaturationRun, SaturationSnapshot

BASE = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
RUNS = [BASE + timedelta(minutes=15 * i) for i in range(24)]  # 22:00 on the 1st ... 03:45
A, B = "10000", "20001"  # Antwerp, Flemish Brabant
SUPPRESSED_B, MISSING_B = 3, 5  # run indexes


def cell(at: datetime, nis: str, i: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "at": at,
        "level": "province",
        "nis": nis,
        "kind": "all",
        "segment": "all",
        "suppressed": False,
        "facilities": 3 + i,
        "capacity": 100 + i,
        "occupied": i,
        "held": 1,
        "free": 99,
        "fresh": 100 + i,
        "stale": 0,
        "closed": 0,
        "blocked": 0,
        "surge_24h": 2,
        "surge_72h": 5,
    }
    row.update(kw)
    return row


def suppressed(at: datetime, nis: str) -> dict[str, Any]:
    row = cell(at, nis, 0, suppressed=True)
    for col in ["facilities", *tf.SNAPSHOT_COLUMNS.values()]:
        row[col] = None
    return row


async def store(db: Database) -> None:
    rows = []
    for i, at in enumerate(RUNS):
        rows.append(cell(at, A, i))
        # Same instant and area, other cells: never part of the (province, all, all) series.
        rows.append(cell(at, A, 1000 + i, kind="refuge"))
        rows.append(cell(at, A, 2000 + i, segment="undocumented"))
        rows.append(cell(at, "02000", 3000 + i, level="region"))
        if i == SUPPRESSED_B:
            rows.append(suppressed(at, B))
        elif i != MISSING_B:
            rows.append(cell(at, B, 10 * i))
    # A run outside every window asked below.
    rows.append(cell(BASE - timedelta(days=1), A, 999))
    async with db.write() as s:
        await s.execute(insert(SaturationSnapshot), rows)
        await s.execute(
            insert(SaturationRun),
            [{"at": t, "k": 3, "cells": 5} for t in [BASE - timedelta(days=1), *RUNS]],
        )


def occupied(points: list[tf.SeriesPoint]) -> list[int | None]:
    return [None if p.values is None else p.values["occupied"] for p in points]


async def test_series_points_per_resolution(db: Database) -> None:
    await store(db)
    end = RUNS[-1]

    async def ask(resolution: str, start: datetime = BASE, nis: str | None = None) -> Any:
        return await tf.series(
            db,
            level="province",
            kind="all",
            segment="all",
            start=start,
            end=end,
            nis=nis,
            resolution=resolution,
        )

    every = await ask("all")
    assert list(every) == tf.areas_at("province")
    assert [p.at for p in every[A]] == RUNS
    assert all(p.at.tzinfo is not None and p.at.utcoffset() == timedelta(0) for p in every[A])
    assert occupied(every[A]) == list(range(24))
    first = every[A][0]
    assert (first.suppressed, first.facilities) == (False, 3)
    assert first.values == {
        "capacity": 100,
        "occupied": 0,
        "held": 1,
        "free": 99,
        "fresh": 100,
        "stale": 0,
        "closed": 0,
        "blocked": 0,
        "surge24h": 2,
        "surge72h": 5,
    }
    b = every[B]
    assert b[SUPPRESSED_B].suppressed and b[SUPPRESSED_B].values is None
    assert b[SUPPRESSED_B].facilities is None
    missing = b[MISSING_B]
    assert not missing.suppressed and missing.facilities == 0
    assert missing.values == dict.fromkeys(tf.SNAPSHOT_COLUMNS, 0)
    assert all(p.values == dict.fromkeys(tf.SNAPSHOT_COLUMNS, 0) for p in every["90000"])

    # The first run of each (UTC) hour, the last of each Belgian day; every area on the same
    # instants.
    hourly = await ask("hour")
    assert [p.at for p in hourly[A]] == RUNS[::4]
    assert occupied(hourly[A]) == list(range(0, 24, 4))
    assert occupied(hourly[B]) == [0, 40, 80, 120, 160, 200]
    daily = await ask("day")
    # 22:45 UTC is 23:45 on the 1st in Brussels, 23:00 UTC already the 2nd
    assert [p.at for p in daily[A]] == [RUNS[3], RUNS[23]]
    assert occupied(daily[B]) == [None, 230]  # the 1st's last run is suppressed for B
    # A window starting mid-hour picks its own first runs; bounds are inclusive.
    later = await ask("hour", start=RUNS[3])
    assert [p.at for p in later[B]] == [RUNS[3], RUNS[4], *RUNS[8::4]]
    assert occupied(later[B])[:2] == [None, 40]  # the suppressed run is the hour's first here
    one = await ask("all", start=RUNS[5], nis=B)
    assert list(one) == [B] and len(one[B]) == 19
    assert one[B][0].values == dict.fromkeys(tf.SNAPSHOT_COLUMNS, 0)
    # `auto`: up to 2 days every run.
    assert await ask("auto") == every

    for _ in range(7):
        assert await ask("hour") == hourly
        assert await ask("day") == daily


def test_point_read_matches_figures() -> None:
    at = BASE
    values = {
        "capacity": 40,
        "occupied": 20,
        "held": 2,
        "free": 18,
        "fresh": 30,
        "stale": 10,
        "closed": 4,
        "blocked": 1,
        "surge24h": 6,
        "surge72h": 9,
    }
    zero = dict.fromkeys(tf.SNAPSHOT_COLUMNS, 0)
    for p in (
        tf.SeriesPoint(at, False, values, 7),
        tf.SeriesPoint(at, False, zero, 0),
        tf.SeriesPoint(at, True, None, None),
    ):
        expected = SeriesPointRead(
            at=p.at,
            suppressed=p.suppressed,
            **figures(p.values, p.facilities),  # type: ignore[arg-type]
        )
        assert point_read(p) == expected
    read = point_read(tf.SeriesPoint(at, False, values, 7))
    assert (read.surge_24h, read.surge_72h, read.saturation, read.coverage) == (6, 9, 0.7333, 0.75)


async def test_a_days_point_is_the_same_instant_before_and_after_it_is_thinned(
    db: Database,
) -> None:
    """The daily trend (``day``, the year-on-year months, ``auto`` beyond 31 days) shows a
    day as its last run of the Belgian day: what the downsampling keeps of a day older than
    90 days and what the daily census shows. It showed the first run of the UTC day (01:00
    or 02:00 in Belgium) while the day was recent, and the end of the evening once older: at
    the 90-day seam one evening was shown twice (75 minutes apart) and one was missing, and a
    month compared across years mixed nights with evenings."""
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    # 15-minute runs over 100 days, across the end of summer time (25 October 2026)
    runs = [now - timedelta(minutes=15 * i) for i in range(100 * 96)]
    kept = sorted(set(runs) - set(snapshots.thin(runs, now)))
    async with db.write() as s:
        await s.execute(insert(SaturationRun), [{"at": t, "k": 3, "cells": 1} for t in kept])
        await s.execute(insert(SaturationSnapshot), [cell(t, A, i) for i, t in enumerate(kept)])
    start = now - timedelta(days=99)
    daily = await tf.series(
        db,
        level="province",
        kind="all",
        segment="all",
        start=start,
        end=now,
        nis=A,
        resolution="day",
    )
    points = [p.at for p in daily[A]]
    days = [brussels_date(t) for t in points]
    assert days == sorted(set(days))  # one point per Belgian day, none twice
    assert len(days) == (brussels_date(now) - brussels_date(start)).days + 1  # no gap
    for t in points[:-1]:  # every finished day: its evening, whatever the day's age
        assert t.astimezone(BRUSSELS).hour == 23, t
    assert points[-1] == max(kept)  # today: the latest run
