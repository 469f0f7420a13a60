"""The hold state machine and duration rules: pure, no I/O (CONVENTIONS §2.1).

States: ``held`` → ``arrived`` | ``released`` | ``declined`` | ``expired`` | ``no_show``;
``arrived`` → ``departed`` (the household left; its segments stop counting as occupants).

Who may do what: the requester releases and extends; the facility's staff mark arrived,
no-show, declined and departed; the clock expires. A hold past its deadline is expired, for
every transition, whether or not the sweeper has run (DESIGN invariant 4).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from placement.errors import ExtensionRefused, IllegalTransition, InvalidInput

BRUSSELS = ZoneInfo("Europe/Brussels")

TRANSITIONS: dict[str, frozenset[str]] = {
    "held": frozenset({"arrived", "released", "declined", "expired", "no_show"}),
    "arrived": frozenset({"departed"}),
}
ACTIVE = "held"
FINAL = frozenset({"released", "declined", "expired", "no_show", "departed"})
REQUESTER_ACTIONS = frozenset({"released"})
STAFF_ACTIONS = frozenset({"arrived", "declined", "no_show", "departed"})
MAX_EXTENSIONS = 2
#: An extension must move the deadline by at least this much (the shortest hold one may ask
#: for), else it is refused and not counted: a second "Extend" seconds after the first (a
#: double click) would otherwise spend the last extension on a few seconds.
MIN_EXTENSION_MINUTES = 15
#: A hold "until the next morning" (CPAS) made less than this before 09:00 lasts the kind's
#: default instead: at 08:55 the morning is five minutes away.
MORNING_AT_LEAST_MINUTES = 60


class DurationRule(msgspec.Struct, frozen=True):
    default_minutes: int
    max_minutes: int
    until_morning: bool = False  # default: until 09:00 Brussels time the next morning


#: Defaults and maxima per requester kind (DESIGN: police 90 min, helpline 4 h, CPAS until
#: the next morning). A facility may lower the maximum (AccessPolicy.max_hold_minutes).
DURATIONS: dict[str, DurationRule] = {
    "police": DurationRule(90, 180),
    "helpline": DurationRule(240, 480),
    "cpas": DurationRule(12 * 60, 16 * 60, until_morning=True),
    "shelter_operator": DurationRule(240, 480),
    "hotel_partner": DurationRule(120, 240),
    "caw": DurationRule(240, 480),
    "fjc": DurationRule(240, 480),
    "sac": DurationRule(240, 480),
    "prosecutor": DurationRule(90, 180),  # on call, like the police officer beside the victim
    "admin": DurationRule(240, 480),
}


def check_transition(state: str, target: str) -> None:
    if target not in TRANSITIONS.get(state, frozenset()):
        raise IllegalTransition(
            f"A hold that is {state.replace('_', ' ')} cannot become {target.replace('_', ' ')}.",
            state=state,
        )


def is_due(state: str, deadline: datetime, now: datetime) -> bool:
    return state == ACTIVE and deadline <= now


def _next_morning(now: datetime) -> datetime:
    """09:00 Belgian time, the next morning, as a UTC instant: the hold's answer, audit and
    events write it as they write every other deadline (``…Z``), not in Brussels' offset."""
    local = now.astimezone(BRUSSELS)
    day = local.date() if local.time() < time(9, 0) else local.date() + timedelta(days=1)
    return datetime.combine(day, time(9, 0), tzinfo=BRUSSELS).astimezone(UTC)


def _cap(rule: DurationRule, facility_max_minutes: int | None, opens_in: int) -> int:
    """The longest a hold may run from now: the smaller of the requester kind's maximum and the
    facility's own, both counted from when the place's intake opens.

    Counting the facility's maximum from now would make a hold on a place opening later today
    useless when the wait is longer than that maximum: the hold would end before anyone could
    be taken in (a place with a 2-hour maximum, held at 14:00, intake from 18:00). Until the
    intake opens nobody can be admitted there anyway, so the hold keeps the bed from no one
    who could use it sooner."""
    cap = (
        rule.max_minutes
        if facility_max_minutes is None
        else min(rule.max_minutes, facility_max_minutes)
    )
    return cap + opens_in


