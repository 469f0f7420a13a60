"""What a Belgian phone number tells about where it rings.

A secret refuge's intake number is given to every helpline and police officer who finds it in
a search. A landline's area code (the zone: 02 Brussels, 057 Ieper, 086 Durbuy...) tells them
roughly where the refuge is, sometimes more precisely than the province a search shows for a
secret place. Mobile numbers (045-049), freephone (0800) and the national non-geographic
numbers (070, 077, 078, 090x) do not. The numbering plan is the BIPT's (Belgian Institute for
Postal services and Telecommunications): a national significant number of 8 digits for a fixed
line, 9 for a mobile.
"""

from __future__ import annotations

import re

# National significant numbers that ring nowhere in particular.
_NON_GEOGRAPHIC = ("800", "70", "77", "78", "90")
# One-digit zones; every other fixed-line zone has two digits (010, 057, 086...).
_ONE_DIGIT_ZONES = frozenset("2349")


def _national_digits(phone: str) -> str | None:
    """The national significant number of a Belgian number, or None if it is not Belgian."""
    raw = phone.strip()
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") or raw.startswith("00"):
        digits = digits[2:] if raw.startswith("00") else digits
        if not digits.startswith("32"):
            return None  # a foreign number: its zones are not ours to read
        # "+32 (0)9 ...": the trunk 0 written after the country code
        return digits[3:] if digits[2:3] == "0" else digits[2:]
    if digits.startswith("0"):
        return digits[1:]
    return None  # no trunk prefix and no country code: nothing safe to say


# Between two numbers in one field: "02 555 00 00 / 0475 12 34 56", "…; …", "… or …"
_SEVERAL = re.compile(r"\s+/\s+|[;,]|\s+(?:or|ou|of|oder)\s+", re.IGNORECASE)


def fixed_line_zone(phone: str) -> str | None:
    """The area code (``"057"``, ``"02"``) of a Belgian fixed line; None for a mobile, a
    non-geographic or foreign number, or one that is not a well-formed Belgian number. A field
    holding several numbers gives the first fixed line's area code."""
    for part in _SEVERAL.split(phone):
        zone = _zone(part)
        if zone is not None:
            return zone
    return None


def _zone(phone: str) -> str | None:
    nsn = _national_digits(phone)
    if nsn is None or len(nsn) != 8 or nsn.startswith(_NON_GEOGRAPHIC):
        return None
    if nsn[0] == "0":
        return None
    zone = nsn[0] if nsn[0] in _ONE_DIGIT_ZONES else nsn[:2]
    return "0" + zone


#: The warning's code on a facility (``warnings`` in the admin and staff answers).
TELLS_ZONE = "intake_phone_tells_zone"


def tells_zone_message(zone: str) -> str:
    """The warning for a secret place whose intake number is a landline in area ``zone``."""
    return (
        f"The address is secret, but the intake number is a landline: its area code {zone} "
        "tells every helpline and police officer who finds the place roughly where it is. "
        "Give a mobile number or a non-geographic one (0800, 078) instead."
    )
