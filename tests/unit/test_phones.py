"""Which intake numbers tell where a place is (a secret refuge's landline area code)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capacity.phones import fixed_line_zone


@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        ("+32 2 555 00 00", "02"),
        ("02/555.00.00", "02"),
        ("0032 2 555 00 00", "02"),
        ("+32 4 555 22 22", "04"),  # Liège: a fixed line, 8 digits after the 0
        ("+32 57 20 00 00", "057"),  # Ieper
        ("086 21 00 00", "086"),  # Durbuy, narrower than its arrondissement
        ("+32 (0)9 123 45 67", "09"),
        ("+32 80 12 34 56", "080"),  # Stavelot, not the freephone 0800
        ("+32 13 35 00 00", "013"),
        ("0475 12 34 56 / 057 20 00 00", "057"),  # two numbers in one field
        ("+32 470 55 01 90; 02 555 00 00", "02"),
        ("0470 55 01 90 or 086 21 00 00", "086"),
    ],
)
def test_a_landline_tells_its_zone(phone: str, zone: str) -> None:
    assert fixed_line_zone(phone) == zone


@pytest.mark.parametrize(
    "phone",
    [
        "+32 470 55 01 90",  # mobile
        "0475 12 34 56",
        "+32 456 00 00 00",
        "0800 30 030",  # freephone (the violence helpline's own)
        "+32 800 12 345",
        "078 15 15 15",  # national rate
        "070 22 00 00",
        "0903 12 345",  # premium
        "+33 1 23 45 67 89",  # French: not ours to read
        "0033 1 23 45 67 89",
        "1712",  # a short number
        "555 00 00",  # no prefix at all
        "0475 12 34 56 / 0800 30 030",
    ],
)
def test_numbers_that_ring_nowhere_in_particular(phone: str) -> None:
    assert fixed_line_zone(phone) is None


@given(st.from_regex(r"\+?[0-9 ./()-]{4,40}", fullmatch=True))
def test_any_accepted_phone_is_read_without_error(phone: str) -> None:
    zone = fixed_line_zone(phone)
    assert zone is None or (zone.startswith("0") and len(zone) in (2, 3))
