"""Saturation snapshots: the time series behind the task force's trend charts.

A run every ``INTERVAL`` (15 min) stores the suppressed cube (non-empty cells only, in
places; suppressed cells with NULL figures) at its 15-minute bucket, so running twice in the
same bucket does nothing. Downsampling keeps one year small: 15-minute points for 7 days,
the first point of each hour for 90 days, the last point of each Belgian day beyond (about
2,900 runs a year instead of 35,000).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from capacity import taskforce_service
from capacity.clock import brussels_date
from capacity.db import Database
from capacity.models import SaturationRun, SaturationSnapshot
from capacity.settings import Settings

INTERVAL = timedelta(minutes=15)
KEEP_ALL = timedelta(days=7)
KEEP_HOURLY = timedelta(days=90)
CHUNK = 1000


def bucket(now: datetime) -> datetime:
    """The 15-minute slot ``now`` falls in (UTC)."""
    minute = now.minute - now.minute % 15
    return now.replace(minute=minute, second=0, microsecond=0)


async def take_snapshot(db: Database, settings: Settings, now: datetime) -> int:
    """Record the current cube at its bucket; returns the number of cells (0 if already done)."""
    at = bucket(now)
    async with db.read() as s:
        if await s.get(SaturationRun, at) is not None:
            return 0
    cube = await taskforce_service.current_cube(db, settings, now)
    rows = taskforce_service.snapshot_rows(cube, at)
    try:
        async with db.write() as s:
            await s.execute(insert(SaturationRun).values(at=at, k=cube.k, cells=len(rows)))
            for i in range(0, len(rows), CHUNK):
                await s.execute(insert(SaturationSnapshot), rows[i : i + CHUNK])
    except IntegrityError:
        return 0  # another process took this bucket first
    return len(rows)


def thin(runs: list[datetime], now: datetime) -> list[datetime]:
    """Which runs to delete: pure, so it can be tested and reasoned about.

    Between 7 and 90 days: the first run of each hour. Beyond: the LAST run of each Belgian
    day, which is what the daily census shows for a day (the state at the end of the
    evening); the first run of the UTC day, kept before, was 01:00 or 02:00 in Belgium, so an
    old day's census row showed the night before, and one night fell between the old rows
    and the recent ones."""
    drop = []
    hours: set[tuple[int, ...]] = set()
    for at in sorted(runs):
        age = now - at
        if age <= KEEP_ALL or age > KEEP_HOURLY:
            continue
        hour = (at.year, at.month, at.day, at.hour)
        if hour in hours:
            drop.append(at)
        else:
            hours.add(hour)
    days: set[date] = set()
    for at in sorted(runs, reverse=True):
        if now - at <= KEEP_HOURLY:
            continue
        day = brussels_date(at)
        if day in days:
            drop.append(at)
        else:
            days.add(day)
    return sorted(drop)


async def downsample(db: Database, now: datetime) -> int:
    """Delete the runs ``thin`` selects, and their cells; idempotent. Returns runs deleted."""
    async with db.read() as s:
        runs = list(
            await s.scalars(select(SaturationRun.at).where(SaturationRun.at < now - KEEP_ALL))
        )
    drop = thin(runs, now)
    for i in range(0, len(drop), 200):
        chunk = drop[i : i + 200]
        async with db.write() as s:
            await s.execute(delete(SaturationSnapshot).where(SaturationSnapshot.at.in_(chunk)))
            await s.execute(delete(SaturationRun).where(SaturationRun.at.in_(chunk)))
    return len(drop)
