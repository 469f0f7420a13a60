"""Access rules: does a facility's policy take this household, and on what conditions?

``evaluate`` returns the hard failures (the place is not offered), ``evaluate_warnings`` the
conditions a requester must know before calling (the place is offered, with a warning).
Each has a stable ``code`` (the contract: API clients, the exclusion summary and the
translations key on it) and an English sentence for people.

Decisions a practitioner should know about:

* ``low_threshold`` lifts the conditions on papers, income and referral (DESIGN §1), not
  the conditions on cost: a paying place stays closed to a household with no income.
* Residence status / income ``unknown`` never excludes: the place is offered with
  ``documents_to_check`` / ``income_to_check`` so the requester asks before calling.
* Health admission conditions (a negative test in an epidemic) are **conditions to meet**,
  not exclusions (REQUIREMENTS R16): the place is offered with ``health_condition_to_meet``
  unless the household already declared the condition met. The code ``health_condition``
  is reserved for a future "hard" variant and is never produced today.
* Admission hours are read in Belgian local time (Europe/Brussels) from ``now``. A place
  whose intake is closed now but opens within ``ADMISSION_LOOKAHEAD_MINUTES`` is offered
  with ``admission_later``; one whose intake does not open in that time is excluded
  (``admission_hours``): a police patrol at 02:00 cannot wait until Monday.
* Ages: an adult's age band must not lie entirely below ``min_adult_age`` (excluded,
  ``adult_too_young``); a band that straddles it gives ``adult_age_to_check``. 16-17 year
  olds without an adult of 18+ are "adolescents alone" (``accepts_adolescents_alone``);
  16-17 year olds with an adult count as children aged 17. A child whose gender is unknown
  and who is older than the facility's ``max_boy_age`` gives ``boy_age_to_check``.
* A language mismatch is a warning, never an exclusion (REQUIREMENTS R14).

Pure: no I/O, no clock; ``now`` is always a parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from placement.household import AGE_BAND_BOUNDS, SearchRequest
from placement.policy import AccessPolicy, AdmissionWindow, RequesterKind

BRUSSELS = ZoneInfo("Europe/Brussels")

#: Intake that opens within this many minutes is offered with a warning, not excluded.
ADMISSION_LOOKAHEAD_MINUTES = 12 * 60

#: Which specialisations serve which need. ``family_violence`` is served by IPV refuges.
SPECIALISATIONS_FOR_NEED: dict[str, frozenset[str]] = {
    "ipv": frozenset({"ipv"}),
    "family_violence": frozenset({"family_violence", "ipv"}),
    "sexual_violence": frozenset({"sexual_violence", "ipv"}),
    "trafficking": frozenset({"trafficking"}),
    "homelessness": frozenset({"homelessness"}),
    "other": frozenset(),
}
#: Needs for which a non-specialised place gets a ``not_specialised`` warning.
VIOLENCE_NEEDS: frozenset[str] = frozenset(
    {"ipv", "family_violence", "sexual_violence", "trafficking"}
)

#: Policy rule codes, in the order they are evaluated.
POLICY_RULES: tuple[str, ...] = (
    "documents_required",
    "income_required",
    "paying_no_income",
    "not_free",
    "gender_not_accepted",
    "children_not_accepted",
    "too_many_children",
    "child_too_young",
    "child_too_old",
    "boy_too_old",
    "adolescent_alone",
    "adult_too_young",
    "wheelchair",
    "pets",
    "max_stay",
    "admission_hours",
    "referral_required",
)
#: Facility-level exclusions, decided by the matcher.
FACILITY_RULES: tuple[str, ...] = (
    "status_closed",
    "not_yet_open",
    "scheme_ended",
    "no_room",
    "no_room_unknown",
    "avoid_area",
    "too_far",
)
ALL_RULES: tuple[str, ...] = POLICY_RULES + FACILITY_RULES
#: Exclusions that a requester could choose to relax; the others (a closed place, a
#: scheme not running, no free unit) can never become an option by asking differently.
RELAXABLE_RULES: frozenset[str] = frozenset(ALL_RULES) - {
    "status_closed",
    "not_yet_open",
    "scheme_ended",
    "no_room",
    "no_room_unknown",
}

#: "N places excluded: <text>" — one line of the exclusion summary per code.
EXCLUSION_TEXT: dict[str, str] = {
    "documents_required": "require residence documents",
    "income_required": "require an income",
    "paying_no_income": "are paying and the household has no income",
    "not_free": "are not free of charge",
    "gender_not_accepted": "do not accept the gender of an adult in the household",
    "children_not_accepted": "do not accept children",
    "too_many_children": "accept fewer children",
    "child_too_young": "do not accept children this young",
    "child_too_old": "do not accept children this old",
    "boy_too_old": "do not accept boys of this age",
    "adolescent_alone": "do not accept adolescents without an adult",
    "adult_too_young": "have a higher minimum age for adults",
    "wheelchair": "are not wheelchair accessible",
    "pets": "do not accept pets",
    "max_stay": "have a shorter maximum stay",
    "admission_hours": "have no intake in the next 12 hours",
    "referral_required": "require a referral from another service",
    "status_closed": "are closed to admissions, suspended or compromised",
    "not_yet_open": "are not open yet",
    "scheme_ended": "belong to a scheme that has ended",
    "no_room": "have no free unit that fits the household",
    "no_room_unknown": (
        "had no free unit that fits the household when they last reported, too long ago: "
        "call them to ask"
    ),
    "avoid_area": "are in or near an area to avoid",
    "too_far": "are farther than the maximum distance",
}
#: "N more options if <text>" — the Alternative message per relaxable code.
RELAX_TEXT: dict[str, str] = {
    "documents_required": "places requiring residence documents were included",
    "income_required": "places requiring an income were included",
    "paying_no_income": "paying places were included",
    "not_free": "places that are not free of charge were included",
    "gender_not_accepted": "places for other genders were included",
    "children_not_accepted": "places without children were included",
    "too_many_children": "places with a lower limit on children were included",
    "child_too_young": "places with a higher minimum child age were included",
    "child_too_old": "places with a lower maximum child age were included",
    "boy_too_old": "places with a lower maximum age for boys were included",
    "adolescent_alone": "places not taking adolescents alone were included",
    "adult_too_young": "places with a higher minimum adult age were included",
    "wheelchair": "wheelchair access were not required",
    "pets": "the pet could stay elsewhere",
    "max_stay": "fewer nights were asked",
    "admission_hours": "the household could wait longer for intake hours",
    "referral_required": "a referral from the required service were obtained",
    "avoid_area": "the areas to avoid were dropped — only if that is safe",
    "too_far": "the maximum distance were dropped",
}

_CHILD_OF_TEEN = {"female": "female", "male": "male", "nonbinary": "nonbinary"}


class RuleFailure(msgspec.Struct, frozen=True):
    """Why a facility is not offered: a stable code and a sentence."""

    code: str
    message: str


class Warning(msgspec.Struct, frozen=True):
    """Something to know before calling: the facility is still offered."""

    code: str
    message: str


class HouseholdFacts(msgspec.Struct, frozen=True):
    """The household reduced to the facts the rules read (shared with the fast matcher).

    The child summaries are plain fields, computed once by ``household_facts``: the rules
    read them for every facility of a search. (A Struct rather than a frozen dataclass: one
    is built per search, and it builds ten times faster.)"""

    size: int
    adult_genders: frozenset[str]
    teens_alone: bool
    youngest_adult_band: tuple[int, int] | None  # among adults of 18+
    children: tuple[tuple[int, str], ...]  # (age, gender), teens with a parent included
    languages: frozenset[str]
    n_children: int
    min_child_age: int  # 99 without children
    max_child_age: int  # -1 without children
    oldest_boy: int  # -1: none
    oldest_unknown_gender_child: int  # -1: none


def household_facts(request: SearchRequest) -> HouseholdFacts:
    hh = request.household
    grown = [a for a in hh.adults if a.age_band != "16-17"]
    teens = [a for a in hh.adults if a.age_band == "16-17"]
    children = [(c.age, c.gender) for c in hh.children]
    if grown:
        children += [(17, _CHILD_OF_TEEN[t.gender]) for t in teens]
        genders = frozenset(a.gender for a in grown)
        lows = [AGE_BAND_BOUNDS[a.age_band] for a in grown]
        youngest = min(lows, key=lambda b: (b[1], b[0]))
    else:
        genders = frozenset(a.gender for a in teens)
        youngest = None
    return HouseholdFacts(
        size=hh.size,
        adult_genders=genders,
        teens_alone=not grown,
        youngest_adult_band=youngest,
        children=tuple(sorted(children)),
        languages=frozenset(hh.languages),
        n_children=len(children),
        min_child_age=min((a for a, _ in children), default=99),
        max_child_age=max((a for a, _ in children), default=-1),
        oldest_boy=max((a for a, g in children if g == "male"), default=-1),
        oldest_unknown_gender_child=max((a for a, g in children if g == "unknown"), default=-1),
    )


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def admission_wait_minutes(windows: list[AdmissionWindow] | None, now: datetime) -> int | None:
    """Minutes until intake is possible (0 = now), or None if no window in the next week.

    Windows are Belgian local time; one whose end is before its start runs past midnight,
    one whose start equals its end is open all day. The minutes are real ones: the opening
    is found on the Belgian wall clock and measured from ``now`` in UTC, so on the nights
    the clocks change a place opening at 08:00 is an hour nearer or further than the wall
    clock says (the 12-hour lookahead and hold deadlines count real time).
    """
    if windows is None:
        return 0
    local = _utc(now).astimezone(BRUSSELS)
    wd, m = local.weekday(), local.hour * 60 + local.minute
    best: int | None = None
    for w in windows:
        start, end, days = _minutes(w.start), _minutes(w.end), set(w.days)
        if start == end:
            if wd in days:
                return 0
        elif start < end:
            if wd in days and start <= m < end:
                return 0
        elif (wd in days and m >= start) or ((wd - 1) % 7 in days and m < end):
            return 0
        for k in range(8):
            if (wd + k) % 7 in days:
                delta = k * 1440 + start - m
                if delta > 0 and (best is None or delta < best):
                    best = delta
    if best is None:
        return None
    opening = (local.replace(tzinfo=None) + timedelta(minutes=best)).replace(tzinfo=BRUSSELS)
    return max(1, round((opening - _utc(now)).total_seconds() / 60))


def is_specialised(policy: AccessPolicy, need: str) -> bool:
    return not SPECIALISATIONS_FOR_NEED.get(need, frozenset()).isdisjoint(policy.specialisations)


def evaluate(
    policy: AccessPolicy,
    request: SearchRequest,
    *,
    requester_kind: RequesterKind,
    now: datetime,
    facts: HouseholdFacts | None = None,
) -> list[RuleFailure]:
    """Every hard rule of ``policy`` this request fails (empty: the policy admits it)."""
    f = facts or household_facts(request)
    hh = request.household
    out: list[RuleFailure] = []

    def fail(code: str, message: str) -> None:
        out.append(RuleFailure(code, message))

    low = policy.low_threshold
    if hh.residence_status == "undocumented" and not policy.accepts_undocumented and not low:
        fail("documents_required", "Requires residence documents; the household is undocumented.")
    if hh.income == "no" and policy.requires_income and not low:
        fail("income_required", "Requires an income; the household has none.")
    if hh.income == "no" and policy.cost == "paying":
        fail("paying_no_income", "This place charges a fee; the household has no income.")
    if request.free_only and policy.cost != "free":
        fail("not_free", f"Not free of charge (cost: {policy.cost}); free places only asked.")
    missing = sorted(f.adult_genders - set(policy.genders))
    if missing:
        fail("gender_not_accepted", f"Does not accept {', '.join(missing)} adults.")
    if f.children and not policy.accepts_children:
        fail("children_not_accepted", "Does not accept children.")
    if policy.max_children is not None and f.n_children > policy.max_children:
        fail(
            "too_many_children",
            f"Accepts at most {policy.max_children} children; the household has {f.n_children}.",
        )
    if f.children and f.min_child_age < policy.child_min_age:
        fail(
            "child_too_young",
            f"Accepts children from {policy.child_min_age}; the youngest is {f.min_child_age}.",
        )
    if f.children and f.max_child_age > policy.child_max_age:
        fail(
            "child_too_old",
            f"Accepts children up to {policy.child_max_age}; the oldest is {f.max_child_age}.",
        )
    if policy.max_boy_age is not None and f.oldest_boy > policy.max_boy_age:
        fail(
            "boy_too_old",
            f"Takes no boys over {policy.max_boy_age}; the household has a boy of {f.oldest_boy}.",
        )
    if f.teens_alone and not policy.accepts_adolescents_alone:
        fail("adolescent_alone", "Does not accept adolescents (16-17) without an adult.")
    band = f.youngest_adult_band
    if band is not None and band[1] < policy.min_adult_age:
        fail(
            "adult_too_young",
            f"Adults must be at least {policy.min_adult_age}; an adult is {band[0]}-{band[1]}.",
        )
    if hh.wheelchair and not policy.wheelchair_accessible:
        fail("wheelchair", "Not wheelchair accessible.")
    if hh.pets and not policy.accepts_pets:
        fail("pets", "Does not accept pets.")
    if policy.max_stay_nights is not None and request.nights > policy.max_stay_nights:
        fail(
            "max_stay",
            f"Maximum stay is {policy.max_stay_nights} nights; {request.nights} asked.",
        )
    wait = admission_wait_minutes(policy.admission_hours, now)
    if wait is None or wait > ADMISSION_LOOKAHEAD_MINUTES:
        fail("admission_hours", "No intake in the next 12 hours (admission hours).")
    if (
        policy.referral_required_from
        and requester_kind not in policy.referral_required_from
        and not low
    ):
        fail(
            "referral_required",
            f"Requires a referral from {' or '.join(policy.referral_required_from)}.",
        )
    return out


def evaluate_warnings(
    policy: AccessPolicy,
    request: SearchRequest,
    *,
    requester_kind: RequesterKind,
    now: datetime,
    facts: HouseholdFacts | None = None,
) -> list[Warning]:
    """Conditions of ``policy`` to check before calling; never exclude the place."""
    return warnings_with_wait(
        policy,
        request,
        facts or household_facts(request),
        admission_wait=admission_wait_minutes(policy.admission_hours, now),
        now=now,
    )


def warnings_with_wait(
    policy: AccessPolicy,
    request: SearchRequest,
    facts: HouseholdFacts,
    *,
    admission_wait: int | None,
    now: datetime,
) -> list[Warning]:
    """``evaluate_warnings`` with ``admission_wait`` already known: what
    ``admission_wait_minutes(policy.admission_hours, now)`` returns. The matcher has it for
    every facility (it ranks on it), so options do not read the windows again."""
    f = facts
    hh = request.household
    out: list[Warning] = []
    low = policy.low_threshold
    if f.languages and f.languages.isdisjoint(policy.languages):
        if policy.interpreters_available:
            pass  # an interpreter can be arranged: not a mismatch
        else:
            out.append(
                Warning(
                    "language_mismatch",
                    f"Staff speak {', '.join(policy.languages)}; no interpreters.",
                )
            )
    to_meet = [c for c in policy.health_conditions if c not in hh.health_conditions_met]
    if to_meet:
        out.append(
            Warning(
                "health_condition_to_meet",
                f"Admission condition to meet: {', '.join(c.replace('_', ' ') for c in to_meet)}.",
            )
        )
    if hh.residence_status == "unknown" and not policy.accepts_undocumented and not low:
        out.append(Warning("documents_to_check", "Requires residence documents: check first."))
    if hh.income == "unknown" and ((policy.requires_income and not low) or policy.cost == "paying"):
        out.append(
            Warning("income_to_check", f"Requires an income or charges a fee ({policy.cost}).")
        )
    if policy.max_boy_age is not None and f.oldest_unknown_gender_child > policy.max_boy_age:
        out.append(
            Warning(
                "boy_age_to_check",
                f"Takes no boys over {policy.max_boy_age}; a child's gender is not given.",
            )
        )
    band = f.youngest_adult_band
    if band is not None and band[0] < policy.min_adult_age <= band[1]:
        out.append(
            Warning("adult_age_to_check", f"Adults must be at least {policy.min_adult_age}.")
        )
    wait = admission_wait
    if wait is not None and 0 < wait <= ADMISSION_LOOKAHEAD_MINUTES:
        # real minutes (admission_wait_minutes): the opening in UTC, shown on the wall clock
        opens = (_utc(now) + timedelta(minutes=wait)).astimezone(BRUSSELS)
        out.append(Warning("admission_later", f"Intake opens at {opens:%H:%M} (Belgian time)."))
    if request.need in VIOLENCE_NEEDS and not is_specialised(policy, request.need):
        out.append(
            Warning(
                "not_specialised",
                f"No specialised care for {request.need.replace('_', ' ')}.",
            )
        )
    return out
