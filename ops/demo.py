"""A realistic Belgian demo dataset: ~60 facilities of every kind across all provinces.

All names, phones and addresses are fictional. Deterministic (seeded), so demos and tests see
the same world. Some addresses are secret, some places are stale, some are full or closed.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from capacity import registry
from capacity.areas import areas
from capacity.audit import CLI
from capacity.clock import Clock, SystemClock, utc_iso
from capacity.commands import FacilityCreate, PoolCreate, StatusChange
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.models import AuditEntry, Facility, Hold, Operator, Pool, UnmetDemand
from capacity.templates import TEMPLATES
from placement.policy import AccessPolicy, patch_of, policy_to_json

# (NIS, short place name) per province / Brussels, main towns first.
TOWNS: dict[str, list[tuple[str, str]]] = {
    "04000": [
        ("21004", "BXL"),
        ("21015", "SCH"),
        ("21009", "IXL"),
        ("21001", "AND"),
        ("21016", "UCC"),
        ("21013", "SGI"),
    ],
    "10000": [("11002", "ANT"), ("12025", "MEC"), ("13040", "TUR")],
    "20001": [("24062", "LEU"), ("23088", "VIL")],
    "20002": [("25072", "NIV"), ("25112", "WAV")],
    "30000": [("31005", "BRG"), ("34022", "KOR"), ("35013", "OOS")],
    "40000": [("44021", "GNT"), ("41002", "AAL"), ("46021", "SNK")],
    "50000": [("52011", "CHA"), ("53053", "MON"), ("57081", "TOU")],
    "60000": [("62063", "LIE"), ("63079", "VER"), ("63023", "EUP")],
    "70000": [("71022", "HAS"), ("71016", "GNK")],
    "80000": [("81001", "ARL"), ("83034", "MAR")],
    "90000": [("92094", "NAM"), ("91034", "DIN")],
}

OPERATORS = [
    ("Refuges Solidaires asbl", "shelter_operator"),
    ("Vluchthuizen Vlaanderen vzw", "shelter_operator"),
    ("CAW Regio Centraal", "shelter_operator"),
    ("Hotel Partners Belgium", "hotel_partner"),
    ("CPAS Réseau Urgence", "cpas"),
    ("Samusocial Abri", "shelter_operator"),
    ("Ligne Écoute Violences Conjugales", "helpline"),
    ("Hulplijn 1712", "helpline"),
    ("Zone de police Bruxelles-Capitale Ixelles", "police"),
    ("Task force hébergement d'urgence", "taskforce"),
    ("Abri administration", "admin"),
]

# kind of place -> (operator, template) choices
PLAN = [
    ("ipv_refuge", "Refuges Solidaires asbl", "Refuge"),
    ("ipv_refuge", "Vluchthuizen Vlaanderen vzw", "Vluchthuis"),
    ("requisitioned_crisis_hotel", "Hotel Partners Belgium", "Hotel"),
    ("cpas_emergency_flat", "CPAS Réseau Urgence", "CPAS"),
    ("night_shelter", "Samusocial Abri", "Nachtopvang"),
    ("caw_safe_house", "CAW Regio Centraal", "Safe house"),
]


def _policy_variant(rng: random.Random, template: str) -> AccessPolicy:
    base = policy_to_json(TEMPLATES[template].policy)
    if template == "ipv_refuge":
        base["maxBoyAge"] = rng.choice([12, 12, 14, 16, None])
        base["acceptsUndocumented"] = rng.random() < 0.5
        base["languages"] = rng.choice(
            [["fr", "en"], ["nl", "en"], ["fr", "nl", "en"], ["fr", "de"], ["nl", "fr", "ar"]]
        )
        base["wheelchairAccessible"] = rng.random() < 0.3
    elif template == "requisitioned_crisis_hotel":
        base["acceptsPets"] = rng.random() < 0.3
        base["wheelchairAccessible"] = rng.random() < 0.6
    elif template == "night_shelter":
        base["genders"] = rng.choice(
            [["male"], ["female", "nonbinary"], ["female", "male", "nonbinary"]]
        )
    elif template == "cpas_emergency_flat":
        base["acceptsUndocumented"] = rng.random() < 0.2
        base["languages"] = rng.choice([["fr"], ["nl"], ["de", "fr"], ["fr", "nl"]])
    return AccessPolicy(**{k: v for k, v in _snake(base).items()})


async def _example_place(db: Database, now: datetime) -> None:
    """The API documentation's example hold names a pool reference (``HOLD_EXAMPLE``). Give
    that reference to the best place its example search finds, so that Swagger UI's "Try it
    out" works on the demo from the search to the hold, as printed, without pasting a
    reference. (A real registry's references are random: the example can only hold here.)"""
    import msgspec

    from api.holds.schemas import HOLD_EXAMPLE
    from api.placement.controllers import SEARCH_EXAMPLE
    from capacity.settings import Settings
    from placement.household import SearchRequest, validate_areas
    from placement.matcher import MatcherIndex
    from placement.search_service import load_snapshots

    request = msgspec.convert(SEARCH_EXAMPLE, SearchRequest)
    async with db.read() as s:
        index = MatcherIndex(await load_snapshots(s, Settings(database_url=db.url)))
    options = (
        index.rank(request, requester_kind="helpline", now=now, areas=validate_areas(request))
        .result()
        .options
    )
    if options:
        async with db.write() as s:
            await s.execute(
                update(Pool)
                .where(Pool.ref == options[0].pool_ref)
                .values(ref=HOLD_EXAMPLE["poolRef"])
            )


def _snake(d: dict[str, object]) -> dict[str, object]:
    import re

    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in d.items()}


