"""Hold durations at a place whose intake opens later: counted from the real opening instant,
also on the nights the clocks change (a wall-clock count is an hour off then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from placement import holds as rules
from placement.holds_service import _opens_in
from placement.policy import AccessPolicy, AdmissionWindow

DAYTIME = AccessPolicy(admission_hours=[AdmissionWindow(start="08:00", end="20:00")])


def test_the_opening_is_measured_in_real_time_across_the_clock_change() -> None:
    # 2026-10-25, clocks go back at 03:00 CEST: from 01:30 CEST (23:30 UTC the day before)
    # to 08:00 CET (07:00 UTC) is 7 h 30, though the wall clock shows 6 h 30
    now = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    assert _opens_in(DAYTIME, now) == 450
    deadline = rules.deadline_for(
        "police", None, facility_max_minutes=None, now=now, opens_in=_opens_in(DAYTIME, now)
    )
    assert deadline == datetime(2026, 10, 25, 7, 0, tzinfo=UTC) + timedelta(minutes=90)
    # 2026-03-29, clocks go forward at 02:00 CET: from 01:30 CET (00:30 UTC) to 08:00 CEST
    # (06:00 UTC) is 5 h 30, though the wall clock shows 6 h 30
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert _opens_in(DAYTIME, now) == 330


def test_open_now_or_too_far_away_counts_from_now() -> None:
    assert _opens_in(DAYTIME, datetime(2026, 1, 15, 10, 0, tzinfo=UTC)) == 0  # 11:00 CET: open
    assert _opens_in(AccessPolicy(), datetime(2026, 1, 15, 2, 0, tzinfo=UTC)) == 0  # 24/7
