"""Deterministic synthetic facilities, shared by tests and benchmarks.

Realistic enough to exercise every rule: refuges (secret address, women with children,
boys up to 12-14), CAW-type safe houses (accept men, require documents), crisis hotels
(temporary schemes with a planned end), CPAS places (referral, income-based cost), night
shelters (low threshold, dormitory beds, evening intake) — across all 565 Belgian
municipalities, about 3 pools each, with some stale, full and closed places. Times are
relative to ``SYNTHETIC_NOW`` so a search at that instant sees a plausible mix.
"""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime, timedelta

from capacity.areas import areas
from placement.policy import AccessPolicy, AdmissionWindow
from placement.snapshot import FacilitySnapshot, PoolSnapshot

#: A Wednesday evening in winter, Belgian time 22:30.
SYNTHETIC_NOW = datetime(2025, 1, 15, 21, 30, tzinfo=UTC)

_KINDS = ("refuge", "safe_house", "crisis_hotel", "cpas_place", "night_shelter", "other")
_KIND_WEIGHTS = (15, 10, 20, 30, 20, 5)
_LABEL = {
    "refuge": "Refuge",
    "safe_house": "Safe house",
    "crisis_hotel": "Hotel",
    "cpas_place": "CPAS place",
    "night_shelter": "Night shelter",
    "other": "Place",
}
_STATUSES = ("open", "reduced", "closed_to_admissions", "suspended", "location_compromised")
_STATUS_WEIGHTS = (85, 5, 6, 3, 1)


def _languages(rng: random.Random, region: str, arrondissement: str) -> list[str]:
    if arrondissement == "63000" and rng.random() < 0.5:  # Verviers: German-speaking East
        base = ["de", "fr"]
    elif region == "02000":
        base = ["nl"]
    elif region == "03000":
        base = ["fr"]
    else:
        base = ["fr", "nl"]
    extra = [lang for lang in ("en", "ar", "es", "tr") if rng.random() < 0.15]
    return base + extra


def _policy(rng: random.Random, kind: str, langs: list[str]) -> AccessPolicy:
    def maybe(p: float) -> bool:
        return rng.random() < p

    common = {
        "languages": langs,
        "interpreters_available": maybe(0.3),
        "wheelchair_accessible": maybe(0.35),
        "accepts_pets": maybe(0.1),
        "health_conditions": ["negative_test"] if maybe(0.05) else [],
    }
    if kind == "refuge":
        return AccessPolicy(
            accepts_undocumented=maybe(0.7),
            cost="free" if maybe(0.85) else "income_based",
            genders=["female", "nonbinary"] if maybe(0.3) else ["female"],
            max_children=rng.choice([None, 3, 4, 5]),
            max_boy_age=rng.choice([12, 12, 12, 14, 16, None]),
            specialisations=rng.choice(
                [["ipv"], ["ipv", "family_violence"], ["ipv", "sexual_violence"], ["ipv"]]
            ),
            max_stay_nights=rng.choice([None, 90, 180, 365]),
            referral_required_from=rng.choice([[], [], ["police", "helpline", "cpas"]]),
            rooms_for_households=maybe(0.3),
            **common,
        )
    if kind == "safe_house":
        return AccessPolicy(
            accepts_undocumented=False,
            requires_income=maybe(0.3),
            cost="income_based",
            specialisations=["ipv", "family_violence"],
            max_stay_nights=rng.choice([90, 180]),
            referral_required_from=rng.choice([[], ["police", "helpline", "cpas"]]),
            **common,
        )
    if kind == "crisis_hotel":
        return AccessPolicy(
            low_threshold=maybe(0.4),
            accepts_undocumented=maybe(0.6),
            cost="free" if maybe(0.8) else "paying",
            specialisations=["ipv"] if maybe(0.2) else [],
            accepts_pets=maybe(0.2),
            referral_required_from=rng.choice([[], ["police", "helpline", "cpas"], ["cpas"]]),
            admission_hours=None if maybe(0.8) else [AdmissionWindow(start="08:00", end="22:00")],
            rooms_for_households=maybe(0.6),
            **{k: v for k, v in common.items() if k != "accepts_pets"},
        )
    if kind == "cpas_place":
        return AccessPolicy(
            accepts_undocumented=maybe(0.3),
            requires_income=maybe(0.2),
            cost="income_based" if maybe(0.7) else "free",
            specialisations=rng.choice([[], [], ["homelessness"], ["migrants"]]),
            max_stay_nights=rng.choice([None, 30, 90, 180]),
            referral_required_from=rng.choice([["cpas"], ["cpas", "police"], []]),
            admission_hours=None
            if maybe(0.5)
            else [AdmissionWindow(days=[0, 1, 2, 3, 4], start="09:00", end="17:00")],
            **common,
        )
    if kind == "night_shelter":
        return AccessPolicy(
            low_threshold=True,
            accepts_undocumented=True,
            genders=rng.choice([["female", "male", "nonbinary"], ["male"], ["female"]]),
            accepts_children=maybe(0.2),
            max_children=2,
            specialisations=["homelessness"],
            max_stay_nights=rng.choice([1, 7, 30]),
            admission_hours=[AdmissionWindow(start="19:00", end="09:00")],
            beds_for_households=maybe(0.3),
            min_adult_age=rng.choice([18, 18, 16]),
            accepts_adolescents_alone=maybe(0.1),
            **common,
        )
    return AccessPolicy(
        accepts_undocumented=maybe(0.5),
        specialisations=rng.choice([[], ["youth"], ["lgbtqi"], ["elderly"], ["trafficking"]]),
        accepts_adolescents_alone=maybe(0.3),
        min_adult_age=rng.choice([16, 18, 18]),
        **common,
    )