def _demo_phone(rng: random.Random, *, secret: bool) -> str:
    """A fictitious intake number; a secret place's is a mobile, as it should be: a
    landline's area code would tell requesters where it is (``capacity.phones``)."""
    zone, b, c, d = (
        rng.randint(2, 9),
        rng.randint(100, 999),
        rng.randint(10, 99),
        rng.randint(10, 99),
    )
    if secret:
        return f"+32 47{zone} {b % 100:02d} {c} {d}"
    return f"+32 {zone} {b} {c} {d}"


async def load_demo(
    db: Database,
    *,
    cipher: AddressCipher,
    clock: Clock | None = None,
    seed: int = 2026,
    history_days: int = 7,
) -> dict[str, str]:
    """Fill an empty database with the demo world; return one token per role. The world has
    a past of ``history_days`` (see ``_history``) so the task-force pages have something to
    show."""
    clock = clock or SystemClock()
    now = clock.now()
    rng = random.Random(seed)
    for name, kind in OPERATORS:
        await registry.create_operator(db, name=name, kind=kind, actor=CLI, now=now)

    cmds: list[FacilityCreate] = []
    counter = 0
    for prov, towns in TOWNS.items():
        per_area = 6 if prov in ("04000", "10000", "50000", "60000") else 5
        for i in range(per_area):
            template, operator, word = PLAN[(i + len(prov) + counter) % len(PLAN)]
            nis, code = towns[i % len(towns)]
            counter += 1
            tpl = TEMPLATES[template]
            pools = []
            for label, unit_kind, places in tpl.pools:
                total = rng.randint(2, 14) if unit_kind == "bed" else rng.randint(1, 8)
                occupied = min(
                    total + (1 if rng.random() < 0.1 else 0),
                    int(total * rng.choice([0.5, 0.8, 1.0, 1.0, 0.6])),
                )
                pools.append(
                    PoolCreate(
                        label=label,
                        unit_kind=unit_kind,  # type: ignore[arg-type]
                        places_per_unit=places,
                        units_total=total,
                        units_occupied=occupied,
                        surge_24h=rng.choice([0, 0, 1, 2]),
                        surge_72h=rng.choice([2, 3, 5]),
                    )
                )
            planned_end = None
            if template == "requisitioned_crisis_hotel":
                planned_end = now + timedelta(days=rng.choice([5, 12, 40, 90]))
            cmds.append(
                FacilityCreate(
                    operator=operator,
                    alias=f"{word} {code}-{counter}",
                    municipality_nis=nis,
                    template=template,
                    policy=patch_of(_policy_variant(rng, template)),
                    intake_phone=_demo_phone(rng, secret=TEMPLATES[template].secret_address),
                    # a CPAS answers in office hours; refuges and hotels keep a night line
                    intake_phone_24h=template != "cpas_emergency_flat",
                    address=Address(
                        street=f"Demostraat {counter} (fictitious)",
                        postal_code="0000",
                        city=f"Demo {code}",
                    ),
                    planned_end=planned_end,
                    pools=pools,
                )
            )
    ids = await registry.add_facilities(db, cmds, actor=CLI, now=now, cipher=cipher, source="demo")
    # Some places are stale: their last report is two days old.
    stale_ids = ids[3::7]
    async with db.write() as s:
        await s.execute(
            update(Pool)
            .where(Pool.facility_id.in_(stale_ids))
            .values(reported_at=now - timedelta(days=2))
        )
    # Some are not admitting tonight.
    await registry.set_status(
        db,
        ids[5],
        StatusChange(status="closed_to_admissions", reason="Staff shortage this week"),
        actor=CLI,
        now=now,
    )
    await registry.set_status(
        db,
        ids[17],
        StatusChange(
            status="reduced", reason="Quarantine in one wing", until=now + timedelta(days=7)
        ),
        actor=CLI,
        now=now,
    )

    tokens: dict[str, str] = {}
    token_ids: dict[tuple[int, str], int] = {}  # (operator, role): the demo token it acts with
    issued = now - timedelta(days=history_days, hours=1)  # before the past week it acted in
    for role, operator in [
        ("admin", "Abri administration"),
        ("staff", "Refuges Solidaires asbl"),
        ("helpline", "Ligne Écoute Violences Conjugales"),
        ("police", "Zone de police Bruxelles-Capitale Ixelles"),
        ("taskforce", "Task force hébergement d'urgence"),
    ]:
        clear, tok = await registry.create_token(
            db, operator=operator, role=role, actor=CLI, now=issued, label="demo"
        )
        tokens[role] = clear
        token_ids[(tok.operator_id, role)] = tok.id

    if history_days > 0:
        await _history(db, rng, now, ids, days=history_days, token_ids=token_ids)
    await _example_place(db, now)
    return tokens


