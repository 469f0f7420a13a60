"""A realistic Belgian demo dataset: ~60 facilities of every kind across all provinces.

All names, phones and addresses are fictional. Deterministic (seeded), so demos and tests see
the same world. Some addresses are secret, some places are stale, some are full or closed.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import update

from capacity import registry
from capacity.audit import CLI
from capacity.clock import Clock, SystemClock
from capacity.commands import FacilityCreate, PoolCreate, StatusChange
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.models import Pool
from capacity.templates import TEMPLATES
from placement.policy import AccessPolicy, policy_to_json

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


def _snake(d: dict[str, object]) -> dict[str, object]:
    import re

    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in d.items()}


async def load_demo(
    db: Database, *, cipher: AddressCipher, clock: Clock | None = None, seed: int = 2026
) -> dict[str, str]:
    """Fill an empty database with the demo world; return one token per role."""
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
                    policy=_policy_variant(rng, template),
                    intake_phone=f"+32 {rng.randint(2, 9)} {rng.randint(100, 999)} "
                    f"{rng.randint(10, 99)} {rng.randint(10, 99)}",
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
    for role, operator in [
        ("admin", "Abri administration"),
        ("staff", "Refuges Solidaires asbl"),
        ("helpline", "Ligne Écoute Violences Conjugales"),
        ("police", "Zone de police Bruxelles-Capitale Ixelles"),
        ("taskforce", "Task force hébergement d'urgence"),
    ]:
        clear, _ = await registry.create_token(
            db, operator=operator, role=role, actor=CLI, now=now, label="demo"
        )
        tokens[role] = clear
    return tokens
