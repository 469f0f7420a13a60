"""The placement matcher: a household and constraints in, ranked options out.

Pure (no I/O, no clock: ``now`` is a parameter). Two implementations give the same result:
``MatcherIndex`` (numpy arrays of policy attributes and pool counters, one boolean mask per
rule, built once and updated in place when a count changes) and ``match_reference`` (a plain
loop over facilities, kept as the readable specification and property-tested against the
fast path).

Household fit
    A household stays together at ONE facility. It takes either ONE ``room`` or
    ``family_room`` unit whose ``places_per_unit`` is at least the household size (every
    child counts, infants too), or ``ceil(size / places_per_unit)`` units of ONE ``bed``
    pool — several beds only if the policy allows ``beds_for_households`` (a single person
    always fits one bed) — or, for a household larger than one room, ``ceil(size /
    places_per_unit)`` rooms of ONE room/family-room pool if the policy allows
    ``rooms_for_households`` (side by side, with a ``several_rooms`` warning). The pool must
    have that many free units (free = total - occupied - held, never below 0).

Ranking — the score is a sum of weighted parts, each in [0, weight]; ``score_parts`` on
every option shows them so a practitioner can see why one place comes before another:

=============  ======  ================================================================
part           weight  value
=============  ======  ================================================================
specialised    100     1 if the facility has a specialisation serving the need (``ipv``
                       serves ``ipv``, ``family_violence`` and ``sexual_violence``), else 0.
                       The weight dominates: specialised care comes first.
fit            30      room/family room: size / places (a family room for a family beats
                       a 6-place room for one person); one bed: size / places; a household
                       over several beds of a shared room, or over several rooms: 0.3.
distance       25      1 / (1 + km / 30) from the preferred municipality's centroid to the
                       facility's (0 km → 1, 30 km → 0.5, 90 km → 0.25); 0 for all when no
                       preferred area is given.
freshness      20      1 if the pool's last report or confirmation is within the
                       facility's ``stale_after_minutes``, else 0 (stale places still
                       appear, lower, with ``stale_data``).
admission      10      1 if intake is possible now, 0 if it opens later (within 12 h).
language       10      1 if staff speak a household language (or none given), 0.5 if
                       interpreters are available, 0 otherwise.
continuity     10      1 if the scheme runs for all the nights asked, else 0
                       (``runs_past_planned_end``).
load           5       1 - (occupied + held) / total of the pool: spreads households away
                       from saturated places.
=============  ======  ================================================================

Within a facility the pool with the highest fit + freshness + load is chosen (ties: the
smallest pool ref). Options are sorted by score, highest first; ties by facility ref, so
the same input always gives the same ranking.

Exclusions
    Every facility failing a rule counts under that rule's code in ``excluded`` (a facility
    failing two rules counts under both). For each relaxable code, ``alternatives`` says how
    many options relaxing that one rule alone would add: the facilities whose only failure
    it is. ``match(..., relax={code})`` runs the search with the rule switched off.

What an option never shows: the address, coordinates or municipality of a facility.
The area is the arrondissement, or the province (region for Brussels) for a secret
address; the distance is rounded to 1 km, or to 10 km (at least 10) for a secret address.

Nor can a series of searches tell more of a secret address than its arrondissement. A secret
place is judged as if it could be anywhere in its arrondissement, never by its own municipality
(``_cloak``): an area to avoid leaves it out when it would leave out any municipality of the
arrondissement (an avoided municipality in it, a radius reaching one of them), so nothing
truly within an area to avoid is ever offered; its distance is the distance to the
arrondissement's centre, rounded as shown and so filtered and ranked (the score's distance part
and the maximum distance). Judged by its own municipality, even in 10 km bands, the answers
from one avoided or preferred municipality after another were different for almost every
municipality: they named it (trilateration).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Literal, NamedTuple, get_args

import msgspec
import numpy as np

from capacity.areas import areas
from placement.household import ResolvedAreas, SearchRequest, validate_areas
from placement.policy import AccessPolicy, AdmissionWindow, RequesterKind
from placement.rules import (
    ADMISSION_LOOKAHEAD_MINUTES,
    ALL_RULES,
    BRUSSELS,
    RELAX_TEXT,
    RELAXABLE_RULES,
    SPECIALISATIONS_FOR_NEED,
    HouseholdFacts,
    Warning,
    admission_wait_minutes,
    evaluate,
    household_facts,
    is_specialised,
    warnings_with_wait,
)
from placement.snapshot import ADMITTING_STATUSES, FacilitySnapshot, PoolSnapshot

W_SPECIALISED = 100.0
W_FIT = 30.0
W_DISTANCE = 25.0
W_FRESH = 20.0
W_ADMISSION = 10.0
W_LANGUAGE = 10.0
W_CONTINUITY = 10.0
W_LOAD = 5.0
DISTANCE_HALF_KM = 30.0
#: R17: seed 001 sets "within one hour" as the national reach standard. Beyond this straight-
#: line distance between municipality centroids (roads are longer, motorways faster: about an
#: hour by car) an option carries ``beyond_one_hour``. A warning, not a rule: a specialised
#: refuge 80 km away may still be the right place, but the operator must see the journey.
REACH_KM = 60.0
SHARED_BEDS_FIT = 0.3
SCORE_PARTS = (
    "specialised",
    "fit",
    "distance",
    "freshness",
    "admission",
    "language",
    "continuity",
    "load",
)

_NOT_FIT = 10**6  # "units needed" of a pool the household cannot use
_BIG = 10**6
_GENDER_BIT = {"female": 1, "male": 2, "nonbinary": 4}
_REQUESTERS: tuple[str, ...] = get_args(RequesterKind)  # bit positions of the referral rule
_SPECS = (
    "ipv",
    "sexual_violence",
    "family_violence",
    "trafficking",
    "youth",
    "lgbtqi",
    "elderly",
    "homelessness",
    "disability",
    "migrants",
)
_KIND_CODE = {"bed": 0, "room": 1, "family_room": 2}
_KIND_NAME = {0: "bed", 1: "room", 2: "family room"}
_COST_CODE = {"free": 0, "paying": 1, "income_based": 2}
_RULE_POS = {code: k for k, code in enumerate(ALL_RULES)}


# ----------------------------------------------------------------------------- results


class Option(msgspec.Struct, kw_only=True, rename="camel"):
    """What a requester may see of a facility for this household. Never an address."""

    facility_ref: str
    pool_ref: str
    alias: str
    kind: str
    area_nis: Annotated[
        str,
        msgspec.Meta(
            description="NIS code of the place's arrondissement; of its province (the Brussels "
            "region in Brussels) for a secret address. Never the municipality."
        ),
    ]
    area_level: Literal["arrondissement", "province"]
    area_name: str
    units_needed: int
    free_units: int
    cost: str
    data_age_seconds: int | None
    stale: bool
    warnings: list[Warning]
    reasons: list[str]
    score: float
    score_parts: dict[str, float]
    intake_phone: str
    # R21: the intake phone answers round the clock; false: only in office hours (at night,
    # call the helpline instead)
    intake_phone_24h: bool = msgspec.field(name="intakePhone24h")
    handover_protocol: str
    distance_km: Annotated[
        float | None,
        msgspec.Meta(
            description="km from the preferred municipality (centroid to centroid, straight "
            "line), rounded to 1 km. A secret address counts as anywhere in its "
            "arrondissement: from the middle of the arrondissement, rounded to 10 km (at least "
            "10). null without a preferred municipality."
        ),
    ]
    specialised: bool
    # every specialisation / target group of the place (R13: youth, lgbtqi, elderly,
    # disability, migrants...), shown as information, never a rule
    specialisations: list[str]


class Alternative(msgspec.Struct, kw_only=True, rename="camel"):
    """How many more options relaxing one constraint alone would give."""

    code: str
    message: str
    extra_options: int


class SearchResult(msgspec.Struct, kw_only=True, rename="camel"):
    """Ranked options (at most ``limit``), why the others were excluded, and what helps.

    ``matched`` is the number of options before the limit; ``considered`` the facilities
    looked at.
    """

    options: list[Option]
    excluded: dict[str, int]
    alternatives: list[Alternative]
    considered: int
    matched: int


# ----------------------------------------------------------------------------- geography


@dataclass(frozen=True)
class _Geo:
    codes: tuple[str, ...]
    pos: dict[str, int]
    dist: np.ndarray  # km between municipality centroids, shared by both implementations
    gap: np.ndarray  # km between territories (``capacity.areas.territory_gap_km``): R17
    # A secret place is judged by its arrondissement, never its municipality (``_cloak``):
    zone_dist: np.ndarray  # [a, m]: km from a's centroid to the centre of m's arrondissement
    zone_gap: np.ndarray  # [a, m]: the smallest gap from a to a municipality of m's arrondissement
    # [a, m] for a public place, [a, len(codes) + m] for a secret one (``judged_col``): one
    # gather per search instead of two and a choice
    judged_dist: np.ndarray
    judged_gap: np.ndarray
    zone_of: np.ndarray  # [m]: the index of m's arrondissement


def _haversine(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """km between every point of (lat1, lon1) (rows) and of (lat2, lon2) (columns), radians."""
    dlat = lat2[None, :] - lat1[:, None]
    dlon = lon2[None, :] - lon1[:, None]
    h = (
        np.sin(dlat / 2) ** 2
        + np.cos(lat1[:, None]) * np.cos(lat2[None, :]) * np.sin(dlon / 2) ** 2
    )
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


@cache
def _geo() -> _Geo:
    idx = areas()
    codes = tuple(sorted(idx.municipalities))
    lat = np.radians([idx.municipalities[c].lat for c in codes])
    lon = np.radians([idx.municipalities[c].lon for c in codes])
    dist = _haversine(lat, lon, lat, lon)
    dist.setflags(write=False)
    radius = np.sqrt(np.array([idx.municipalities[c].area_km2 for c in codes]) / np.pi)
    gap = dist - radius[:, None] - radius[None, :]
    gap.setflags(write=False)
    zone_of, zone_dist, zone_gap = _cloak(codes, lat, lon, gap)
    judged_dist, judged_gap = np.hstack([dist, zone_dist]), np.hstack([gap, zone_gap])
    judged_dist.setflags(write=False)
    judged_gap.setflags(write=False)
    pos = {c: i for i, c in enumerate(codes)}
    return _Geo(codes, pos, dist, gap, zone_dist, zone_gap, judged_dist, judged_gap, zone_of)


def _cloak(
    codes: tuple[str, ...], lat: np.ndarray, lon: np.ndarray, gap: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a secret place is, for every rule and ranking: anywhere in its arrondissement
    (4 to 33 municipalities), never its own municipality.

    Judged by its own municipality, even in 10 km bands, a secret place answered differently
    from each of its neighbours: avoiding one municipality after another, or reading its
    rounded distance from a few preferred areas, named its municipality (trilateration).
    Judged by figures of its arrondissement alone, every place of an arrondissement answers
    every search alike. An area to avoid leaves it out when it would leave out any
    municipality of its arrondissement: avoiding a municipality, when that municipality is
    in it; a radius, when it reaches one of them (the arrondissement's smallest gap, never
    more than the place's own: whatever is truly within stays avoided). Its distance is to
    the arrondissement's centre (the mean of its municipalities' centroids)."""
    idx = areas()
    arr = [idx.municipalities[c].arrondissement_nis for c in codes]
    zones = sorted(set(arr))
    zone_of = np.array([zones.index(a) for a in arr], dtype=np.int32)
    members = [zone_of == k for k in range(len(zones))]
    centre_lat = np.array([lat[m].mean() for m in members])
    centre_lon = np.array([lon[m].mean() for m in members])
    zone_dist = _haversine(lat, lon, centre_lat, centre_lon)[:, zone_of]
    zone_gap = np.stack([gap[:, m].min(axis=1) for m in members], axis=1)[:, zone_of]
    zone_dist.setflags(write=False)
    zone_gap.setflags(write=False)
    zone_of.setflags(write=False)
    return zone_of, zone_dist, zone_gap


