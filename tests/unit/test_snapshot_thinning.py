"""Downsampling of the saturation runs (``capacity.snapshots.thin``): what the task force's
trend and daily census still find once a day is old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from capacity.clock import brussels_date
from capacity.snapshots import KEEP_ALL, KEEP_HOURLY, thin

NOW = datetime(2027, 6, 30, 12, 0, tzinfo=UTC)


def test_an_old_day_keeps_its_last_run_of_the_belgian_day() -> None:
    """The census shows a day as its last snapshot of the Belgian day (about 23:45). Old days
    kept the first run of the UTC day instead (01:00 in Belgium in winter): their census row
    showed the night before, and the night between the old rows and the recent ones was in
    no row at all."""
    day = datetime(2027, 1, 14, tzinfo=UTC)  # winter: Belgium is UTC+1
    runs = [day + timedelta(minutes=15 * i) for i in range(96)]  # 00:00 ... 23:45 UTC
    kept = sorted(set(runs) - set(thin(runs, NOW)))
    # 00:00-22:45 UTC is the 14th in Belgium (01:00-23:45), 23:00-23:45 UTC the 15th
    assert kept == [day + timedelta(hours=22, minutes=45), day + timedelta(hours=23, minutes=45)]
    assert [brussels_date(t).day for t in kept] == [14, 15]


# 15-minute runs, dense around the 7- and 90-day edges so that hours and days hold several
SLOTS = st.one_of(
    st.integers(min_value=0, max_value=9 * 96),
    st.integers(min_value=86 * 96, max_value=96 * 96),
)
runs_strategy = st.lists(
    SLOTS.map(lambda i: NOW - timedelta(minutes=15 * i)), unique=True, min_size=1, max_size=400
)


@given(runs_strategy)
def test_thinning_keeps_one_run_per_hour_then_the_last_of_each_belgian_day(
    runs: list[datetime],
) -> None:
    drop = set(thin(runs, NOW))
    assert drop <= set(runs)
    kept = [t for t in runs if t not in drop]
    recent = [t for t in runs if NOW - t <= KEEP_ALL]
    assert set(recent) <= set(kept)  # the last week untouched
    hourly = [t for t in runs if KEEP_ALL < NOW - t <= KEEP_HOURLY]
    for hour in {t.replace(minute=0) for t in hourly}:
        inside = sorted(t for t in hourly if t.replace(minute=0) == hour)
        assert [t for t in inside if t in kept] == inside[:1]  # the first of each hour
    daily = [t for t in runs if NOW - t > KEEP_HOURLY]
    for day in {brussels_date(t) for t in daily}:
        inside = sorted(t for t in daily if brussels_date(t) == day)
        assert [t for t in inside if t in kept] == inside[-1:]  # the last of the Belgian day
    assert thin(kept, NOW) == []  # idempotent