# --------------------------------------------------------------------------- a past week


def _hold_audit(
    h: dict[str, Any], facility_operator: dict[int, int], token_ids: dict[tuple[int, str], int]
) -> list[dict[str, Any]]:
    """The entries a history hold would have left, with the details the services write."""

    def entry(at: datetime, operator_id: int | None, role: str, action: str, detail: Any) -> Any:
        return {
            "at": at,
            "actor_operator_id": operator_id,
            "actor_token_id": None if operator_id is None else token_ids.get((operator_id, role)),
            "actor_role": role,
            "action": action,
            "object_type": "hold",
            "object_id": h["ref"],
            "facility_id": h["facility_id"],
            "detail": detail,
        }

    requester = (h["requester_operator_id"], h["requester_kind"])  # helpline or police roles
    state, units = h["state"], h["units"]
    out = [
        entry(
            h["created_at"],
            *requester,
            "hold.created",
            {
                "units": units,
                "poolId": h["pool_id"],
                "deadline": utc_iso(h["deadline"]),
                "need": h["need"],
            },
        )
    ]
    moved = {"units": units, "reason": h["close_reason"], "from": "held"}
    if state == "expired":
        out.append(
            entry(
                h["closed_at"],
                None,
                "system",
                "hold.expired",
                {"units": units, "poolId": h["pool_id"]},
            )
        )
    elif state == "released":
        out.append(entry(h["closed_at"], *requester, "hold.released", moved))
    else:
        at = h["arrived_at"] if state == "arrived" else h["closed_at"]
        staff = facility_operator[h["facility_id"]]
        out.append(entry(at, staff, "staff", f"hold.{state}", moved))
    return out


_NEEDS = (("ipv", 50), ("family_violence", 12), ("sexual_violence", 8), ("homelessness", 25))
_OUTCOMES = (("arrived", 55), ("released", 15), ("declined", 10), ("expired", 12), ("no_show", 8))
_BLOCKING = (
    ("no_room", 40),
    ("children_not_accepted", 12),
    ("boy_too_old", 8),
    ("documents_required", 10),
    ("too_far", 10),
    ("admission_hours", 6),
    ("referral_required", 6),
)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _household(rng: random.Random) -> tuple[dict[str, Any], dict[str, bool], str]:
    """A household's composition (no names: there are none anywhere), its segments, its
    shape bucket."""
    adults = [{"gender": "female" if rng.random() < 0.85 else "male"}]
    children = [{"age": rng.randint(0, 17)} for _ in range(rng.choice([0, 0, 1, 2, 3]))]
    undocumented = rng.random() < 0.2
    no_income = rng.random() < 0.3
    household = {"adults": adults, "children": children}
    if undocumented:
        household["residenceStatus"] = "undocumented"
    segments = {"undocumented": undocumented, "withChildren": bool(children), "noIncome": no_income}
    shape = "1A" + (f"+{min(len(children), 3)}C" if children else "")
    return household, segments, shape


