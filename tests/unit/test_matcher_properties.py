"""Properties of the matcher over random facilities and households (hypothesis).

The oracle here is written independently of the matcher (rules.evaluate for the policy,
then status, validity, household fit, free units and areas straight from DESIGN), so the
soundness and completeness properties check the matcher, not a copy of it.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import get_args

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity.areas import Municipality, areas, distance_km
from placement.household import (
    Adult,
    AvoidAreas,
    AvoidRadius,
    Child,
    Household,
    SearchRequest,
)
from placement.matcher import MatcherIndex, SearchResult, match, match_reference
from placement.policy import AccessPolicy, AdmissionWindow, RequesterKind
from placement.rules import evaluate
from placement.snapshot import FacilitySnapshot, PoolSnapshot
from placement.synthetic import SYNTHETIC_NOW

NOW = SYNTHETIC_NOW
MUNIS = [
    "21001", "21004", "21005", "21009", "21015", "21016", "24062",
    "92094", "31005", "81001", "11002", "62063", "44021",
]  # fmt: skip
ARRONDISSEMENTS = ["21000", "24000", "92000", "11000"]
STATUSES = ["reduced", "closed_to_admissions", "suspended", "location_compromised"]
GENDERS = ["female", "male", "nonbinary"]
REQUESTERS = list(get_args(RequesterKind))
SPECS = ["ipv", "sexual_violence", "family_violence", "trafficking", "homelessness", "youth"]
WINDOWS = [
    None,
    [AdmissionWindow(start="19:00", end="09:00")],
    [AdmissionWindow(days=[0, 1, 2, 3, 4], start="09:00", end="17:00")],
    [AdmissionWindow(start="08:00", end="22:00")],
]

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def mostly(value: object, *others: object) -> st.SearchStrategy:
    """``value`` three times in four, else one of ``others``: most random facilities must
    admit most households, or the properties would only ever see empty results."""
    return st.sampled_from([value] * (3 * max(1, len(others))) + list(others))


@st.composite
def policies(draw: st.DrawFn) -> AccessPolicy:
    return AccessPolicy(
        low_threshold=draw(st.booleans()),
        accepts_undocumented=draw(mostly(True, False)),
        requires_income=draw(mostly(False, True)),
        cost=draw(mostly("free", "paying", "income_based")),
        genders=draw(mostly(GENDERS, ["female"], ["male"], ["female", "nonbinary"])),
        accepts_children=draw(mostly(True, False)),
        max_children=draw(mostly(None, 0, 1, 2, 3)),
        child_min_age=draw(mostly(0, 2, 4)),
        child_max_age=draw(mostly(17, 10, 12, 14)),
        max_boy_age=draw(st.none() | st.integers(8, 17)),
        min_adult_age=draw(mostly(18, 16, 21, 25)),
        accepts_adolescents_alone=draw(st.booleans()),
        specialisations=draw(st.lists(st.sampled_from(SPECS), max_size=2, unique=True)),
        wheelchair_accessible=draw(st.booleans()),
        accepts_pets=draw(st.booleans()),
        languages=draw(
            st.lists(st.sampled_from(["fr", "nl", "de", "en"]), min_size=1, max_size=2, unique=True)
        ),
        interpreters_available=draw(st.booleans()),
        max_stay_nights=draw(mostly(None, 1, 7, 30, 365)),
        admission_hours=draw(mostly(*WINDOWS)),
        referral_required_from=draw(mostly([], ["police"], ["cpas", "helpline"])),
        health_conditions=draw(mostly([], ["negative_test"])),
        beds_for_households=draw(st.booleans()),
        rooms_for_households=draw(st.booleans()),
    )


def moment(minutes: int | None) -> datetime | None:
    return None if minutes is None else NOW + timedelta(minutes=minutes)


@st.composite
def facility_lists(draw: st.DrawFn) -> list[FacilitySnapshot]:
    n = draw(st.integers(0, 14))
    out = []
    pool_id = 1
    for i in range(n):
        pools = []
        for k in range(draw(mostly(2, 0, 1, 3))):
            total = draw(mostly(4, 0, 1, 2, 5))
            pools.append(
                PoolSnapshot(
                    id=pool_id,
                    ref=f"f{i:02d}-p{k}",
                    unit_kind=draw(st.sampled_from(["bed", "room", "family_room"])),
                    places_per_unit=draw(st.sampled_from([1, 2, 3, 4, 6])),
                    units_total=total,
                    units_occupied=draw(mostly(0, 1, 2, 3, 5, 6)),
                    units_held=draw(mostly(0, 1, 2)),
                    reported_at=moment(draw(st.none() | st.integers(-3000, 0))),
                    confirmed_at=moment(draw(st.none() | st.integers(-3000, 0))),
                )
            )
            pool_id += 1
        out.append(
            FacilitySnapshot(
                id=i + 1,
                ref=f"f{i:02d}",
                alias=f"Place {i}",
                kind=draw(st.sampled_from(["refuge", "crisis_hotel", "night_shelter"])),
                operator_id=1,
                municipality_nis=draw(st.sampled_from(MUNIS)),
                policy=draw(policies()),
                status=draw(mostly("open", *STATUSES)),
                valid_from=moment(draw(mostly(None, -50000, -1, 1, 5000))),
                planned_end=moment(draw(mostly(None, -5000, 0, 3000, 20000, 500000))),
                secret_address=draw(st.booleans()),
                stale_after_minutes=draw(st.sampled_from([60, 720, 1440])),
                pools=pools,
            )
        )
    return draw(st.permutations(out))


adults = st.builds(
    Adult,
    gender=st.sampled_from(GENDERS),
    age_band=mostly("25-64", "16-17", "18-24", "65+"),
)
children = st.builds(
    Child,
    age=st.integers(0, 17),
    gender=st.sampled_from(["female", "male", "nonbinary", "unknown"]),
)


@st.composite
def requests(draw: st.DrawFn) -> SearchRequest:
    hh = Household(
        adults=draw(st.lists(adults, min_size=1, max_size=2)),
        children=draw(st.lists(children, max_size=3)),
        residence_status=draw(st.sampled_from(["documented", "undocumented", "unknown"])),
        income=draw(st.sampled_from(["yes", "no", "unknown"])),
        languages=draw(st.lists(st.sampled_from(["fr", "nl", "ar"]), max_size=2, unique=True)),
        wheelchair=draw(mostly(False, True)),
        pets=draw(mostly(False, True)),
        health_conditions_met=draw(st.sampled_from([[], ["negative_test"]])),
    )
    preferred = draw(st.none() | st.sampled_from(MUNIS))
    return SearchRequest(
        household=hh,
        need=draw(st.sampled_from(["ipv", "family_violence", "homelessness", "other"])),
        nights=draw(st.sampled_from([1, 3, 30, 200])),
        preferred_municipality_nis=preferred,
        max_distance_km=None if preferred is None else draw(mostly(None, 5.0, 30.0, 120.0)),
        avoid=AvoidAreas(
            municipalities=draw(mostly([]) | st.lists(st.sampled_from(MUNIS), max_size=2)),
            arrondissements=draw(
                mostly([]) | st.lists(st.sampled_from(ARRONDISSEMENTS), max_size=1)
            ),
            radius=draw(
                st.lists(
                    st.builds(
                        AvoidRadius,
                        municipality_nis=st.sampled_from(MUNIS),
                        km=st.sampled_from([0.0, 7.5, 25.0]),
                    ),
                    max_size=1,
                )
            ),
        ),
        free_only=draw(mostly(False, True)),
        limit=100,
    )


nows = st.integers(0, 7 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))
kinds = st.sampled_from(REQUESTERS)


# ---------------------------------------------------------------- the independent oracle


def units_needed(pool: PoolSnapshot, size: int, policy: AccessPolicy) -> int | None:
    """DESIGN: one room/family room of enough places (or several side by side where the
    policy allows), or beds of one bed pool."""
    if pool.unit_kind in ("room", "family_room"):
        if pool.places_per_unit >= size:
            return 1
        return math.ceil(size / pool.places_per_unit) if policy.rooms_for_households else None
    n = math.ceil(size / pool.places_per_unit)
    return n if n == 1 or policy.beds_for_households else None


def judged_km(fac: FacilitySnapshot, km: float) -> float:
    """A secret place is filtered and ranked by the distance it shows: rounded to 10 km, at
    least 10 (what a requester may learn of it, however many searches they make)."""
    return max(10, round(km / 10) * 10) if fac.secret_address else km


def arrondissement_of(m: Municipality) -> list[Municipality]:
    idx = areas()
    return [x for x in idx.municipalities.values() if x.arrondissement_nis == m.arrondissement_nis]


def secret_km(a: Municipality, m: Municipality) -> float:
    """A secret place's distance from ``a``: to its arrondissement's centre (its centroids'
    mean)."""
    members = arrondissement_of(m)
    lat = math.radians(sum(x.lat for x in members) / len(members))
    lon = math.radians(sum(x.lon for x in members) / len(members))
    lat0, lon0 = math.radians(a.lat), math.radians(a.lon)
    h = (
        math.sin((lat - lat0) / 2) ** 2
        + math.cos(lat0) * math.cos(lat) * math.sin((lon - lon0) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def in_avoided_area(fac: FacilitySnapshot, request: SearchRequest) -> bool:
    idx = areas()
    m = idx.municipality(fac.municipality_nis)
    named = {idx.municipality(c).nis for c in request.avoid.municipalities}
    for a in request.avoid.arrondissements:
        named.update(c for c, x in idx.municipalities.items() if x.arrondissement_nis == a)
    # a secret place counts as anywhere in its arrondissement: left out when any of its
    # municipalities would be
    anywhere = arrondissement_of(m) if fac.secret_address else [m]
    return any(x.nis in named for x in anywhere) or any(
        x.nis in idx.within(r.municipality_nis, r.km)
        for r in request.avoid.radius
        for x in anywhere
    )


def truly_in_avoided_area(fac: FacilitySnapshot, request: SearchRequest) -> bool:
    """By the place's own municipality, secret or not: what judging a secret place by its
    arrondissement must never let through (it may leave out more, never less)."""
    idx = areas()
    m = idx.municipality(fac.municipality_nis)
    named = {idx.municipality(c).nis for c in request.avoid.municipalities}
    for a in request.avoid.arrondissements:
        named.update(c for c, x in idx.municipalities.items() if x.arrondissement_nis == a)
    return m.nis in named or any(
        m.nis in idx.within(r.municipality_nis, r.km) for r in request.avoid.radius
    )


def admissible(fac: FacilitySnapshot, request: SearchRequest, kind: str, now: datetime) -> bool:
    if evaluate(fac.policy, request, requester_kind=kind, now=now):  # type: ignore[arg-type]
        return False
    if fac.status not in ("open", "reduced"):
        return False
    if fac.valid_from is not None and fac.valid_from > now:
        return False
    if fac.planned_end is not None and fac.planned_end <= now:
        return False
    size = request.household.size
    if not any(
        (n := units_needed(p, size, fac.policy)) is not None and p.free >= n for p in fac.pools
    ):
        return False
    if in_avoided_area(fac, request):
        return False
    if request.preferred_municipality_nis and request.max_distance_km is not None:
        idx = areas()
        here = idx.municipality(request.preferred_municipality_nis)
        there = idx.municipality(fac.municipality_nis)
        d = secret_km(here, there) if fac.secret_address else distance_km(there, here)
        if judged_km(fac, d) > request.max_distance_km:
            return False
    return True


def option_set(result: SearchResult) -> set[str]:
    return {o.facility_ref for o in result.options}


# ---------------------------------------------------------------- properties


@SETTINGS
@given(facility_lists(), requests(), kinds, nows)
def test_sound_and_complete(facs, request, kind, now) -> None:
    result = match(request, facs, requester_kind=kind, now=now)
    by_ref = {f.ref: f for f in facs}
    for option in result.options:
        fac = by_ref[option.facility_ref]
        assert admissible(fac, request, kind, now), option.facility_ref
        pool = next(p for p in fac.pools if p.ref == option.pool_ref)
        assert units_needed(pool, request.household.size, fac.policy) == option.units_needed
        assert pool.free >= option.units_needed and option.free_units == pool.free
        assert not in_avoided_area(fac, request)
        assert not truly_in_avoided_area(fac, request)
    expected = {f.ref for f in facs if admissible(f, request, kind, now)}
    assert option_set(result) == expected
    assert result.matched == len(expected)
    assert result.considered == len(facs)


def test_the_oracle_leaves_out_a_secret_place_near_an_avoided_area() -> None:
    """A secret place counts as anywhere in its arrondissement: avoiding another municipality
    of it (Anderlecht, for a place in Brussels), or a radius that reaches one of them (0 km
    around Kraainem, 2.8 km from Brussels but touching Woluwe-Saint-Lambert), leaves it out;
    a public place there is not. The oracle above must say so too, or
    ``test_sound_and_complete`` fails whenever hypothesis happens to draw a secret place
    beside an avoided area (rarely within its 100 examples: a flaky suite)."""
    policy = AccessPolicy(languages=["fr"])

    def fac(i: int, secret: bool) -> FacilitySnapshot:
        return FacilitySnapshot(
            id=i,
            ref=f"f{i}",
            alias=f"Place {i}",
            kind="refuge",
            operator_id=1,
            municipality_nis="21004",  # Brussels, beside Anderlecht; 10 km or less from Leuven's
            policy=policy,
            status="open",
            secret_address=secret,
            pools=[
                PoolSnapshot(
                    id=i,
                    ref=f"f{i}-p",
                    unit_kind="bed",
                    places_per_unit=1,
                    units_total=4,
                    units_occupied=0,
                    units_held=0,
                    reported_at=NOW,
                    confirmed_at=NOW,
                )
            ],
        )

    facs = [fac(1, True), fac(2, False)]
    household = Household(adults=[Adult(gender="female", age_band="25-64")], languages=["fr"])
    for avoid in (
        AvoidAreas(municipalities=["21001"]),
        AvoidAreas(radius=[AvoidRadius(municipality_nis="23099", km=0)]),
    ):
        request = SearchRequest(household=household, need="ipv", nights=1, avoid=avoid)
        expected = {f.ref for f in facs if admissible(f, request, "helpline", NOW)}
        assert option_set(match(request, facs, requester_kind="helpline", now=NOW)) == expected
        assert expected == {"f2"}


@SETTINGS
@given(facility_lists(), requests(), kinds, nows, st.data())
def test_adding_a_requirement_never_adds_options(facs, request, kind, now, data) -> None:
    base = option_set(match(request, facs, requester_kind=kind, now=now))
    hh = request.household
    stricter = [
        msgspec.structs.replace(
            request, household=msgspec.structs.replace(hh, children=[*hh.children, child])
        )
        for child in [data.draw(children)]
    ]
    stricter += [
        msgspec.structs.replace(request, household=msgspec.structs.replace(hh, **change))
        for change in (
            {"pets": True},
            {"wheelchair": True},
            {"residence_status": "undocumented"},
            {"income": "no"},
            {"health_conditions_met": []},
        )
    ]
    stricter += [
        msgspec.structs.replace(request, free_only=True),
        msgspec.structs.replace(request, nights=365),
        msgspec.structs.replace(
            request,
            avoid=msgspec.structs.replace(
                request.avoid,
                municipalities=[*request.avoid.municipalities, data.draw(st.sampled_from(MUNIS))],
            ),
        ),
    ]
    if request.preferred_municipality_nis is not None:
        tighter = min(request.max_distance_km or 500.0, data.draw(st.sampled_from([1.0, 20.0])))
        stricter.append(msgspec.structs.replace(request, max_distance_km=tighter))
    for strict in stricter:
        assert option_set(match(strict, facs, requester_kind=kind, now=now)) <= base


@SETTINGS
@given(facility_lists(), requests(), kinds, nows)
def test_relaxing_an_alternative_gives_exactly_its_extra_options(facs, request, kind, now) -> None:
    base = match(request, facs, requester_kind=kind, now=now)
    extra = {a.code: a.extra_options for a in base.alternatives}
    for alt in base.alternatives:
        assert alt.code in base.excluded and alt.extra_options <= base.excluded[alt.code]
        relaxed = match(request, facs, requester_kind=kind, now=now, relax={alt.code})
        assert option_set(base) <= option_set(relaxed)
        assert relaxed.matched == base.matched + alt.extra_options
    # The same, by changing the request itself where one field drives one rule.
    hh = request.household
    by_request = {
        "not_free": msgspec.structs.replace(request, free_only=False),
        "pets": msgspec.structs.replace(request, household=msgspec.structs.replace(hh, pets=False)),
        "wheelchair": msgspec.structs.replace(
            request, household=msgspec.structs.replace(hh, wheelchair=False)
        ),
        "documents_required": msgspec.structs.replace(
            request, household=msgspec.structs.replace(hh, residence_status="documented")
        ),
        "avoid_area": msgspec.structs.replace(request, avoid=AvoidAreas()),
        "too_far": msgspec.structs.replace(request, max_distance_km=None),
        "max_stay": msgspec.structs.replace(request, nights=1),
    }
    for code, looser in by_request.items():
        relaxed = match(looser, facs, requester_kind=kind, now=now)
        assert option_set(base) <= option_set(relaxed), code
        assert relaxed.matched == base.matched + extra.get(code, 0), code


@SETTINGS
@given(facility_lists(), requests(), kinds, nows, st.randoms(use_true_random=False))
def test_ranking_is_deterministic(facs, request, kind, now, rnd) -> None:
    first = match(request, facs, requester_kind=kind, now=now)
    shuffled = list(facs)
    rnd.shuffle(shuffled)
    assert match(request, shuffled, requester_kind=kind, now=now) == first
    scores = [(-o.score, o.facility_ref) for o in first.options]
    assert scores == sorted(scores)
    short = msgspec.structs.replace(request, limit=3)
    assert (
        match(request=short, index_or_facilities=facs, requester_kind=kind, now=now).options
        == (first.options[:3])
    )


@SETTINGS
@given(
    facility_lists(),
    requests(),
    kinds,
    nows,
    st.integers(0, 2**32 - 1),
    st.sets(st.sampled_from(["pets", "not_free", "avoid_area", "boy_too_old", "admission_hours"])),
)
def test_fast_index_equals_reference(facs, request, kind, now, seed, relax) -> None:
    index = MatcherIndex(facs)
    rng = random.Random(seed)
    pools = [p for f in facs for p in f.pools]
    for _ in range(rng.randint(0, 5)):
        if pools:
            p = rng.choice(pools)
            index.update_pool(
                p.id,
                units_total=rng.randint(0, 6),
                units_occupied=rng.randint(0, 6),
                units_held=rng.randint(0, 2),
                units_blocked=0,
                reported_at=rng.choice([None, now, now - timedelta(days=2)]),
                confirmed_at=None,
            )
        if facs and rng.random() < 0.3:
            f = rng.choice(facs)
            index.update_status(f.id, rng.choice(["open", "suspended", "reduced"]))
    for limit in (100, 2):
        r = msgspec.structs.replace(request, limit=limit)
        fast = match(r, index, requester_kind=kind, now=now, relax=relax)
        slow = match_reference(r, index.facilities, requester_kind=kind, now=now, relax=relax)
        assert fast == slow
        assert fast == match(r, index.facilities, requester_kind=kind, now=now, relax=relax)


def test_fast_index_equals_reference_on_synthetic_data() -> None:
    from placement.synthetic import synthetic_facilities

    facs = synthetic_facilities(1500, seed=9)
    index = MatcherIndex(facs)
    rng = random.Random(1)
    for _ in range(40):
        hh = Household(
            adults=[Adult(gender=rng.choice(GENDERS))],
            children=[Child(age=rng.randint(0, 17)) for _ in range(rng.randint(0, 3))],
            residence_status=rng.choice(["documented", "undocumented", "unknown"]),
            languages=[rng.choice(["fr", "nl", "de"])],
        )
        request = SearchRequest(
            household=hh,
            need=rng.choice(["ipv", "homelessness", "family_violence"]),
            preferred_municipality_nis=rng.choice(MUNIS),
            max_distance_km=rng.choice([None, 60.0]),
            limit=rng.choice([5, 20, 100]),
        )
        kind = rng.choice([*REQUESTERS, "admin"])  # admins search too, and refer no one
        assert match(request, index, requester_kind=kind, now=NOW) == match_reference(
            request, facs, requester_kind=kind, now=NOW
        )


@SETTINGS
@given(
    facility_lists(),
    requests(),
    kinds,
    st.lists(st.integers(-60, 3 * 24 * 60), min_size=2, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_one_index_over_time_equals_the_reference(facs, request, kind, minutes, seed) -> None:
    """The index keeps per-search work between searches (admission per minute, referral per
    requester kind, the best pool per household size until a count changes or a pool goes
    stale): searching one index at moments going back and forth, with counts changing in
    between, must still equal the reference at each moment."""
    index = MatcherIndex(facs)
    rng = random.Random(seed)
    pools = [p for f in facs for p in f.pools]
    for m in minutes:
        now = NOW + timedelta(minutes=m)  # pools turn stale as time goes on (and back)
        for r in (request, msgspec.structs.replace(request, limit=3)):
            assert match(r, index, requester_kind=kind, now=now) == match_reference(
                r, index.facilities, requester_kind=kind, now=now
            )
        if pools and rng.random() < 0.5:
            p = rng.choice(pools)
            index.update_pool(
                p.id,
                units_total=rng.randint(0, 6),
                units_occupied=rng.randint(0, 6),
                units_held=rng.randint(0, 2),
                units_blocked=0,
                reported_at=rng.choice([None, now, now - timedelta(hours=13)]),
                confirmed_at=None,
            )