def _pools(
    rng: random.Random, kind: str, next_id: list[int], ref: str, now: datetime
) -> list[PoolSnapshot]:
    if kind == "night_shelter":
        shapes = [("bed", 1, rng.randint(8, 40)) for _ in range(rng.choice([2, 3, 3]))]
    elif kind in ("refuge", "safe_house"):
        shapes = [
            ("family_room", rng.randint(3, 5), rng.randint(2, 8)),
            ("room", rng.choice([1, 2]), rng.randint(2, 6)),
            ("family_room", 6, rng.randint(1, 2)),
        ]
    elif kind == "crisis_hotel":
        shapes = [
            ("room", 2, rng.randint(5, 30)),
            ("family_room", 4, rng.randint(2, 10)),
            ("room", 1, rng.randint(2, 10)),
        ]
    else:
        shapes = [
            ("family_room", rng.randint(3, 6), rng.randint(1, 6)),
            ("room", rng.choice([1, 2]), rng.randint(1, 6)),
            ("bed", 1, rng.randint(2, 12)),
        ]
    if rng.random() < 0.3:
        shapes = shapes[:2]
    pools = []
    for k, (unit, places, total) in enumerate(shapes, start=1):
        r = rng.random()
        if r < 0.3:
            occupied = total  # full
        elif r < 0.33:
            occupied = total + rng.randint(1, 3)  # emergency mattresses
        else:
            occupied = rng.randint(0, total)
        held = rng.randint(0, min(2, max(0, total - occupied)))
        age = rng.random()
        if age < 0.05:
            reported = None
        elif age < 0.25:
            reported = now - timedelta(minutes=rng.randint(13 * 60, 5 * 24 * 60))  # stale
        else:
            reported = now - timedelta(minutes=rng.randint(0, 11 * 60))
        confirmed = None
        if reported is not None and rng.random() < 0.3:
            confirmed = reported + timedelta(minutes=rng.randint(0, 120))
        pools.append(
            PoolSnapshot(
                id=next_id[0],
                ref=f"{ref}-p{k}",
                unit_kind=unit,  # type: ignore[arg-type]
                places_per_unit=places,
                units_total=total,
                units_occupied=occupied,
                units_held=held,
                units_blocked=rng.choice([0, 0, 0, 1]),
                reported_at=reported,
                confirmed_at=confirmed,
            )
        )
        next_id[0] += 1
    return pools


def _phone(rng: random.Random) -> str:
    """A fictitious Belgian-looking intake number."""
    a, b, c, d = rng.randint(2, 89), rng.randint(100, 999), rng.randint(10, 99), rng.randint(10, 99)
    return f"+32 {a} {b} {c} {d}"


