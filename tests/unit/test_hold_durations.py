"""Hold durations at a place whose intake opens later: counted from the real opening instant,
also on the nights the clocks change (a wall-clock count is an hour off then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from placement import holds as rules
from placement.errors import InvalidInput
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


def test_the_facility_maximum_counts_from_the_opening_too() -> None:
    # 14:00 CET; intake from 18:00 (240 min); the place keeps a bed at most 2 hours. Counted
    # from now, a hold would end at 16:00, before anyone could be taken in.
    now = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
    opens_in = _opens_in(
        AccessPolicy(admission_hours=[AdmissionWindow(start="18:00", end="23:00")]), now
    )
    assert opens_in == 240
    police = rules.deadline_for("police", None, facility_max_minutes=120, now=now, opens_in=240)
    assert police == now + timedelta(minutes=240 + 90)  # the kind's default, from the opening
    helpline = rules.deadline_for("helpline", None, facility_max_minutes=120, now=now, opens_in=240)
    assert helpline == now + timedelta(minutes=240 + 120)  # the facility's maximum, from then
    assert rules.deadline_for(
        "helpline", 360, facility_max_minutes=120, now=now, opens_in=240
    ) == now + timedelta(minutes=360)
    try:
        rules.deadline_for("helpline", 361, facility_max_minutes=120, now=now, opens_in=240)
    except InvalidInput as exc:
        assert exc.extra["max_minutes"] == 360
    else:
        raise AssertionError("a hold past the facility's maximum after opening was accepted")
    # open now: the facility's maximum counts from now, as before
    assert rules.deadline_for(
        "helpline", None, facility_max_minutes=120, now=now, opens_in=0
    ) == now + timedelta(minutes=120)


def test_a_cpas_hold_lasts_until_nine_but_never_only_minutes() -> None:
    brussels = rules.BRUSSELS
    for hour, minute, expected in (
        (23, 0, datetime(2026, 12, 8, 9, 0, tzinfo=brussels)),  # the night: until 09:00
        (8, 0, datetime(2026, 12, 7, 9, 0, tzinfo=brussels)),  # an hour left: until 09:00
        (8, 1, datetime(2026, 12, 7, 20, 1, tzinfo=brussels)),  # less: the default, 12 h
        (8, 59, datetime(2026, 12, 7, 20, 59, tzinfo=brussels)),
    ):
        now = datetime(2026, 12, 7, hour, minute, tzinfo=brussels).astimezone(UTC)
        deadline = rules.deadline_for("cpas", None, facility_max_minutes=None, now=now)
        assert deadline == expected, (hour, minute)
        assert deadline.tzinfo is UTC
    # a place's own maximum still caps it
    now = datetime(2026, 12, 7, 8, 55, tzinfo=brussels).astimezone(UTC)
    assert rules.deadline_for("cpas", None, facility_max_minutes=120, now=now) == now + timedelta(
        minutes=120
    )