def _muni_pos(nis: str) -> int:
    return _geo().pos[areas().municipality(nis).nis]


def area_notices(zones: ResolvedAreas) -> list[Warning]:
    """Notices about the search itself, not any one place: the preferred area lies inside an
    area to avoid (or within its radius). The results then rank places by their distance from
    where the person must keep away from — most likely a mistake in the form (a police zone's
    home area left as the preferred area while the perpetrator lives there), so it is said.
    ``zones``: the request's areas as ``validate_areas`` resolved them."""
    if zones.preferred is None:
        return []
    geo = _geo()
    here = geo.pos[zones.preferred]
    inside = zones.preferred in zones.avoid_municipalities or any(
        float(geo.gap[geo.pos[c], here]) <= km for c, km in zones.avoid_radius
    )
    if not inside:
        return []
    return [
        Warning(
            "preferred_area_avoided",
            "The preferred area lies in an area to avoid: places are ranked by their distance "
            "from it. Check the form.",
        )
    ]


@cache
def _area_view(muni_nis: str, secret: bool) -> tuple[str, str, str]:
    """(area_nis, area_level, area_name): arrondissement, or province for a secret address."""
    idx = areas()
    m = idx.municipality(muni_nis)
    nis = m.province_nis if secret else m.arrondissement_nis
    area = idx.areas[nis]
    if m.region_nis == "02000":
        name = area.name_nl
    elif m.region_nis == "04000" and area.name_nl != area.name_fr:
        name = f"{area.name_fr} / {area.name_nl}"
    else:
        name = area.name_fr
    return nis, ("province" if secret else "arrondissement"), name


def _ts(dt: datetime | None, missing: float) -> float:
    if dt is None:
        return missing
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def _shown_distance(km: float, secret: bool) -> float:
    if secret:
        return float(max(10, round(km / 10) * 10))
    return float(round(km))


