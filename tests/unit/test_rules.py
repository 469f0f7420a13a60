"""Access rules, one at a time: each hard rule has a stable code, each condition a warning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from capacity.errors import InvalidInput, UnknownArea
from placement.household import (
    Adult,
    AvoidAreas,
    AvoidRadius,
    Child,
    Household,
    SearchRequest,
    validate_areas,
)
from placement.policy import AccessPolicy, AdmissionWindow
from placement.rules import (
    ADMISSION_LOOKAHEAD_MINUTES,
    ALL_RULES,
    EXCLUSION_TEXT,
    RELAX_TEXT,
    RELAXABLE_RULES,
    admission_wait_minutes,
    evaluate,
    evaluate_warnings,
    household_facts,
    warnings_with_wait,
)
from placement.synthetic import SYNTHETIC_NOW

NOW = SYNTHETIC_NOW  # Wednesday 2025-01-15, 22:30 in Brussels


def request(
    *,
    adults: list[Adult] | None = None,
    children: list[Child] | None = None,
    need: str = "ipv",
    nights: int = 1,
    free_only: bool = False,
    **household: Any,
) -> SearchRequest:
    return SearchRequest(
        household=Household(
            adults=adults or [Adult(gender="female")], children=children or [], **household
        ),
        need=need,  # type: ignore[arg-type]
        nights=nights,
        free_only=free_only,
    )


def codes(policy: AccessPolicy, req: SearchRequest, kind: str = "police", now=NOW) -> set[str]:
    return {f.code for f in evaluate(policy, req, requester_kind=kind, now=now)}  # type: ignore[arg-type]


def warns(policy: AccessPolicy, req: SearchRequest, kind: str = "police", now=NOW) -> set[str]:
    return {
        w.code
        for w in evaluate_warnings(policy, req, requester_kind=kind, now=now)  # type: ignore[arg-type]
    }


def test_default_policy_admits_a_woman_alone() -> None:
    assert codes(AccessPolicy(), request(residence_status="documented")) == set()


@pytest.mark.parametrize(
    ("policy", "req", "code"),
    [
        (AccessPolicy(), request(residence_status="undocumented"), "documents_required"),
        (AccessPolicy(requires_income=True), request(income="no"), "income_required"),
        (AccessPolicy(cost="paying"), request(income="no"), "paying_no_income"),
        (AccessPolicy(cost="income_based"), request(free_only=True), "not_free"),
        (
            AccessPolicy(genders=["female"]),
            request(adults=[Adult(gender="male")]),
            "gender_not_accepted",
        ),
        (
            AccessPolicy(accepts_children=False),
            request(children=[Child(age=3)]),
            "children_not_accepted",
        ),
        (
            AccessPolicy(max_children=1),
            request(children=[Child(age=3), Child(age=5)]),
            "too_many_children",
        ),
        (AccessPolicy(child_min_age=3), request(children=[Child(age=1)]), "child_too_young"),
        (AccessPolicy(child_max_age=12), request(children=[Child(age=15)]), "child_too_old"),
        (
            AccessPolicy(max_boy_age=12),
            request(children=[Child(age=13, gender="male")]),
            "boy_too_old",
        ),
        (
            AccessPolicy(),
            request(adults=[Adult(gender="male", age_band="16-17")]),
            "adolescent_alone",
        ),
        (
            AccessPolicy(min_adult_age=25),
            request(adults=[Adult(gender="female", age_band="18-24")]),
            "adult_too_young",
        ),
        (AccessPolicy(), request(wheelchair=True), "wheelchair"),
        (AccessPolicy(), request(pets=True), "pets"),
        (AccessPolicy(max_stay_nights=30), request(nights=360), "max_stay"),
        (AccessPolicy(referral_required_from=["cpas"]), request(), "referral_required"),
    ],
)
def test_each_rule_has_its_stable_code(policy: AccessPolicy, req: SearchRequest, code: str) -> None:
    failures = evaluate(policy, req, requester_kind="police", now=NOW)
    assert code in {f.code for f in failures}
    assert all(f.message and f.message[0].isupper() for f in failures)
    assert code in ALL_RULES and code in EXCLUSION_TEXT


def test_every_relaxable_code_has_a_relax_text() -> None:
    assert set(RELAX_TEXT) == set(RELAXABLE_RULES)
    assert set(EXCLUSION_TEXT) == set(ALL_RULES)
    assert "status_closed" not in RELAXABLE_RULES and "no_room" not in RELAXABLE_RULES


def test_low_threshold_lifts_papers_income_and_referral_but_not_cost() -> None:
    low = AccessPolicy(
        low_threshold=True, requires_income=True, referral_required_from=["cpas"], cost="paying"
    )
    req = request(residence_status="undocumented", income="no")
    assert codes(low, req) == {"paying_no_income"}


def test_accepts_undocumented_and_referral_from_the_requester() -> None:
    policy = AccessPolicy(accepts_undocumented=True, referral_required_from=["police", "cpas"])
    assert codes(policy, request(residence_status="undocumented")) == set()
    assert codes(policy, request(), kind="helpline") == {"referral_required"}


def test_unknown_status_and_income_are_conditions_not_exclusions() -> None:
    policy = AccessPolicy(requires_income=True)
    req = request(residence_status="unknown", income="unknown")
    assert codes(policy, req) == set()
    assert {"documents_to_check", "income_to_check"} <= warns(policy, req)


def test_boys_and_girls_and_unknown_gender() -> None:
    refuge = AccessPolicy(max_boy_age=12)
    assert codes(refuge, request(children=[Child(age=13, gender="female")])) == set()
    assert codes(refuge, request(children=[Child(age=12, gender="male")])) == set()
    unknown = request(children=[Child(age=14)])
    assert codes(refuge, unknown) == set()
    assert "boy_age_to_check" in warns(refuge, unknown)


def test_adolescents() -> None:
    youth = AccessPolicy(accepts_adolescents_alone=True, min_adult_age=16)
    alone = request(adults=[Adult(gender="female", age_band="16-17")])
    assert codes(youth, alone) == set()
    assert codes(AccessPolicy(), alone) == {"adolescent_alone"}
    # A 16-17 year old with a parent counts as a child aged 17 (boy rules apply).
    with_mother = request(adults=[Adult(gender="female"), Adult(gender="male", age_band="16-17")])
    facts = household_facts(with_mother)
    assert not facts.teens_alone and facts.children == ((17, "male"),)
    assert codes(AccessPolicy(max_boy_age=12), with_mother) == {"boy_too_old"}


def test_adult_age_band_straddling_the_minimum_is_a_warning() -> None:
    policy = AccessPolicy(min_adult_age=21)
    req = request(adults=[Adult(gender="female", age_band="18-24")])
    assert codes(policy, req) == set()
    assert "adult_age_to_check" in warns(policy, req)


def test_health_condition_is_a_condition_to_meet_not_an_exclusion() -> None:
    policy = AccessPolicy(health_conditions=["negative_test"])
    assert codes(policy, request()) == set()
    assert "health_condition_to_meet" in warns(policy, request())
    met = request(health_conditions_met=["negative_test"])
    assert "health_condition_to_meet" not in warns(policy, met)


def test_language_mismatch_is_a_warning_unless_interpreters() -> None:
    req = request(languages=["ar"])
    assert codes(AccessPolicy(languages=["nl"]), req) == set()
    assert "language_mismatch" in warns(AccessPolicy(languages=["nl"]), req)
    assert "language_mismatch" not in warns(
        AccessPolicy(languages=["nl"], interpreters_available=True), req
    )
    assert "language_mismatch" not in warns(AccessPolicy(languages=["nl", "ar"]), req)


def test_not_specialised_warning_for_violence_needs_only() -> None:
    generic = AccessPolicy()
    assert "not_specialised" in warns(generic, request(need="ipv"))
    assert "not_specialised" not in warns(generic, request(need="homelessness"))
    ipv = AccessPolicy(specialisations=["ipv"])
    assert "not_specialised" not in warns(ipv, request(need="family_violence"))


# ---------------------------------------------------------------- admission hours


def brussels(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Europe/Brussels"))


def test_admission_24_7_and_overnight_windows() -> None:
    night = [AdmissionWindow(start="19:00", end="09:00")]
    assert admission_wait_minutes(None, NOW) == 0
    assert admission_wait_minutes(night, brussels(2025, 1, 15, 22, 30)) == 0
    assert admission_wait_minutes(night, brussels(2025, 1, 16, 7, 0)) == 0  # past midnight
    assert admission_wait_minutes(night, brussels(2025, 1, 16, 10, 0)) == 9 * 60


def test_admission_hours_use_belgian_local_time_also_in_summer() -> None:
    late = [AdmissionWindow(start="22:00", end="23:00")]
    summer = datetime(2025, 7, 1, 20, 30, tzinfo=UTC)  # 22:30 CEST
    assert admission_wait_minutes(late, summer) == 0
    winter = datetime(2025, 1, 15, 20, 30, tzinfo=UTC)  # 21:30 CET
    assert admission_wait_minutes(late, winter) == 30


def test_admission_later_is_a_warning_and_weekend_gap_excludes() -> None:
    office = AccessPolicy(
        admission_hours=[AdmissionWindow(days=[0, 1, 2, 3, 4], start="09:00", end="17:00")]
    )
    wed_night = brussels(2025, 1, 15, 22, 30)
    assert codes(office, request(), now=wed_night) == set()
    w = evaluate_warnings(office, request(), requester_kind="police", now=wed_night)
    assert [x.message for x in w if x.code == "admission_later"] == [
        "Intake opens at 09:00 (Belgian time)."
    ]
    fri_evening = brussels(2025, 1, 17, 18, 0)
    assert admission_wait_minutes(office.admission_hours, fri_evening) == 63 * 60
    assert ADMISSION_LOOKAHEAD_MINUTES < 63 * 60
    assert codes(office, request(), now=fri_evening) == {"admission_hours"}


def test_window_on_listed_days_only() -> None:
    friday_night = [AdmissionWindow(days=[4], start="20:00", end="08:00")]
    assert admission_wait_minutes(friday_night, brussels(2025, 1, 18, 2, 0)) == 0  # Sat 02:00
    assert admission_wait_minutes(friday_night, brussels(2025, 1, 19, 2, 0)) == (
        5 * 24 * 60 + 18 * 60
    )


# ---------------------------------------------------------------- household and areas


def test_household_rejects_unknown_fields_such_as_a_name() -> None:
    raw = b'{"household": {"adults": [{"gender": "female"}], "name": "X"}, "need": "ipv"}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=SearchRequest)


def test_household_bounds_and_camel_case() -> None:
    raw = (
        b'{"household": {"adults": [{"gender": "female", "ageBand": "18-24"}],'
        b' "children": [{"age": 4}], "residenceStatus": "undocumented"},'
        b' "need": "ipv", "preferredMunicipalityNis": "21004", "freeOnly": true}'
    )
    req = msgspec.json.decode(raw, type=SearchRequest)
    assert req.household.size == 2 and req.free_only and req.limit == 20
    for bad in (
        b'{"household": {"adults": []}, "need": "ipv"}',
        b'{"household": {"adults": [{"gender": "female"}], "children": [{"age": 18}]}, "need": "ipv"}',
        b'{"household": {"adults": [{"gender": "female"}]}, "need": "ipv", "nights": 0}',
        b'{"household": {"adults": [{"gender": "female"}]}, "need": "ipv", "limit": 101}',
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=SearchRequest)


def test_validate_areas_names_the_field() -> None:
    base = request()
    bad = msgspec.structs.replace(base, avoid=AvoidAreas(municipalities=["21015", "99999"]))
    with pytest.raises(UnknownArea) as exc:
        validate_areas(bad)
    assert exc.value.field == "avoid.municipalities[1]"
    bad = msgspec.structs.replace(
        base, avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis="00000", km=5)])
    )
    with pytest.raises(UnknownArea) as exc:
        validate_areas(bad)
    assert exc.value.field == "avoid.radius[0].municipalityNis"
    with pytest.raises(UnknownArea) as exc:
        validate_areas(msgspec.structs.replace(base, preferred_municipality_nis="12345"))
    assert exc.value.field == "preferredMunicipalityNis"
    with pytest.raises(UnknownArea) as exc:
        validate_areas(msgspec.structs.replace(base, avoid=AvoidAreas(arrondissements=["21015"])))
    assert exc.value.field == "avoid.arrondissements[0]"


def test_max_distance_needs_a_preferred_area() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_areas(msgspec.structs.replace(request(), max_distance_km=20.0))
    assert exc.value.field == "maxDistanceKm"


def test_validate_areas_maps_pre_2025_codes_and_expands_arrondissements() -> None:
    req = msgspec.structs.replace(
        request(),
        preferred_municipality_nis="11007",  # Borsbeek, merged into Antwerpen (11002)
        avoid=AvoidAreas(municipalities=["11007"], arrondissements=["21000"]),
    )
    zones = validate_areas(req)
    assert zones.preferred == "11002"
    assert "11002" in zones.avoid_municipalities
    assert "21015" in zones.avoid_municipalities  # Schaerbeek is in Brussels-Capital
    assert len(zones.avoid_municipalities) == 1 + 19


def test_warnings_with_a_known_wait_are_the_warnings() -> None:
    """The matcher passes the admission wait it already has; the warnings must not change."""
    office = AccessPolicy(
        admission_hours=[AdmissionWindow(days=[0, 1, 2, 3, 4], start="09:00", end="17:00")],
        health_conditions=["negative_test"],
        max_boy_age=12,
    )
    req = request(children=[Child(age=14)], languages=["nl"])
    for now in (NOW, brussels(2025, 1, 16, 7, 0), brussels(2025, 1, 17, 18, 0)):
        wait = admission_wait_minutes(office.admission_hours, now)
        given = warnings_with_wait(office, req, household_facts(req), admission_wait=wait, now=now)
        assert given == evaluate_warnings(office, req, requester_kind="police", now=now)
        assert given  # language, health condition, boy's age (and the intake later)


def test_the_lookahead_counts_real_hours_on_the_nights_the_clocks_change() -> None:
    """Intake 08:00-17:00. Spring: on Saturday 2026-03-28 at 19:30 (CET) Sunday's 08:00 is
    12.5 h away on the wall clock but 11.5 h in real time (the clocks go forward at 02:00):
    within the 12-hour lookahead. Autumn: on Saturday 2026-10-24 at 20:30 (CEST) it is 11.5 h
    on the wall clock, 12.5 h in real time: beyond it."""
    office = AccessPolicy(admission_hours=[AdmissionWindow(start="08:00", end="17:00")])
    spring = datetime(2026, 3, 28, 18, 30, tzinfo=UTC)
    assert admission_wait_minutes(office.admission_hours, spring) == 11 * 60 + 30
    assert codes(office, request(), now=spring) == set()
    w = evaluate_warnings(office, request(), requester_kind="police", now=spring)
    assert [x.message for x in w if x.code == "admission_later"] == [
        "Intake opens at 08:00 (Belgian time)."
    ]
    autumn = datetime(2026, 10, 24, 18, 30, tzinfo=UTC)
    assert admission_wait_minutes(office.admission_hours, autumn) == 12 * 60 + 30
    assert codes(office, request(), now=autumn) == {"admission_hours"}
    # an ordinary Saturday: wall clock and real time agree
    plain = datetime(2026, 3, 21, 18, 30, tzinfo=UTC)
    assert admission_wait_minutes(office.admission_hours, plain) == 12 * 60 + 30