def deadline_for(
    requester_kind: str,
    requested_minutes: int | None,
    *,
    facility_max_minutes: int | None,
    now: datetime,
    opens_in: int = 0,
) -> datetime:
    """The deadline of a new hold: the requester kind's default, or what was asked within the
    maximum (the smaller of the kind's and the facility's).

    ``opens_in``: minutes until the place's intake opens (0: open now). The household cannot
    be taken in before, so the kind's default and maximum count from then: a police hold at
    03:00 on a place whose intake opens at 08:00 runs to 09:30, not 04:30 (a bed lost while
    the officer waits for the door to open). The facility's maximum counts from then too."""
    rule = DURATIONS.get(requester_kind, DURATIONS["helpline"])
    cap = _cap(rule, facility_max_minutes, opens_in)
    if requested_minutes is not None:
        if requested_minutes > cap:
            raise InvalidInput(
                f"A hold may last at most {cap} minutes here; {requested_minutes} were asked.",
                field="minutes",
                max_minutes=cap,
            )
        return now + timedelta(minutes=requested_minutes)
    if rule.until_morning:
        morning = _next_morning(now)
        if morning - now < timedelta(minutes=MORNING_AT_LEAST_MINUTES):
            # made just before 09:00 (the day team arrives): "until 09:00" would be over in
            # minutes, before anyone could get there; the kind's default instead
            morning = now + timedelta(minutes=rule.default_minutes)
        if opens_in:  # at least an hour once intake opens, should that be after 09:00
            morning = max(morning, now + timedelta(minutes=opens_in + 60))
        return min(morning, now + timedelta(minutes=cap))
    return now + timedelta(minutes=min(rule.default_minutes + opens_in, cap))


def extended_deadline(
    *,
    requester_kind: str,
    current_deadline: datetime,
    extensions: int,
    minutes: int | None,
    facility_max_minutes: int | None,
    now: datetime,
    opens_in: int = 0,
) -> datetime:
    """``opens_in`` as for ``deadline_for``: the kind's maximum counts from intake opening."""
    if extensions >= MAX_EXTENSIONS:
        raise ExtensionRefused(
            f"This hold was already extended {extensions} times (at most {MAX_EXTENSIONS}).",
            field="extensions",
            reason="too-many",
        )
    rule = DURATIONS.get(requester_kind, DURATIONS["helpline"])
    cap = _cap(rule, facility_max_minutes, opens_in)
    step = minutes if minutes is not None else min(rule.default_minutes, cap)
    if step > cap:
        raise InvalidInput(f"An extension may add at most {cap} minutes.", field="minutes")
    new = min(max(current_deadline, now) + timedelta(minutes=step), now + timedelta(minutes=cap))
    if new < current_deadline + timedelta(minutes=MIN_EXTENSION_MINUTES):
        # Already held (about) as long as it may be from now: an "extension" would add
        # nothing, or a few seconds (or, after the place lowered its maximum, shorten it),
        # and still use one up. Refused, uncounted; it can be extended later, once the
        # deadline is nearer.
        raise ExtensionRefused(
            f"This hold already runs as long as a hold may from now ({cap} minutes); extend "
            "it later, when its deadline is nearer.",
            field="deadline",
            reason="not-yet",
        )
    return new


def household_size(adults: int, children: int) -> int:
    return adults + children


def units_needed(
    unit_kind: str,
    places_per_unit: int,
    size: int,
    beds_for_households: bool,
    rooms_for_households: bool = False,
) -> int | None:
    """Units of this pool the household takes, or None if it cannot fit (one household stays
    together at one place: one room/family room, or several beds of one bed pool if the
    facility allows, or several rooms of one pool if it allows that)."""
    if unit_kind == "bed":
        if size == 1:
            return 1
        return size if beds_for_households else None
    if places_per_unit >= size:
        return 1
    return -(-size // places_per_unit) if rooms_for_households else None


def segments(*, undocumented: bool, children: int, no_income: bool) -> dict[str, bool]:
    """The household's segments for the task force (no identity, just the categories)."""
    return {"undocumented": undocumented, "withChildren": children > 0, "noIncome": no_income}


def minutes_left(deadline: datetime, now: datetime) -> int:
    return max(0, math.ceil((deadline - now).total_seconds() / 60))