def _judged_km(km: float, secret: bool) -> float:
    """The distance a place is filtered and ranked by: the shown one for a secret address
    (the same rounding as ``_shown_distance``), the exact one otherwise."""
    return float(max(10, round(km / 10) * 10)) if secret else km


# ----------------------------------------------------------------------------- shared pieces


class _Search(msgspec.Struct, frozen=True):
    """Per-search facts computed once, shared by both implementations. (A Struct rather than
    a frozen dataclass: one is built per search, and it builds ten times faster.)"""

    request: SearchRequest
    facts: HouseholdFacts
    zones: ResolvedAreas
    requester_kind: RequesterKind
    now: datetime
    now_ts: float
    stay_end_ts: float
    relax: frozenset[str]


def _prepare(
    request: SearchRequest,
    requester_kind: RequesterKind,
    now: datetime,
    relax: Collection[str],
    zones: ResolvedAreas | None = None,
) -> _Search:
    bad = set(relax) - RELAXABLE_RULES
    if bad:
        raise ValueError(f"not relaxable: {sorted(bad)}")
    if zones is None:
        zones = validate_areas(request)
    now_ts = _ts(now, 0.0)
    return _Search(
        request=request,
        facts=household_facts(request),
        zones=zones,
        requester_kind=requester_kind,
        now=now,
        now_ts=now_ts,
        stay_end_ts=now_ts + request.nights * 86400.0,
        relax=frozenset(relax),
    )