async def _history(
    db: Database,
    rng: random.Random,
    now: datetime,
    facility_ids: list[int],
    *,
    days: int,
    token_ids: dict[tuple[int, str], int] | None = None,
) -> None:
    """A plausible past: closed holds (arrived, released, declined, expired, no-show) and
    searches that found no place over the last ``days`` days, and saturation snapshots every
    six hours from pools whose occupancy wandered, so the task-force trend, unmet-demand
    table and briefing are not empty. Pool counts end exactly as the world above set them,
    and no hold is left active (``counters_agree`` holds). Each hold is in the audit log as
    a real one is: created by its requester (with the demo token where that operator has one),
    then arrived, declined or no-show by the facility's staff, released by the requester or
    expired at its deadline by Abri, so a facility's audit tells its past week too."""
    from capacity import snapshots
    from capacity.settings import Settings
    from placement.refcode import new_code

    async with db.read() as s:
        requesters = (
            await s.execute(
                select(Operator.id, Operator.kind).where(Operator.kind.in_(("helpline", "police")))
            )
        ).all()
        pools = (
            await s.execute(
                select(
                    Pool.id,
                    Pool.facility_id,
                    Pool.units_total,
                    Pool.units_occupied,
                    Facility.municipality_nis,
                    Facility.operator_id,
                )
                .join(Facility, Facility.id == Pool.facility_id)
                .where(Pool.facility_id.in_(facility_ids))
            )
        ).all()
    holds: list[dict[str, Any]] = []
    unmet: list[dict[str, Any]] = []
    idx = areas()
    for day in range(days):
        for _ in range(rng.randint(14, 26)):
            pool = rng.choice(pools)
            op_id, op_kind = rng.choice(requesters)
            created = now - timedelta(days=day, minutes=rng.randint(30, 24 * 60 - 1))
            state = _pick(rng, _OUTCOMES)
            household, segments, _shape = _household(rng)
            closed = created + timedelta(minutes=rng.randint(15, 85))
            if state == "expired":
                closed = created + timedelta(minutes=90)  # at its deadline, not before
            holds.append(
                {
                    "ref": new_code(),
                    "pool_id": pool.id,
                    "facility_id": pool.facility_id,
                    "requester_operator_id": op_id,
                    "requester_kind": op_kind,
                    "units": 1 + len(household["children"]) // 2,
                    "state": state,
                    "household": household,
                    "segments": segments,
                    "need": _pick(rng, _NEEDS),
                    "idempotency_key": f"demo-history-{len(holds)}",
                    "request_hash": "demo",
                    "created_at": created,
                    "deadline": created + timedelta(minutes=90),
                    "extensions": 0,
                    "closed_at": None if state == "arrived" else closed,
                    "close_reason": "No room for the children after all"
                    if state == "declined"
                    else None,
                    "arrived_at": closed if state == "arrived" else None,
                }
            )
        for _ in range(rng.randint(2, 7)):
            m = idx.municipality(rng.choice(pools).municipality_nis)
            _hh, segments, shape = _household(rng)
            unmet.append(
                {
                    "at": now - timedelta(days=day, minutes=rng.randint(0, 24 * 60 - 1)),
                    "requester_kind": rng.choice(("helpline", "police")),
                    "need": _pick(rng, _NEEDS),
                    "arrondissement_nis": m.arrondissement_nis,
                    "province_nis": m.province_nis,
                    "region_nis": m.region_nis,
                    "household_shape": shape,
                    "segments": segments,
                    "top_reasons": [_pick(rng, _BLOCKING)],
                    "episode_hash": None,
                }
            )
    facility_operator = {p.facility_id: p.operator_id for p in pools}
    entries = [e for h in holds for e in _hold_audit(h, facility_operator, token_ids or {})]
    entries.sort(key=lambda e: e["at"])  # ids in the order things happened
    async with db.write() as s:
        await s.execute(insert(Hold), holds)
        await s.execute(insert(UnmetDemand), unmet)
        await s.execute(insert(AuditEntry), entries)

    # Snapshots every 6 hours: occupancy wanders around today's figures, then is put back.
    settings = Settings(database_url=db.url)
    start = now - timedelta(days=days)
    steps = days * 4
    for i in range(steps):
        at = start + timedelta(hours=6 * i)
        pressure = 0.15 * math.sin(i / steps * math.pi * 2) + 0.1 * (i / steps)  # a busy week
        wandered = []
        for p in pools:
            drift = round(p.units_total * (pressure - 0.1 + rng.uniform(-0.1, 0.1)))
            occupied = max(0, min(p.units_total, p.units_occupied + drift))
            wandered.append({"id": p.id, "units_occupied": occupied})
        async with db.write() as s:
            await s.execute(update(Pool), wandered)  # by primary key, one statement
        await snapshots.take_snapshot(db, settings, at)
    async with db.write() as s:
        await s.execute(
            update(Pool), [{"id": p.id, "units_occupied": p.units_occupied} for p in pools]
        )
