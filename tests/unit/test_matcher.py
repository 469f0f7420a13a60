"""The matcher on cases a practitioner would check by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity.errors import UnknownArea
from placement.household import Adult, AvoidAreas, AvoidRadius, Child, Household, SearchRequest
from placement.matcher import (
    REACH_KM,
    MatcherIndex,
    SearchResult,
    _round4,
    match,
    match_reference,
)
from placement.policy import AccessPolicy
from placement.synthetic import SYNTHETIC_NOW, make_facility, make_pool, synthetic_facilities

NOW = SYNTHETIC_NOW

IXELLES, ETTERBEEK, UCCLE, ANDERLECHT, SCHAERBEEK = "21009", "21005", "21016", "21001", "21015"
LEUVEN, NAMUR, BRUGGE, ARLON = "24062", "92094", "31005", "81001"


def req(
    adults: list[Adult] | None = None,
    children: list[Child] | None = None,
    *,
    need: str = "ipv",
    household: dict[str, Any] | None = None,
    **kw: Any,
) -> SearchRequest:
    return SearchRequest(
        household=Household(
            adults=adults or [Adult(gender="female")],
            children=children or [],
            **(household or {}),
        ),
        need=need,  # type: ignore[arg-type]
        **kw,
    )


def search(facilities: list, request: SearchRequest, **kw: Any) -> SearchResult:
    kw.setdefault("requester_kind", "police")
    kw.setdefault("now", NOW)
    fast = match(request, facilities, **kw)
    assert fast == match_reference(request, facilities, **kw)
    return fast


def refs(result: SearchResult) -> list[str]:
    return [o.facility_ref for o in result.options]


def test_undocumented_mother_with_a_boy_of_13_avoiding_schaerbeek() -> None:
    refuge12 = AccessPolicy(
        accepts_undocumented=True, genders=["female"], max_boy_age=12, specialisations=["ipv"]
    )
    docs = AccessPolicy(accepts_undocumented=False, specialisations=["ipv"])
    facilities = [
        make_facility("r1", IXELLES, policy=refuge12),
        make_facility("r2", ETTERBEEK, policy=refuge12),
        make_facility("s1", LEUVEN, policy=docs, kind="safe_house"),
        make_facility("s2", NAMUR, policy=docs, kind="cpas_place"),
        make_facility(
            "s3", NAMUR, policy=msgspec.structs.replace(docs, max_boy_age=12), kind="cpas_place"
        ),
        make_facility("h1", SCHAERBEEK, policy=AccessPolicy(low_threshold=True)),
        make_facility(
            "ok-refuge",
            UCCLE,
            policy=msgspec.structs.replace(refuge12, max_boy_age=16, languages=["fr"]),
        ),
        make_facility(
            "ok-hotel", ANDERLECHT, policy=AccessPolicy(low_threshold=True), kind="crisis_hotel"
        ),
    ]
    request = req(
        [Adult(gender="female")],
        [Child(age=4, gender="female"), Child(age=13, gender="male")],
        household={"residence_status": "undocumented", "languages": ["fr"]},
        avoid=AvoidAreas(municipalities=[SCHAERBEEK]),
    )
    result = search(facilities, request)

    assert refs(result) == ["ok-refuge", "ok-hotel"]
    assert result.excluded == {"boy_too_old": 3, "documents_required": 3, "avoid_area": 1}
    assert result.considered == 8 and result.matched == 2
    extra = {a.code: a.extra_options for a in result.alternatives}
    assert extra == {"boy_too_old": 2, "documents_required": 2, "avoid_area": 1}
    best, hotel = result.options
    assert best.specialised and best.score_parts["specialised"] == 100.0
    assert "Specialised care: ipv." in best.reasons
    assert "not_specialised" in {w.code for w in hotel.warnings}
    assert best.units_needed == 1 and best.free_units == 3


def test_relaxing_an_alternative_gives_exactly_its_extra_options() -> None:
    facilities = synthetic_facilities(300, seed=3)
    request = req(
        [Adult(gender="female")],
        [Child(age=13, gender="male")],
        household={"residence_status": "undocumented", "pets": True},
        free_only=True,
        limit=100,
    )
    base = search(facilities, request)
    assert base.alternatives
    for alt in base.alternatives:
        relaxed = search(facilities, request, relax={alt.code})
        assert relaxed.matched == base.matched + alt.extra_options
    with pytest.raises(ValueError):
        match(request, facilities, requester_kind="police", now=NOW, relax={"status_closed"})


def test_stale_places_rank_lower_with_a_warning() -> None:
    old = NOW - timedelta(hours=30)
    stale_pool = make_pool(
        "a-p", id=1, unit_kind="family_room", places_per_unit=4, units_total=3, reported_at=old
    )
    facilities = [
        make_facility("a-stale", BRUGGE, pools=[stale_pool]),
        make_facility("b-fresh", BRUGGE),
    ]
    result = search(facilities, req())
    assert refs(result) == ["b-fresh", "a-stale"]
    stale = result.options[1]
    assert stale.stale and stale.score_parts["freshness"] == 0.0
    assert stale.data_age_seconds == 30 * 3600
    assert "stale_data" in {w.code for w in stale.warnings}
    assert not result.options[0].stale and result.options[0].data_age_seconds == 0

    never = make_pool("c-p", id=2, unit_kind="room", places_per_unit=1, reported_at=None)
    result = search([make_facility("c", BRUGGE, pools=[never])], req())
    assert result.options[0].stale and result.options[0].data_age_seconds is None


def test_a_place_last_reported_full_too_long_ago_is_unknown_not_full() -> None:
    """R04: stale figures are "unknown", never "free" or "full". A place whose last report
    (30 h ago) left nothing free is not counted as full: its own code and sentence say to
    call it. A fresh full place, or one whose units the household does not fit, is full."""
    old = NOW - timedelta(hours=30)

    def full(ref: str, pid: int, reported: object, kind: str = "family_room") -> object:
        return make_pool(
            ref,
            id=pid,
            unit_kind=kind,
            places_per_unit=4,
            units_total=2,
            units_occupied=2,
            reported_at=reported,  # type: ignore[arg-type]
        )

    facilities = [
        make_facility("a-stale-full", BRUGGE, pools=[full("a-p", 1, old)]),
        make_facility("b-fresh-full", BRUGGE, pools=[full("b-p", 2, NOW)]),
        make_facility("c-never-reported", BRUGGE, pools=[full("c-p", 3, None)]),
        # stale, but a room of 1 never fits a household of 2 whatever it reports
        make_facility(
            "d-stale-too-small",
            BRUGGE,
            pools=[make_pool("d-p", id=4, unit_kind="room", places_per_unit=1, reported_at=old)],
        ),
        # one stale full pool beside a fresh full one: perhaps room, so unknown
        make_facility("e-mixed", BRUGGE, pools=[full("e-p1", 5, NOW), full("e-p2", 6, old)]),
    ]
    result = search(facilities, req(children=[Child(age=4)]))
    assert result.options == []
    assert result.excluded == {"no_room_unknown": 3, "no_room": 2}
    assert "no_room_unknown" not in {a.code for a in result.alternatives}


@pytest.mark.parametrize("status", ["closed_to_admissions", "suspended", "location_compromised"])
def test_closed_places_are_never_offered(status: str) -> None:
    facilities = [make_facility("x", status=status), make_facility("y")]
    result = search(facilities, req())
    assert refs(result) == ["y"]
    assert result.excluded == {"status_closed": 1}
    assert "status_closed" not in {a.code for a in result.alternatives}


def test_reduced_capacity_is_offered_with_a_warning() -> None:
    result = search([make_facility("x", status="reduced")], req())
    assert {w.code for w in result.options[0].warnings} >= {"reduced_capacity"}


def test_reduced_capacity_says_until_when_in_belgian_time_and_nothing_else() -> None:
    """The requester learns the end of a reduced capacity (Belgian time), never the staff's
    reason (which the matcher does not even see); an end already past is not shown."""
    until = NOW + timedelta(days=2, hours=-4)  # 2025-01-17 17:30 UTC, 18:30 in Brussels
    summer = NOW.replace(month=7) + timedelta(days=2)  # 2025-07-17 21:30 UTC, 23:30 CEST
    cases = {
        until: "Temporarily reduced capacity until 2025-01-17 18:30 (Belgian time): call first.",
        summer: "Temporarily reduced capacity until 2025-07-17 23:30 (Belgian time): call first.",
        NOW - timedelta(minutes=1): "Temporarily reduced capacity: call first.",
        NOW: "Temporarily reduced capacity: call first.",
    }
    for when, message in cases.items():
        result = search([make_facility("x", status="reduced", status_until=when)], req())
        (warning,) = [w for w in result.options[0].warnings if w.code == "reduced_capacity"]
        assert warning.message == message


def test_location_compromised_takes_effect_at_once_in_the_index() -> None:
    facilities = [make_facility("x", id=1), make_facility("y", id=2)]
    index = MatcherIndex(facilities)
    assert refs(match(req(), index, requester_kind="police", now=NOW)) == ["x", "y"]
    index.update_status(1, "location_compromised")
    result = match(req(), index, requester_kind="police", now=NOW)
    assert refs(result) == ["y"]
    assert result == match_reference(req(), index.facilities, requester_kind="police", now=NOW)


def test_scheme_validity_and_planned_end() -> None:
    hotel = AccessPolicy(low_threshold=True)
    facilities = [
        make_facility("ends-soon", policy=hotel, planned_end=NOW + timedelta(days=3)),
        make_facility("ended", policy=hotel, planned_end=NOW - timedelta(days=1)),
        make_facility("later", policy=hotel, valid_from=NOW + timedelta(days=1)),
        make_facility("running", policy=hotel, valid_from=NOW - timedelta(days=30)),
    ]
    result = search(facilities, req(nights=7))
    assert refs(result) == ["running", "ends-soon"]
    assert result.excluded == {"not_yet_open": 1, "scheme_ended": 1}
    soon = result.options[1]
    assert "runs_past_planned_end" in {w.code for w in soon.warnings}
    assert soon.score_parts["continuity"] == 0.0
    short = search(facilities, req(nights=2))
    assert "runs_past_planned_end" not in {w.code for o in short.options for w in o.warnings}


def test_planned_end_warning_gives_the_belgian_date() -> None:
    """A scheme ending at midnight in Brussels on 1 February (23:00 UTC on 31 January, as the
    import stores "2025-02-01") is planned to end on 2025-02-01, the date the staff page
    shows ("runs until Sat 1 Feb, 00:00") and the admin typed: not on the UTC date, a day
    early."""
    ends = datetime(2025, 1, 31, 23, 0, tzinfo=UTC)
    facilities = [make_facility("hotel", policy=AccessPolicy(low_threshold=True), planned_end=ends)]
    [option] = search(facilities, req(nights=30)).options
    [warning] = [w for w in option.warnings if w.code == "runs_past_planned_end"]
    assert (
        warning.message == "The scheme is planned to end on 2025-02-01, before the 30 nights asked."
    )


def test_secret_address_shows_the_province_only_and_never_a_municipality() -> None:
    facilities = [
        make_facility("secret", LEUVEN, secret_address=True),
        make_facility("public", LEUVEN),
        make_facility("bxl-secret", IXELLES, secret_address=True),
    ]
    result = search(facilities, req(preferred_municipality_nis=NAMUR, limit=10))
    by_ref = {o.facility_ref: o for o in result.options}
    assert (by_ref["secret"].area_level, by_ref["secret"].area_nis) == ("province", "20001")
    assert by_ref["secret"].area_name == "Vlaams-Brabant"
    assert (by_ref["public"].area_level, by_ref["public"].area_nis) == ("arrondissement", "24000")
    assert by_ref["bxl-secret"].area_nis == "04000"
    assert by_ref["secret"].distance_km is not None and by_ref["secret"].distance_km % 10 == 0
    raw = msgspec.json.encode(result).decode()
    for word in ("municipality", "address", "lat", "lon", LEUVEN, IXELLES):
        assert word not in raw.lower().replace("municipalitynis", "")


def test_nights_over_max_stay_are_excluded() -> None:
    facilities = [
        make_facility("short", policy=AccessPolicy(max_stay_nights=90)),
        make_facility("long", policy=AccessPolicy(max_stay_nights=365)),
    ]
    result = search(facilities, req(nights=360))
    assert refs(result) == ["long"]
    assert result.excluded == {"max_stay": 1}


def test_household_fit_family_room_beds_and_infants() -> None:
    dorm = make_pool("a-dorm", id=1, unit_kind="bed", units_total=12)
    fam = make_pool("a-fam", id=2, unit_kind="family_room", places_per_unit=4, units_total=1)
    family = req([Adult(gender="female")], [Child(age=0), Child(age=6)])
    result = search([make_facility("a", pools=[dorm, fam])], family)
    assert result.options[0].pool_ref == "a-fam" and result.options[0].units_needed == 1

    # Three people in beds only if the policy lets a household take several beds.
    no_split = AccessPolicy(beds_for_households=False)
    dorm_only = [make_facility("d", policy=no_split, pools=[dorm])]
    assert search(dorm_only, family).excluded == {"no_room": 1}
    dorm_only = [make_facility("d", pools=[dorm])]
    option = search(dorm_only, family).options[0]
    assert option.units_needed == 3 and "shared_beds" in {w.code for w in option.warnings}
    assert option.score_parts["fit"] == pytest.approx(30 * 0.3)

    # An infant counts: four people do not fit a family room for three.
    small = make_pool("s-fam", id=3, unit_kind="family_room", places_per_unit=3, units_total=2)
    four = req([Adult(gender="female")], [Child(age=0), Child(age=2), Child(age=5)])
    assert search([make_facility("s", pools=[small])], four).excluded == {"no_room": 1}
    # ... unless the place lets a large household take rooms side by side: two of them, if
    # two are free; with one free, still no room.
    side = AccessPolicy(rooms_for_households=True)
    option = search([make_facility("s", policy=side, pools=[small])], four).options[0]
    assert option.units_needed == 2 and "several_rooms" in {w.code for w in option.warnings}
    assert "2 family rooms for 3, side by side, for the household of 4." in option.reasons
    assert option.score_parts["fit"] == pytest.approx(30 * 0.3)
    one_left = make_pool(
        "s-fam", id=3, unit_kind="family_room", places_per_unit=3, units_total=2, units_occupied=1
    )
    assert search([make_facility("s", policy=side, pools=[one_left])], four).excluded == {
        "no_room": 1
    }
    # One room that fits still beats two side by side.
    big = make_pool("s-big", id=4, unit_kind="family_room", places_per_unit=4, units_total=1)
    option = search([make_facility("s", policy=side, pools=[small, big])], four).options[0]
    assert option.pool_ref == "s-big" and option.units_needed == 1


def test_tight_fit_ranks_first_for_a_single_person() -> None:
    big = make_pool("b-room", id=1, unit_kind="room", places_per_unit=6, units_total=2)
    bed = make_pool("c-bed", id=2, unit_kind="bed", units_total=2)
    facilities = [make_facility("b", pools=[big]), make_facility("c", pools=[bed])]
    result = search(facilities, req())
    assert refs(result) == ["c", "b"]
    assert result.options[0].score_parts["fit"] == 30.0
    assert result.options[1].score_parts["fit"] == pytest.approx(5.0)


def test_free_units_count_holds_and_overfull_reports() -> None:
    held = make_pool("h-p", id=1, unit_kind="room", units_total=3, units_occupied=2, units_held=1)
    over = make_pool("o-p", id=2, unit_kind="room", units_total=3, units_occupied=5)
    facilities = [make_facility("h", pools=[held]), make_facility("o", pools=[over])]
    assert search(facilities, req()).excluded == {"no_room": 2}


def test_specialised_first_then_distance_and_too_far() -> None:
    ipv = AccessPolicy(specialisations=["ipv"])
    facilities = [
        make_facility("far-ipv", ARLON, policy=ipv),
        make_facility("near-generic", IXELLES),
        make_facility("mid-generic", LEUVEN),
    ]
    result = search(facilities, req(need="family_violence", preferred_municipality_nis=ETTERBEEK))
    assert refs(result) == ["far-ipv", "near-generic", "mid-generic"]
    near = result.options[1]
    assert near.distance_km is not None and near.distance_km < 5
    assert near.score_parts["distance"] > result.options[2].score_parts["distance"]
    capped = search(
        facilities,
        req(need="family_violence", preferred_municipality_nis=ETTERBEEK, max_distance_km=40),
    )
    assert refs(capped) == ["near-generic", "mid-generic"]
    assert capped.excluded == {"too_far": 1}


def test_a_place_beyond_an_hour_away_is_offered_with_a_warning() -> None:
    """R17: "within one hour" is the reach standard. The specialised refuge in Arlon (about
    150 km) still ranks first for an IPV case from Etterbeek, but says how far it is; Leuven
    (about 25 km) and a place without a preferred area say nothing. A secret address is judged
    by the distance it shows (rounded to 10 km), never by its exact one."""
    ipv = AccessPolicy(specialisations=["ipv"])
    facilities = [
        make_facility("far-ipv", ARLON, policy=ipv),
        make_facility("mid-generic", LEUVEN),
        make_facility("secret-brugge", BRUGGE, secret_address=True),
        make_facility("secret-namur", NAMUR, secret_address=True),
    ]
    result = search(facilities, req(preferred_municipality_nis=ETTERBEEK))
    by_ref = {o.facility_ref: o for o in result.options}
    assert refs(result)[0] == "far-ipv"
    far = by_ref["far-ipv"]
    warned = {w.code: w.message for w in far.warnings}
    assert far.distance_km is not None and far.distance_km > REACH_KM
    assert warned["beyond_one_hour"] == (
        f"About {far.distance_km:.0f} km from the preferred area: likely more than an hour's "
        "journey."
    )
    assert "beyond_one_hour" not in {w.code for w in by_ref["mid-generic"].warnings}
    brugge, namur = by_ref["secret-brugge"], by_ref["secret-namur"]
    assert brugge.distance_km == 90 and namur.distance_km == 50  # shown rounded
    assert dict((w.code, w.message) for w in brugge.warnings)["beyond_one_hour"].startswith(
        "About 90 km"
    )
    assert "beyond_one_hour" not in {w.code for w in namur.warnings}
    unplaced = search(facilities, req())
    assert all("beyond_one_hour" not in {w.code for w in o.warnings} for o in unplaced.options)


def test_avoid_radius_and_arrondissement() -> None:
    facilities = [
        make_facility("ixelles", IXELLES),
        make_facility("leuven", LEUVEN),
        make_facility("namur", NAMUR),
    ]
    result = search(
        facilities,
        req(avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis=ETTERBEEK, km=10)])),
    )
    assert refs(result) == ["leuven", "namur"]
    result = search(facilities, req(avoid=AvoidAreas(arrondissements=["24000", "90000"])))
    assert refs(result) == ["ixelles"]
    assert result.excluded == {"avoid_area": 2}
    with pytest.raises(UnknownArea):
        match(
            req(avoid=AvoidAreas(municipalities=["99999"])),
            facilities,
            requester_kind="police",
            now=NOW,
        )


HERSTAL, LIEGE = "62051", "62063"


def test_avoid_radius_is_measured_between_territories_not_centroids() -> None:
    """R17, the API as the console: Herstal borders Liège, but their centroids are 5.6 km
    apart, so "keep 3 km from Liège" measured between centroids would offer a place in
    Herstal, next door. Every municipality the matcher leaves out is exactly the reference
    list ``areas().within``."""
    from capacity.areas import areas, distance_km

    idx = areas()
    assert distance_km(idx.municipality(HERSTAL), idx.municipality(LIEGE)) > 5
    facilities = [make_facility("herstal", HERSTAL), make_facility("namur", NAMUR)]
    for km in (0, 3):
        result = search(
            facilities, req(avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis=LIEGE, km=km)]))
        )
        assert refs(result) == ["namur"] and result.excluded == {"avoid_area": 1}
    # one place in every municipality: what is left out is the reference list, no more
    everywhere = [make_facility(nis, nis) for nis in sorted(idx.municipalities)]
    for centre, km in ((LIEGE, 0), (SCHAERBEEK, 5), (ARLON, 12.5)):
        request = req(
            avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis=centre, km=km)]), limit=100
        )
        result = match(request, everywhere, requester_kind="police", now=NOW)
        avoided = set(idx.within(centre, km))
        assert not {o.facility_ref for o in result.options} & avoided
        assert result.excluded["avoid_area"] == len(avoided)


def test_free_only_and_cost() -> None:
    facilities = [
        make_facility("free"),
        make_facility("income", policy=AccessPolicy(cost="income_based")),
        make_facility("paying", policy=AccessPolicy(cost="paying")),
    ]
    assert [o.cost for o in search(facilities, req()).options] == [
        "free",
        "income_based",
        "paying",
    ]
    result = search(facilities, req(free_only=True))
    assert refs(result) == ["free"] and result.excluded == {"not_free": 2}
    no_income = search(facilities, req(household={"income": "no"}))
    assert no_income.excluded == {"paying_no_income": 1}


def test_load_is_spread_and_ties_are_broken_by_ref() -> None:
    busy = make_pool(
        "a-p", id=1, unit_kind="family_room", places_per_unit=4, units_total=10, units_occupied=9
    )
    calm = make_pool("b-p", id=2, unit_kind="family_room", places_per_unit=4, units_total=10)
    result = search([make_facility("a", pools=[busy]), make_facility("b", pools=[calm])], req())
    assert refs(result) == ["b", "a"]
    twins = [make_facility("z"), make_facility("m"), make_facility("q")]
    assert refs(search(twins, req())) == ["m", "q", "z"]
    assert refs(search(list(reversed(twins)), req())) == ["m", "q", "z"]


def test_update_pool_changes_availability_like_a_rebuild() -> None:
    facilities = synthetic_facilities(200, seed=11)
    index = MatcherIndex(facilities)
    request = req(limit=100)
    before = match(request, index, requester_kind="helpline", now=NOW)
    top = before.options[0]
    pool = next(
        p
        for f in index.facilities
        if f.ref == top.facility_ref
        for p in f.pools
        if p.ref == top.pool_ref
    )
    index.update_pool(
        pool.id,
        units_total=pool.units_total,
        units_occupied=pool.units_total,
        units_held=0,
        units_blocked=0,
        reported_at=NOW,
        confirmed_at=None,
    )
    after = match(request, index, requester_kind="helpline", now=NOW)
    assert (top.facility_ref, top.pool_ref) not in {
        (o.facility_ref, o.pool_ref) for o in after.options
    }
    assert after == match(request, index.facilities, requester_kind="helpline", now=NOW)
    assert after == match_reference(request, index.facilities, requester_kind="helpline", now=NOW)


def test_warnings_for_language_and_health_condition() -> None:
    policy = AccessPolicy(languages=["nl"], health_conditions=["negative_test"])
    result = search(
        [make_facility("x", BRUGGE, policy=policy)], req(household={"languages": ["fr"]})
    )
    option = result.options[0]
    assert {"language_mismatch", "health_condition_to_meet"} <= {w.code for w in option.warnings}
    assert option.score_parts["language"] == 0.0


def test_limit_and_counts_on_synthetic_data() -> None:
    facilities = synthetic_facilities(500, seed=2)
    result = search(facilities, req(need="homelessness", limit=5))
    assert len(result.options) == 5 and result.matched > 5
    scores = [o.score for o in result.options]
    assert scores == sorted(scores, reverse=True)
    assert result.considered == 500


def test_the_matcher_modules_stay_pure() -> None:
    """CONVENTIONS §2.1-2: no database, HTTP or web framework, and no clock in placement."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "placement"
    for name in ("household", "snapshot", "rules", "matcher", "synthetic", "policy"):
        source = (root / f"{name}.py").read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for mod in mods:
                    assert mod.split(".")[0] not in {"sqlalchemy", "httpx", "litestar"}, name
        assert ".now(" not in source and "utcnow" not in source and "time.time" not in source


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=300.0), min_size=1, max_size=40))
def test_round4_gives_the_floats_of_pythons_round(values: list[float]) -> None:
    """Options show parts rounded by ``_round4`` (array operations) in the fast path and by
    ``round`` in the reference: the floats must be the same, halves and near-halves too."""
    halves = [(k + 0.5) / 10**4 for k in (0, 1, 5, 224_999, 1_234_567)]
    near = [math.nextafter(h, d) for h in halves for d in (0.0, 1e9)]
    arr = np.array([*values, *halves, *near, 0.03125, 22.5, 2.5e5 + 0.00005])
    assert _round4(arr).tolist() == [round(v, 4) for v in arr.tolist()]
