"""The "intake opens at" time told to requesters is the wall-clock time, also on the nights the
clocks change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from placement.policy import AccessPolicy, AdmissionWindow
from placement.rules import evaluate_warnings
from tests.unit.test_rules import request


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # 00:30 on 29 March: 02:00 becomes 03:00
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 00:30 on 25 October: 03:00 becomes 02:00
        datetime(2026, 1, 14, 23, 30, tzinfo=UTC),  # an ordinary night
    ],
)
def test_intake_opens_at_the_hour_of_its_window_across_a_clock_change(now: datetime) -> None:
    """Intake from 08:00; at 00:30 the warning said "Intake opens at 09:00" on the night summer
    time begins and "07:00" on the night it ends (the wall-clock wait added to UTC time)."""
    policy = AccessPolicy(admission_hours=[AdmissionWindow(start="08:00", end="20:00")])
    [warning] = [
        w
        for w in evaluate_warnings(policy, request(), requester_kind="police", now=now)
        if w.code == "admission_later"
    ]
    assert warning.message == "Intake opens at 08:00 (Belgian time)."