def synthetic_facilities(
    n: int, seed: int, *, now: datetime = SYNTHETIC_NOW
) -> list[FacilitySnapshot]:
    """``n`` deterministic facilities for ``seed`` (same arguments, same list)."""
    rng = random.Random(seed)
    idx = areas()
    codes = sorted(idx.municipalities)
    next_pool = [1]
    counters: dict[str, int] = {}
    out: list[FacilitySnapshot] = []
    for i in range(n):
        kind = rng.choices(_KINDS, weights=_KIND_WEIGHTS)[0]
        muni = idx.municipalities[rng.choice(codes)]
        prov = idx.areas[muni.province_nis]
        tag = (prov.name_nl if muni.region_nis == "02000" else prov.name_fr)[:2].upper()
        counters[tag] = counters.get(tag, 0) + 1
        ref = f"fac-{seed}-{i:05d}"
        valid_from = planned_end = None
        if kind == "crisis_hotel" and rng.random() < 0.6:
            valid_from = now - timedelta(days=rng.randint(-3, 120))
            planned_end = now + timedelta(days=rng.randint(-5, 150))
        policy = _policy(rng, kind, _languages(rng, muni.region_nis, muni.arrondissement_nis))
        out.append(
            FacilitySnapshot(
                id=i + 1,
                ref=ref,
                alias=f"{_LABEL[kind]} {tag}-{counters[tag]}",
                kind=kind,
                operator_id=1 + rng.randrange(max(1, n // 8)),
                municipality_nis=muni.nis,
                policy=policy,
                status=rng.choices(_STATUSES, weights=_STATUS_WEIGHTS)[0],  # type: ignore[arg-type]
                valid_from=valid_from,
                planned_end=planned_end,
                secret_address=kind in ("refuge", "safe_house"),
                intake_phone=_phone(rng),
                handover_protocol=rng.choice(
                    [
                        "Call the intake line first; the team gives the meeting point.",
                        "Police escort to the meeting point given by phone.",
                        "Present yourself at the reception with the hold code.",
                    ]
                ),
                stale_after_minutes=720,
                pools=_pools(rng, kind, next_pool, ref, now),
            )
        )
    return out


def make_pool(
    ref: str,
    *,
    id: int,
    unit_kind: str = "bed",
    places_per_unit: int = 1,
    units_total: int = 4,
    units_occupied: int = 0,
    units_held: int = 0,
    reported_at: datetime | None = SYNTHETIC_NOW,
    confirmed_at: datetime | None = None,
) -> PoolSnapshot:
    """A pool for hand-written tests; fresh at ``SYNTHETIC_NOW`` unless told otherwise."""
    return PoolSnapshot(
        id=id,
        ref=ref,
        unit_kind=unit_kind,  # type: ignore[arg-type]
        places_per_unit=places_per_unit,
        units_total=units_total,
        units_occupied=units_occupied,
        units_held=units_held,
        reported_at=reported_at,
        confirmed_at=confirmed_at,
    )


def make_facility(
    ref: str,
    municipality_nis: str = "21004",
    *,
    id: int | None = None,
    policy: AccessPolicy | None = None,
    pools: list[PoolSnapshot] | None = None,
    kind: str = "refuge",
    **fields: object,
) -> FacilitySnapshot:
    """A facility for hand-written tests: one fresh family-room pool unless told otherwise."""
    fid = id if id is not None else zlib.crc32(ref.encode()) % 10**8
    if pools is None:
        pools = [
            make_pool(
                f"{ref}-fam", id=fid * 10, unit_kind="family_room", places_per_unit=4, units_total=3
            )
        ]
    return FacilitySnapshot(
        id=fid,
        ref=ref,
        alias=fields.pop("alias", f"Test {ref}"),  # type: ignore[arg-type]
        kind=kind,
        operator_id=1,
        municipality_nis=municipality_nis,
        policy=policy or AccessPolicy(),
        intake_phone="+32 2 000 00 00",
        handover_protocol="Call first.",
        pools=pools,
        **fields,  # type: ignore[arg-type]
    )
