"""The staff page's status "until": a date and a time in Belgian local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.web.controllers import FormError, until_from_form


def test_a_wall_clock_time_on_the_nights_the_clocks_change() -> None:
    """02:30 does not exist on the last Sunday of March (the clocks jump 02:00 -> 03:00): it is
    read as 03:30, an hour after 01:30, never an error. On the last Sunday of October 02:30
    happens twice: the first (summer time) is meant, the earlier of the two."""
    spring = until_from_form({"until_date": "2026-03-29", "until_time": "02:30"})
    assert spring == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    autumn = until_from_form({"until_date": "2026-10-25", "until_time": "02:30"})
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_a_date_before_the_first_instant_is_a_form_error_not_a_500() -> None:
    """A year typed as "1" in the date field (0001-01-01), at a time before Brussels' old
    local-mean-time offset: before the earliest instant Python knows in UTC."""
    with pytest.raises(FormError):
        until_from_form({"until_date": "0001-01-01", "until_time": "00:00"})