def _pool_fit(
    kind: int, places: int, size: int, beds_for_households: bool, rooms_for_households: bool
) -> tuple[int, float]:
    """(units needed, fit value) of one pool for a household; units _NOT_FIT if unusable."""
    places = max(places, 1)
    if kind != 0:
        if places >= size:
            return 1, size / places
        return (-(-size // places), SHARED_BEDS_FIT) if rooms_for_households else (_NOT_FIT, 0.0)
    needed = -(-size // places)
    if needed == 1:
        return 1, size / places
    return (needed, SHARED_BEDS_FIT) if beds_for_households else (_NOT_FIT, 0.0)


def _load(total: int, occupied: int, held: int) -> float:
    if total <= 0:
        return 0.0
    return 1.0 - min(1.0, (occupied + held) / total)


def _language_value(policy: AccessPolicy, facts: HouseholdFacts) -> float:
    if not facts.languages or facts.languages & set(policy.languages):
        return 1.0
    return 0.5 if policy.interpreters_available else 0.0


def _r4(v: float) -> float:
    """``round(v, 4)``, skipping the (slow) call for the whole numbers most parts are."""
    return v if v.is_integer() else round(v, 4)


def _round4(values: np.ndarray) -> np.ndarray:
    """``round(v, 4)`` of every value, the same floats Python gives, in a few operations on
    the whole array instead of a Python call per value (a search rounds ~200 of them).

    Python rounds the exact binary value to 4 decimals, then takes the float nearest that
    decimal. ``np.round`` computes ``rint(v * 10**4) / 10**4``: the division of an integer by
    10**4 is the float nearest the decimal too, so the two agree whenever ``v * 10**4``
    rounds to the right integer. It can only miss when the exact product lies within the
    product's rounding error (< 1e-9 for values below 10**5) of a half-integer: those few
    values are rounded by Python, as are (never seen) values of 10**5 or more. ``values``:
    finite (scores and their parts are)."""
    scaled = values * 1e4
    exact = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (np.abs(values) >= 1e5)
    out = np.round(values, 4)
    if exact.any():
        out[exact] = [round(v, 4) for v in values[exact].tolist()]
    return out


_COST_REASON = {
    "free": "Free of charge.",
    "paying": "Paying.",
    "income_based": "Cost depends on income.",
}


class _Shown(NamedTuple):
    """What an option shows that depends on the facility alone, never on the household, the
    time or the counts. ``MatcherIndex`` prepares it once per facility when it is built (a
    facility change rebuilds the index; status and count updates touch none of it)."""

    alias: str
    kind: str
    area_nis: str
    area_level: Literal["arrondissement", "province"]
    area_name: str
    secret: bool
    intake_phone: str
    intake_phone_24h: bool
    handover_protocol: str
    cost: str
    cost_reason: str
    languages: frozenset[str]
    specialisations: frozenset[str]
    specialisation_list: tuple[str, ...]


def _shown(fac: FacilitySnapshot) -> _Shown:
    area_nis, area_level, area_name = _area_view(fac.municipality_nis, fac.secret_address)
    policy = fac.policy
    return _Shown(
        alias=fac.alias,
        kind=fac.kind,
        area_nis=area_nis,
        area_level=area_level,  # type: ignore[arg-type]
        area_name=area_name,
        secret=fac.secret_address,
        intake_phone=fac.intake_phone,
        intake_phone_24h=fac.intake_phone_24h,
        handover_protocol=fac.handover_protocol,
        cost=policy.cost,
        cost_reason=_COST_REASON[policy.cost],
        languages=frozenset(policy.languages),
        specialisations=frozenset(policy.specialisations),
        specialisation_list=tuple(sorted(set(policy.specialisations))),
    )


def _build_option(
    s: _Search,
    fac: FacilitySnapshot,
    shown: _Shown,
    pool: PoolSnapshot,
    *,
    units_needed: int,
    score_parts: Sequence[float],
    score: float,
    fresh: bool,
    distance: float | None,
    last_ts: float,
    free_units: int,
    admission_wait: int | None,
) -> Option:
    """An option for the chosen pool: reasons, warnings, coarse area. Same in both paths.

    ``shown``: ``_shown(fac)``; ``score_parts`` (in ``SCORE_PARTS`` order) and ``score``:
    rounded to 4 decimals (as ``round`` does);
    ``last_ts``: the pool's ``last_seen`` as a timestamp (-inf: never); ``free_units``: the
    free count to show; ``admission_wait``: ``admission_wait_minutes`` of the facility's
    windows at ``s.now``."""
    policy = fac.policy
    facts = s.facts
    p_spec, _, _, _, p_admission, _, p_continuity, _ = score_parts
    age = None if last_ts == -math.inf else max(0, int(s.now_ts - last_ts))
    specialised = p_spec > 0
    shown_km = None if distance is None else _shown_distance(distance, shown.secret)
    spoken = facts.languages & shown.languages if facts.languages else None

    reasons: list[str] = []
    if specialised:
        served = sorted(SPECIALISATIONS_FOR_NEED[s.request.need] & shown.specialisations)
        reasons.append(f"Specialised care: {', '.join(served)}.")
    if pool.unit_kind == "bed":
        if units_needed == 1:
            reasons.append("One bed for one person.")
        else:
            reasons.append(f"{units_needed} beds in one place for the household of {facts.size}.")
    elif units_needed == 1:
        label = _KIND_NAME[_KIND_CODE[pool.unit_kind]]
        reasons.append(f"A {label} for {pool.places_per_unit} fits the household of {facts.size}.")
    else:
        label = _KIND_NAME[_KIND_CODE[pool.unit_kind]]
        reasons.append(
            f"{units_needed} {label}s for {pool.places_per_unit}, side by side, for the "
            f"household of {facts.size}."
        )
    if shown_km is not None:
        reasons.append(f"About {shown_km:.0f} km from the preferred area.")
    reasons.append(shown.cost_reason)
    if policy.low_threshold:
        reasons.append("Low threshold: no conditions on papers, income or referral.")
    elif s.request.household.residence_status != "documented" and policy.accepts_undocumented:
        reasons.append("Accepts undocumented people.")
    if p_admission > 0:
        reasons.append("Intake possible now.")
    if spoken:
        reasons.append(f"Staff speak {', '.join(sorted(spoken))}.")
    elif policy.interpreters_available and facts.languages:
        reasons.append("Interpreters available.")
    if age is not None and fresh:
        reasons.append(f"Availability confirmed {age // 60} min ago.")

    warnings = warnings_with_wait(
        policy, s.request, facts, admission_wait=admission_wait, now=s.now
    )
    if not fresh:
        when = "never reported" if age is None else f"last reported {age // 3600} h ago"
        warnings.append(Warning("stale_data", f"Availability may be out of date ({when})."))
    if fac.status == "reduced":
        until = _ts(fac.status_until, -math.inf)
        if until > s.now_ts:  # the date only: never the staff's reason
            ends = datetime.fromtimestamp(until, BRUSSELS)
            warnings.append(
                Warning(
                    "reduced_capacity",
                    f"Temporarily reduced capacity until {ends:%Y-%m-%d %H:%M} (Belgian time): "
                    "call first.",
                )
            )
        else:
            warnings.append(
                Warning("reduced_capacity", "Temporarily reduced capacity: call first.")
            )
    if p_continuity == 0:
        end = fac.planned_end
        # the Belgian date, as the staff page shows the end (UTC's is a day early at midnight)
        day = (
            f" on {datetime.fromtimestamp(_ts(end, 0), BRUSSELS):%Y-%m-%d}"
            if end is not None
            else ""
        )
        warnings.append(
            Warning(
                "runs_past_planned_end",
                f"The scheme is planned to end{day}, before the {s.request.nights} nights asked.",
            )
        )
    if shown_km is not None and shown_km > REACH_KM:
        warnings.append(
            Warning(
                "beyond_one_hour",
                f"About {shown_km:.0f} km from the preferred area: likely more than an hour's "
                "journey.",
            )
        )
    if pool.unit_kind == "bed" and units_needed > 1:
        warnings.append(
            Warning("shared_beds", f"The household takes {units_needed} beds in a shared space.")
        )
    elif units_needed > 1:
        warnings.append(
            Warning(
                "several_rooms",
                f"The household is spread over {units_needed} rooms of this place.",
            )
        )

    return Option(
        facility_ref=fac.ref,
        pool_ref=pool.ref,
        alias=shown.alias,
        kind=shown.kind,
        area_nis=shown.area_nis,
        area_level=shown.area_level,
        area_name=shown.area_name,
        units_needed=units_needed,
        free_units=free_units,
        cost=shown.cost,
        data_age_seconds=age,
        stale=not fresh,
        warnings=warnings,
        reasons=reasons,
        score=score,
        score_parts=dict(zip(SCORE_PARTS, score_parts, strict=True)),
        intake_phone=shown.intake_phone,
        intake_phone_24h=shown.intake_phone_24h,
        handover_protocol=shown.handover_protocol,
        distance_km=shown_km,
        specialised=specialised,
        specialisations=list(shown.specialisation_list),
    )


def _summary(
    fails: dict[str, int], only: dict[str, int]
) -> tuple[dict[str, int], list[Alternative]]:
    excluded = dict(sorted(fails.items(), key=lambda kv: (-kv[1], _RULE_POS[kv[0]])))
    alts = [
        Alternative(
            code=code,
            message=f"{only.get(code, 0)} more option(s) if {RELAX_TEXT[code]}.",
            extra_options=only.get(code, 0),
        )
        for code in excluded
        if code in RELAXABLE_RULES
    ]
    alts.sort(key=lambda a: (-a.extra_options, _RULE_POS[a.code]))
    return excluded, alts


# ----------------------------------------------------------------------------- reference


def match_reference(
    request: SearchRequest,
    facilities: Sequence[FacilitySnapshot],
    *,
    requester_kind: RequesterKind,
    now: datetime,
    relax: Collection[str] = (),
) -> SearchResult:
    """The matcher as a plain loop: slow, obviously right, the yardstick of ``MatcherIndex``."""
    s = _prepare(request, requester_kind, now, relax)
    geo = _geo()
    facts = s.facts
    pref = None if s.zones.preferred is None else geo.pos[s.zones.preferred]
    fail_counts: dict[str, int] = {}
    only_counts: dict[str, int] = {}
    ranked: list[tuple[float, str, FacilitySnapshot, PoolSnapshot, int, dict, bool, float | None]]
    ranked = []
    # a secret place is avoided with any municipality of its arrondissement
    avoided_zones = {
        areas().municipality(c).arrondissement_nis for c in s.zones.avoid_municipalities
    }
    for fac in sorted(facilities, key=lambda f: f.ref):
        policy = fac.policy
        codes = [
            r.code
            for r in evaluate(policy, request, requester_kind=requester_kind, now=now, facts=facts)
        ]
        if fac.status not in ADMITTING_STATUSES:
            codes.append("status_closed")
        if _ts(fac.valid_from, -math.inf) > s.now_ts:
            codes.append("not_yet_open")
        if _ts(fac.planned_end, math.inf) <= s.now_ts:
            codes.append("scheme_ended")
        best: tuple[float, PoolSnapshot, int, float, bool, float] | None = None
        stale_threshold = s.now_ts - fac.stale_after_minutes * 60.0
        unknown = False  # a pool the household fits whose last (full) report is stale
        for pool in sorted(fac.pools, key=lambda p: p.ref):
            needed, fit = _pool_fit(
                _KIND_CODE[pool.unit_kind],
                pool.places_per_unit,
                facts.size,
                policy.beds_for_households,
                policy.rooms_for_households,
            )
            if needed == _NOT_FIT:
                continue
            fresh = _ts(pool.last_seen, -math.inf) >= stale_threshold
            if pool.free < needed:
                unknown = unknown or not fresh
                continue
            fit_part = W_FIT * fit
            load_part = W_LOAD * _load(pool.units_total, pool.units_occupied, pool.units_held)
            pscore = fit_part + float(fresh) * W_FRESH + load_part
            if best is None or pscore > best[0]:
                best = (pscore, pool, needed, fit_part, fresh, load_part)
        if best is None:  # R04: stale figures are "unknown", never "full"
            codes.append("no_room_unknown" if unknown else "no_room")
        m = _muni_pos(fac.municipality_nis)
        secret = fac.secret_address
        # a secret place: anywhere in its arrondissement, never its own municipality
        gaps, dists = (geo.zone_gap, geo.zone_dist) if secret else (geo.gap, geo.dist)
        if fac.municipality_nis and (
            (
                areas().municipality(fac.municipality_nis).arrondissement_nis in avoided_zones
                if secret
                else areas().municipality(fac.municipality_nis).nis in s.zones.avoid_municipalities
            )
            or any(float(gaps[_muni_pos(c), m]) <= km for c, km in s.zones.avoid_radius)
        ):
            codes.append("avoid_area")
        distance = None if pref is None else _judged_km(float(dists[pref, m]), secret)
        max_km = request.max_distance_km
        if distance is not None and max_km is not None and distance > max_km:
            codes.append("too_far")
        codes = [c for c in codes if c not in s.relax]
        for c in codes:
            fail_counts[c] = fail_counts.get(c, 0) + 1
        if len(codes) == 1:
            only_counts[codes[0]] = only_counts.get(codes[0], 0) + 1
        if codes:
            continue
        assert best is not None
        _, pool, needed, fit_part, fresh, load_part = best
        wait = admission_wait_minutes(policy.admission_hours, now)
        parts = {
            "specialised": W_SPECIALISED * float(is_specialised(policy, request.need)),
            "fit": fit_part,
            "distance": 0.0
            if distance is None
            else W_DISTANCE * (1.0 / (1.0 + distance / DISTANCE_HALF_KM)),
            "freshness": float(fresh) * W_FRESH,
            "admission": W_ADMISSION * float(wait == 0),
            "language": W_LANGUAGE * _language_value(policy, facts),
            "continuity": W_CONTINUITY * float(_ts(fac.planned_end, math.inf) >= s.stay_end_ts),
            "load": load_part,
        }
        score = 0.0
        for k in SCORE_PARTS:
            score = score + parts[k]
        ranked.append((score, fac.ref, fac, pool, needed, parts, fresh, distance))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    options = [
        _build_option(
            s,
            fac,
            _shown(fac),
            pool,
            units_needed=needed,
            score_parts=[_r4(parts[k]) for k in SCORE_PARTS],
            score=_r4(score),
            fresh=fresh,
            distance=d,
            last_ts=_ts(pool.last_seen, -math.inf),
            free_units=pool.free,
            admission_wait=admission_wait_minutes(fac.policy.admission_hours, now),
        )
        for score, _, fac, pool, needed, parts, fresh, d in ranked[: request.limit]
    ]
    excluded, alts = _summary(fail_counts, only_counts)
    return SearchResult(
        options=options,
        excluded=excluded,
        alternatives=alts,
        considered=len(facilities),
        matched=len(ranked),
    )


# ----------------------------------------------------------------------------- fast index


class _BestPools(NamedTuple):
    """Per facility (arrays of length n): its best usable pool for one household size."""

    fresh_grid: np.ndarray  # (slots, n) freshness of every pool when computed
    no_room: np.ndarray  # no pool the household fits with enough free units, all fresh
    no_room_unknown: np.ndarray  # none either, but one it fits has stale figures (R04)
    slot: np.ndarray
    needed: np.ndarray  # units needed in that pool
    fit: np.ndarray  # weighted fit part
    fresh: np.ndarray
    fresh_part: np.ndarray  # weighted freshness part
    load: np.ndarray  # weighted load part
    last: np.ndarray  # last report or confirmation (timestamp, -inf: never)


class _Admission(NamedTuple):
    """Intake at every facility during one minute (see ``MatcherIndex._admission``)."""

    minute: float  # the timestamp // 60 it is for
    fail: np.ndarray | None  # per facility: no intake within the look-ahead (None: none)
    part: np.ndarray  # per facility: the weighted admission part (intake now or later)
    waits: list[int | None]  # per admission group (``adm_group``): minutes until intake


class MatcherIndex:
    """Facilities as column arrays: one vectorised boolean mask per rule, per search.

    Build once from the facility snapshots (O(n)); apply live count changes with
    ``update_pool`` and status changes with ``update_status`` in O(1). Pools are laid out
    as a (facilities x max pools) grid, sorted by pool ref inside a facility, so the best
    pool per facility is one ``argmax`` along a row.
    """

    def __init__(self, facilities: Sequence[FacilitySnapshot]) -> None:
        facs = sorted(facilities, key=lambda f: f.ref)
        refs = [f.ref for f in facs]
        if len(set(refs)) != len(refs):
            raise ValueError("facility refs must be unique")
        self._facs: list[FacilitySnapshot] = facs
        self._fac_pos = {f.id: i for i, f in enumerate(facs)}
        n = len(facs)
        geo = _geo()
        self.muni = np.array([_muni_pos(f.municipality_nis) for f in facs], dtype=np.int32)
        self.secret = np.array([f.secret_address for f in facs], dtype=bool)
        # each facility's column in ``_Geo.judged_*``: its municipality's, or for a secret
        # address its arrondissement's
        self.judged_col = self.muni + np.int32(len(geo.codes)) * self.secret.astype(np.int32)
        self.zone = geo.zone_of[self.muni]  # each facility's arrondissement (``_Geo.zone_of``)
        self.status_ok = np.array([f.status in ADMITTING_STATUSES for f in facs], dtype=bool)
        self.status_closed = ~self.status_ok
        self.valid_from = np.array([_ts(f.valid_from, -math.inf) for f in facs], dtype=float)
        self.planned_end = np.array([_ts(f.planned_end, math.inf) for f in facs], dtype=float)
        self.stale_s = np.array([f.stale_after_minutes * 60.0 for f in facs], dtype=float)
        pol = [f.policy for f in facs]

        def col(fn: Callable[[AccessPolicy], object], dtype: type = bool) -> np.ndarray:
            return np.fromiter((fn(p) for p in pol), dtype=dtype, count=n)

        low = col(lambda p: p.low_threshold)
        self.docs_required = ~col(lambda p: p.accepts_undocumented) & ~low
        self.income_required = col(lambda p: p.requires_income) & ~low
        cost = col(lambda p: _COST_CODE[p.cost], np.int8)
        self.paying = cost == 1
        self.not_free = cost != 0
        self.gender_bits = col(lambda p: sum(_GENDER_BIT[g] for g in set(p.genders)), np.int8)
        self.no_children = ~col(lambda p: p.accepts_children)
        self.max_children = col(
            lambda p: _BIG if p.max_children is None else p.max_children, np.int32
        )
        self.child_min_age = col(lambda p: p.child_min_age, np.int16)
        self.child_max_age = col(lambda p: p.child_max_age, np.int16)
        self.max_boy_age = col(lambda p: 99 if p.max_boy_age is None else p.max_boy_age, np.int16)
        self.min_adult_age = col(lambda p: p.min_adult_age, np.int16)
        self.no_teens = ~col(lambda p: p.accepts_adolescents_alone)
        self.spec_bits = col(
            lambda p: sum(1 << _SPECS.index(x) for x in set(p.specialisations)), np.int32
        )
        self.no_wheelchair = ~col(lambda p: p.wheelchair_accessible)
        self.no_pets = ~col(lambda p: p.accepts_pets)
        self.interpreters = col(lambda p: p.interpreters_available)
        self.max_stay = col(
            lambda p: _BIG if p.max_stay_nights is None else p.max_stay_nights, np.int32
        )
        ref_bits = col(
            lambda p: sum(1 << _REQUESTERS.index(r) for r in set(p.referral_required_from)),
            np.int16,
        )
        self.referral_bits = ref_bits
        self.needs_referral = (ref_bits != 0) & ~low
        self.beds_for_households = col(lambda p: p.beds_for_households)
        self.rooms_for_households = col(lambda p: p.rooms_for_households)
        self.languages: dict[str, np.ndarray] = {}
        for i, p in enumerate(pol):
            for lang in set(p.languages):
                self.languages.setdefault(lang, np.zeros(n, dtype=bool))[i] = True
        groups: dict[str, int] = {}
        self._adm_windows: list[list[AdmissionWindow] | None] = []
        adm = np.empty(n, dtype=np.int32)
        for i, p in enumerate(pol):
            key = msgspec.json.encode(p.admission_hours).decode()
            if key not in groups:
                groups[key] = len(self._adm_windows)
                self._adm_windows.append(p.admission_hours)
            adm[i] = groups[key]
        self.adm_group = adm

        # Pool grid, one row per slot (slot j = a facility's j-th pool by ref), one column per
        # facility: per-slot rows are contiguous, so "best pool of each facility" is a few
        # element-wise operations (a reduction along a 2- or 3-long axis is much slower).
        m = max((len(f.pools) for f in facs), default=0) or 1
        self.p_kind = np.full((m, n), -1, dtype=np.int8)
        self.p_places = np.ones((m, n), dtype=np.int32)
        self.p_total = np.zeros((m, n), dtype=np.int64)
        self.p_occ = np.zeros((m, n), dtype=np.int64)
        self.p_held = np.zeros((m, n), dtype=np.int64)
        self.p_free = np.full((m, n), -1, dtype=np.int64)
        self.p_load = np.zeros((m, n), dtype=float)
        self.p_last = np.full((m, n), -math.inf, dtype=float)
        self._best_cache: dict[int, _BestPools] = {}
        self._adm_cache: _Admission | None = None
        self._ref_cache: dict[str, np.ndarray] = {}
        self._pool_pos: dict[int, tuple[int, int]] = {}
        self._slots: list[list[PoolSnapshot]] = []  # pools of facility i by ref, as in the grid
        for i, f in enumerate(facs):
            self._slots.append(sorted(f.pools, key=lambda p: p.ref))
            for j, p in enumerate(self._slots[i]):
                self._pool_pos[p.id] = (i, j)
                self.p_kind[j, i] = _KIND_CODE[p.unit_kind]
                self.p_places[j, i] = max(p.places_per_unit, 1)
                self._set_counts(i, j, p)
        self._fit_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._geo = geo
        self._shown = [_shown(f) for f in facs]  # what options show, per facility
        # Score parts that depend on the facility and one household trait only, per trait
        # value (the need; speaking a household language or not), and zero parts. Read-only:
        # searches share them.
        self._spec_part: dict[str, np.ndarray] = {}
        for need, served in SPECIALISATIONS_FOR_NEED.items():
            mask = sum(1 << _SPECS.index(x) for x in served)
            self._spec_part[need] = W_SPECIALISED * ((self.spec_bits & mask) != 0)
        self._lang_part_spoken = np.full(n, W_LANGUAGE * 1.0)
        self._lang_part_else = W_LANGUAGE * np.where(self.interpreters, 0.5, 0.0)
        self._zero_part = np.zeros(n)
        for a in (*self._spec_part.values(), self._lang_part_spoken, self._lang_part_else):
            a.setflags(write=False)
        self._zero_part.setflags(write=False)

    def __len__(self) -> int:
        return len(self._facs)

    @property
    def facilities(self) -> list[FacilitySnapshot]:
        """The snapshots as they are now (pool counts and statuses updated)."""
        return list(self._facs)

    def _set_counts(self, i: int, j: int, p: PoolSnapshot) -> None:
        self.p_total[j, i] = p.units_total
        self.p_occ[j, i] = p.units_occupied
        self.p_held[j, i] = p.units_held
        self.p_free[j, i] = p.free
        self.p_load[j, i] = W_LOAD * _load(p.units_total, p.units_occupied, p.units_held)
        self.p_last[j, i] = _ts(p.last_seen, -math.inf)
        self._best_cache.clear()  # free units and load changed

    def pool(self, pool_id: int) -> tuple[FacilitySnapshot, PoolSnapshot] | None:
        """The pool with this id and its facility, as the index has them (None: unknown)."""
        pos = self._pool_pos.get(pool_id)
        if pos is None:
            return None
        return self._facs[pos[0]], self._slots[pos[0]][pos[1]]

    def update_pool(
        self,
        pool_id: int,
        *,
        units_total: int,
        units_occupied: int,
        units_held: int,
        units_blocked: int,
        reported_at: datetime | None,
        confirmed_at: datetime | None,
    ) -> None:
        """Apply a live count change (availability report, hold, arrival) in O(1)."""
        i, j = self._pool_pos[pool_id]
        fac = self._facs[i]
        pools = list(fac.pools)
        k = next(k for k, p in enumerate(pools) if p.id == pool_id)
        new = msgspec.structs.replace(
            pools[k],
            units_total=units_total,
            units_occupied=units_occupied,
            units_held=units_held,
            units_blocked=units_blocked,
            reported_at=reported_at,
            confirmed_at=confirmed_at,
        )
        pools[k] = new
        self._facs[i] = msgspec.structs.replace(fac, pools=pools)
        self._slots[i][j] = new
        self._set_counts(i, j, new)

    def update_status(
        self, facility_id: int, status: str, status_until: datetime | None = None
    ) -> None:
        """Apply a status change at once (e.g. ``location_compromised``: no new placements)."""
        i = self._fac_pos[facility_id]
        self._facs[i] = msgspec.structs.replace(
            self._facs[i],
            status=status,
            status_until=status_until,
        )
        self.status_ok[i] = status in ADMITTING_STATUSES
        self.status_closed[i] = not self.status_ok[i]

    def _fit(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Units needed and weighted fit per pool for a household size (cached: static)."""
        hit = self._fit_cache.get(size)
        if hit is not None:
            return hit
        kind, places = self.p_kind, self.p_places
        unit = kind > 0
        bed = kind == 0
        per_bed_needed = -(-size // places)
        needed = np.full(kind.shape, _NOT_FIT, dtype=np.int64)
        needed[unit & (places >= size)] = 1
        rooms_ok = unit & (places < size) & self.rooms_for_households[None, :]
        needed[rooms_ok] = per_bed_needed[rooms_ok]  # ceil(size / places) rooms side by side
        bed_ok = bed & ((per_bed_needed == 1) | self.beds_for_households[None, :])
        needed[bed_ok] = per_bed_needed[bed_ok]
        fit = np.zeros(kind.shape, dtype=float)
        single = (needed == 1) & (unit | bed)
        fit[single] = size / places[single]
        fit[(bed_ok | rooms_ok) & (needed > 1)] = SHARED_BEDS_FIT
        out = (needed, W_FIT * fit)
        self._fit_cache[size] = out
        return out

    def _best_pools(self, size: int, now_ts: float) -> _BestPools:
        """Per facility, the pool a household of ``size`` would take at ``now_ts``: highest
        fit + freshness + load (added in that order, as the reference does), the first slot
        (smallest ref) on a tie. Kept until a count changes or a pool's freshness flips."""
        fresh = self.p_last >= now_ts - self.stale_s
        hit = self._best_cache.get(size)
        if hit is not None and np.array_equal(hit.fresh_grid, fresh):
            return hit
        needed, fit_part = self._fit(size)
        ok = needed <= self.p_free
        pscore = np.where(
            ok,
            np.where(fresh, (fit_part + W_FRESH) + self.p_load, (fit_part + 0.0) + self.p_load),
            -np.inf,
        )
        top = pscore.max(axis=0)  # (a reduction across rows: fast, unlike argmax)
        best = np.zeros(len(self._facs), dtype=np.intp)
        for j in range(len(pscore) - 1, 0, -1):  # the first slot reaching the top wins
            best = np.where(pscore[j] == top, j, best)
        best = np.where(pscore[0] == top, 0, best)
        cols = np.arange(len(self._facs))
        best_fresh = fresh[best, cols]
        none = top == -np.inf
        stale_fit = ((needed != _NOT_FIT) & ~fresh).any(axis=0)
        hit = _BestPools(
            fresh_grid=fresh,
            no_room=none & ~stale_fit,
            no_room_unknown=none & stale_fit,
            slot=best,
            needed=needed[best, cols],
            fit=fit_part[best, cols],
            fresh=best_fresh,
            fresh_part=best_fresh * W_FRESH,
            load=self.p_load[best, cols],
            last=self.p_last[best, cols],
        )
        self._best_cache[size] = hit
        return hit

    def _admission(self, now: datetime, now_ts: float) -> _Admission:
        """Intake per facility at ``now``. ``admission_wait_minutes`` depends on the local
        weekday, hour and minute only, so the answer is kept for the minute."""
        minute = now_ts // 60
        hit = self._adm_cache
        if hit is None or hit.minute != minute:
            waits = [admission_wait_minutes(w, now) for w in self._adm_windows]
            fail = np.array([w is None or w > ADMISSION_LOOKAHEAD_MINUTES for w in waits])
            intake_now = np.array([w == 0 for w in waits], dtype=bool)
            hit = _Admission(
                minute=minute,
                fail=fail[self.adm_group] if fail.any() else None,
                part=W_ADMISSION * intake_now[self.adm_group],
                waits=waits,
            )
            self._adm_cache = hit
        return hit

    def _referral_fails(self, kind: str) -> np.ndarray:
        """Facilities that need a referral this requester kind cannot give. An admin (or any
        kind no policy names) refers no one: like the reference rule."""
        hit = self._ref_cache.get(kind)
        if hit is None:
            rbit = 1 << _REQUESTERS.index(kind) if kind in _REQUESTERS else 0
            hit = self.needs_referral & ((self.referral_bits & rbit) == 0)
            self._ref_cache[kind] = hit
        return hit

    def search(
        self,
        request: SearchRequest,
        *,
        requester_kind: RequesterKind,
        now: datetime,
        relax: Collection[str] = (),
    ) -> SearchResult:
        return self.rank(request, requester_kind=requester_kind, now=now, relax=relax).result()

    def rank(
        self,
        request: SearchRequest,
        *,
        requester_kind: RequesterKind,
        now: datetime,
        relax: Collection[str] = (),
        candidates: int | None = None,
        areas: ResolvedAreas | None = None,
    ) -> Ranking:
        """Apply every rule and rank, but build no option yet: the caller may first check
        the best ``candidates`` (default ``request.limit``) against live counts. ``areas``:
        the request's areas as ``validate_areas`` resolved them, if the caller did already."""
        s = _prepare(request, requester_kind, now, relax, areas)
        return self._rank(s, request.limit if candidates is None else max(0, candidates))

    def _rank(self, s: _Search, limit: int) -> Ranking:
        request, facts, hh = s.request, s.facts, s.request.household
        n = len(self._facs)
        geo = self._geo
        fails: dict[str, np.ndarray] = {}

        def rule(code: str, mask: np.ndarray) -> None:
            if code not in s.relax:
                fails[code] = mask

        if hh.residence_status == "undocumented":
            rule("documents_required", self.docs_required)
        if hh.income == "no":
            rule("income_required", self.income_required)
            rule("paying_no_income", self.paying)
        if request.free_only:
            rule("not_free", self.not_free)
        hbits = sum(_GENDER_BIT[g] for g in facts.adult_genders)
        rule("gender_not_accepted", (self.gender_bits & hbits) != hbits)
        if facts.children:
            rule("children_not_accepted", self.no_children)
            rule("too_many_children", self.max_children < facts.n_children)
            rule("child_too_young", self.child_min_age > facts.min_child_age)
            rule("child_too_old", self.child_max_age < facts.max_child_age)
        if facts.oldest_boy >= 0:
            rule("boy_too_old", self.max_boy_age < facts.oldest_boy)
        if facts.teens_alone:
            rule("adolescent_alone", self.no_teens)
        if facts.youngest_adult_band is not None:
            rule("adult_too_young", self.min_adult_age > facts.youngest_adult_band[1])
        if hh.wheelchair:
            rule("wheelchair", self.no_wheelchair)
        if hh.pets:
            rule("pets", self.no_pets)
        rule("max_stay", self.max_stay < request.nights)
        adm = self._admission(s.now, s.now_ts)
        if adm.fail is not None:
            rule("admission_hours", adm.fail)
        rule("referral_required", self._referral_fails(s.requester_kind))
        rule("status_closed", self.status_closed)
        rule("not_yet_open", self.valid_from > s.now_ts)
        rule("scheme_ended", self.planned_end <= s.now_ts)

        bp = self._best_pools(facts.size, s.now_ts)
        rule("no_room", bp.no_room)
        rule("no_room_unknown", bp.no_room_unknown)

        zones = s.zones
        if zones.avoid_municipalities or zones.avoid_radius:
            avoid = np.zeros(len(geo.codes), dtype=bool)
            for c in zones.avoid_municipalities:
                avoid[geo.pos[c]] = True
            avoided = avoid[self.muni]
            if zones.avoid_municipalities and self.secret.any():
                # a secret place: when any municipality of its arrondissement is avoided
                # (``_cloak``); by its own, avoiding one after another would name it
                hit = np.zeros(len(geo.codes), dtype=bool)  # by arrondissement index
                hit[geo.zone_of[[geo.pos[c] for c in zones.avoid_municipalities]]] = True
                avoided = np.where(self.secret, hit[self.zone], avoided)
            for c, km in zones.avoid_radius:  # a secret place: its arrondissement's gap
                avoided |= geo.judged_gap[geo.pos[c]][self.judged_col] <= km
            rule("avoid_area", avoided)
        dist = None
        if zones.preferred is not None:
            # a secret place: from its arrondissement's centre
            judged = geo.judged_dist[geo.pos[zones.preferred]][self.judged_col]
            # as _judged_km: the shown rounding for a secret address
            dist = np.where(self.secret, np.maximum(10.0, np.round(judged / 10) * 10), judged)
            if request.max_distance_km is not None:
                rule("too_far", dist > request.max_distance_km)

        # One row per rule that applies: the counts per rule and per facility are then a few
        # operations on the whole matrix rather than a few per rule.
        codes = list(fails)
        failing = np.array([fails[c] for c in codes], dtype=bool).reshape(len(codes), n)
        count = failing.sum(axis=0, dtype=np.uint8)  # rules each facility fails
        alone = failing & (count == 1)  # the facility's only failure
        fail_counts: dict[str, int] = {}
        only_counts: dict[str, int] = {}
        for code, row, row_alone in zip(codes, failing, alone, strict=True):
            c = int(np.count_nonzero(row))
            if c:
                fail_counts[code] = c
                if code in RELAXABLE_RULES:
                    only_counts[code] = int(np.count_nonzero(row_alone))
        excluded, alts = _summary(fail_counts, only_counts)

        # The score of every matched facility, its parts added in ``SCORE_PARTS`` order as the
        # reference does, so that the sums are the same floats.
        idx = np.flatnonzero(count == 0)
        if dist is None:
            part_dist = self._zero_part[: len(idx)]
        else:
            # the same operations as the reference's distance part, element by element
            part_dist = W_DISTANCE * (1.0 / (1.0 + dist[idx] / DISTANCE_HALF_KM))
        if facts.languages:
            spoken = np.zeros(len(idx), dtype=bool)
            for lang in facts.languages:
                arr = self.languages.get(lang)
                if arr is not None:
                    spoken |= arr[idx]
            part_lang = np.where(spoken, W_LANGUAGE * 1.0, self._lang_part_else[idx])
        else:
            part_lang = self._lang_part_spoken[: len(idx)]
        columns = (
            self._spec_part[request.need][idx],
            bp.fit[idx],
            part_dist,
            bp.fresh_part[idx],
            adm.part[idx],
            part_lang,
            W_CONTINUITY * (self.planned_end[idx] >= s.stay_end_ts),
            bp.load[idx],
        )
        score = columns[0] + columns[1]
        for c in columns[2:]:
            score += c

        if len(idx) > limit:
            kth = np.partition(-score, limit - 1)[limit - 1] if limit > 0 else np.inf
            keep = np.flatnonzero(-score <= kth)
        else:
            keep = np.arange(len(idx))
        order = keep[np.lexsort((idx[keep], -score[keep]))][:limit]

        chosen = idx[order]
        rows = chosen.tolist()
        # the parts and the score of each candidate as options show them (rows: parts, score)
        shown_parts = _round4(np.array([c[order] for c in (*columns, score)]))
        facs, shown, slots = self._facs, self._shown, self._slots
        cands = list(
            map(
                _Candidate._make,
                zip(
                    [facs[i] for i in rows],
                    [shown[i] for i in rows],
                    [slots[i][j] for i, j in zip(rows, bp.slot[chosen].tolist(), strict=True)],
                    bp.needed[chosen].tolist(),
                    shown_parts[:-1].T.tolist(),
                    shown_parts[-1].tolist(),
                    bp.fresh[chosen].tolist(),
                    [None] * len(rows) if dist is None else dist[chosen].tolist(),
                    bp.last[chosen].tolist(),
                    [adm.waits[g] for g in self.adm_group[chosen].tolist()],
                    strict=True,
                ),
            )
        )
        return Ranking(
            s, cands, excluded=excluded, alternatives=alts, considered=n, matched=len(idx)
        )


class _Candidate(NamedTuple):
    """One ranked option, not built yet (the snapshots as they were when ranked)."""

    fac: FacilitySnapshot
    shown: _Shown
    pool: PoolSnapshot
    units_needed: int
    score_parts: list[float]  # in SCORE_PARTS order, rounded to 4 decimals
    score: float  # rounded to 4 decimals
    fresh: bool
    distance: float | None
    last_ts: float
    admission_wait: int | None  # minutes until intake (0: now)


class Ranking:
    """The vectorised half of a search: every rule applied and the best candidates ranked,
    no option built yet (building an option, with its reasons and warnings, costs more than
    ranking thousands of places). ``result`` builds them, dropping any pool that live counts
    say is no longer free enough."""

    __slots__ = ("_s", "alternatives", "candidates", "considered", "excluded", "matched")

    def __init__(
        self,
        s: _Search,
        candidates: list[_Candidate],
        *,
        excluded: dict[str, int],
        alternatives: list[Alternative],
        considered: int,
        matched: int,
    ) -> None:
        self._s = s
        self.candidates = candidates
        self.excluded = excluded
        self.alternatives = alternatives
        self.considered = considered
        self.matched = matched

    @property
    def pool_refs(self) -> list[str]:
        return [c.pool.ref for c in self.candidates]

    def result(
        self, live_free: Mapping[str, int] | None = None, *, limit: int | None = None
    ) -> SearchResult:
        """At most ``limit`` (default: the request's) options, best first. With ``live_free``
        (pool ref -> free units now), a pool missing from it or with fewer free units than
        the household needs is dropped, and the free units shown are the live ones."""
        s = self._s
        limit = s.request.limit if limit is None else limit
        options: list[Option] = []
        for c in self.candidates:
            if len(options) >= limit:
                break
            free = None
            if live_free is not None:
                free = live_free.get(c.pool.ref)
                if free is None or free < c.units_needed:
                    continue
            options.append(
                _build_option(
                    s,
                    c.fac,
                    c.shown,
                    c.pool,
                    units_needed=c.units_needed,
                    score_parts=c.score_parts,
                    score=c.score,
                    fresh=c.fresh,
                    distance=c.distance,
                    last_ts=c.last_ts,
                    free_units=c.pool.free if free is None else free,
                    admission_wait=c.admission_wait,
                )
            )
        return SearchResult(
            options=options,
            excluded=self.excluded,
            alternatives=self.alternatives,
            considered=self.considered,
            matched=self.matched,
        )


def match(
    request: SearchRequest,
    index_or_facilities: MatcherIndex | Sequence[FacilitySnapshot],
    *,
    requester_kind: RequesterKind,
    now: datetime,
    relax: Collection[str] = (),
) -> SearchResult:
    """Ranked options for a household. ``relax``: rule codes to switch off (what-if).

    Raises ``UnknownArea`` for an unknown NIS code in the request and ``ValueError`` for a
    code in ``relax`` that can never be relaxed (a closed place stays closed).
    """
    index = (
        index_or_facilities
        if isinstance(index_or_facilities, MatcherIndex)
        else MatcherIndex(index_or_facilities)
    )
    return index.search(request, requester_kind=requester_kind, now=now, relax=relax)
