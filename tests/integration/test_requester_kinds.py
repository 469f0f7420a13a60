"""R18: the services that ask for places are told apart: CAW welfare centres, family justice
centres (fjc), sexual assault care centres (sac: CPVS/ZSG) and on-call prosecutors have their
own kind, so a place can require a referral from them, their holds last what their work needs,
and the task force sees their demand apart."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from capacity.commands import PoolCreate
from capacity.errors import AbriError
from capacity.models import Hold
from placement.policy import AccessPolicy
from tests.conftest import World, bearer

WOMAN = {"adults": [{"gender": "female"}], "residenceStatus": "documented", "languages": ["fr"]}


def _search() -> dict[str, object]:
    return {"household": WOMAN, "need": "sexual_violence", "preferredMunicipalityNis": "21004"}


async def test_new_requester_kinds_search_hold_and_meet_referral_rules(
    client: AsyncClient, world: World
) -> None:
    await world.operator("Refuges", "shelter_operator")
    await world.operator("CPVS Bruxelles", "sac")
    await world.operator("Parquet Bruxelles", "prosecutor")
    await world.operator("Ligne 0800", "helpline")
    await world.operator("CAW Brussel", "caw")
    sac_only = await world.facility(
        "Refuges",
        "Refuge SAC",
        policy=AccessPolicy(referral_required_from=["sac"]),
        pools=[PoolCreate(label="Beds", units_total=2)],
    )
    await world.facility("Refuges", "Refuge Open", pools=[PoolCreate(label="Beds", units_total=2)])
    sac = await world.token("CPVS Bruxelles", "helpline")
    prosecutor = await world.token("Parquet Bruxelles", "helpline")
    line = await world.token("Ligne 0800", "helpline")
    # A CAW runs safe houses (staff) and refers (requester).
    await world.token("CAW Brussel", "staff")
    await world.token("CAW Brussel", "helpline")
    # A prosecutor is not the police: no police token, no police hold durations by mistake.
    with pytest.raises(AbriError):
        await world.token("Parquet Bruxelles", "police")

    found = {}
    for name, token in (("sac", sac), ("helpline", line), ("prosecutor", prosecutor)):
        r = await client.post("/placements/search", headers=bearer(token), json=_search())
        assert r.status_code == 200, r.text
        found[name] = r.json()
    assert {o["alias"] for o in found["sac"]["options"]} == {"Refuge SAC", "Refuge Open"}
    assert {o["alias"] for o in found["helpline"]["options"]} == {"Refuge Open"}
    assert found["helpline"]["excluded"] == {"referral_required": 1}
    assert {o["alias"] for o in found["prosecutor"]["options"]} == {"Refuge Open"}

    # Holds: the SAC's lasts a helpline's 4 h, the prosecutor's a police officer's 90 min.
    sac_pool = next(o for o in found["sac"]["options"] if o["alias"] == "Refuge SAC")["poolRef"]
    open_pool = found["prosecutor"]["options"][0]["poolRef"]
    minutes = {}
    for name, token, pool in (("sac", sac, sac_pool), ("prosecutor", prosecutor, open_pool)):
        r = await client.post(
            "/holds",
            headers={**bearer(token), "Idempotency-Key": f"kinds-{name}-0001"},
            json={
                "poolRef": pool,
                "household": WOMAN,
                "need": "sexual_violence",
                "callback": "Desk, +32 2 555 00 00",
            },
        )
        assert r.status_code == 201, r.text
        minutes[name] = r.json()["minutesLeft"]
    assert minutes == {"sac": 240, "prosecutor": 90}
    async with world.db.read() as s:
        kinds = set((await s.scalars(select(Hold.requester_kind))).all())
    assert kinds == {"sac", "prosecutor"}
    # The helpline cannot take the SAC-only place by its pool reference either.
    r = await client.post(
        "/holds",
        headers={**bearer(line), "Idempotency-Key": "kinds-line-0001"},
        json={
            "poolRef": sac_only.pools[0].ref,
            "household": WOMAN,
            "need": "sexual_violence",
        },
    )
    assert r.status_code in (403, 409, 422), r.text
    assert "referral" in r.text.lower()
