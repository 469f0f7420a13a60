"""A CPAS/OCMW's own holds last until 09:00 the next morning (Belgian time): its night duty
holds a place for someone who turned up, and the day team takes over at 09:00."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy import select

from capacity.commands import PoolCreate
from capacity.models import AuditEntry
from tests.conftest import World, bearer

BRUSSELS = ZoneInfo("Europe/Brussels")
WOMAN = {"adults": [{"gender": "female"}], "residenceStatus": "documented", "languages": ["fr"]}


async def _cpas_hold(client: AsyncClient, world: World, key: str) -> dict[str, object]:
    token = await world.token("CPAS Ville", "helpline")
    found = await client.post(
        "/placements/search", headers=bearer(token), json={"household": WOMAN, "need": "ipv"}
    )
    assert found.status_code == 200, found.text
    r = await client.post(
        "/holds",
        headers={**bearer(token), "Idempotency-Key": key},
        json={"poolRef": found.json()["options"][0]["poolRef"], "household": WOMAN, "need": "ipv"},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _world(world: World) -> None:
    await world.operator("CPAS Ville", "cpas")
    await world.facility(
        "CPAS Ville",
        "CPAS LG-1",
        municipality="62063",
        kind="cpas_place",
        pools=[
            PoolCreate(label="Flats", unit_kind="family_room", places_per_unit=4, units_total=2)
        ],
    )


async def test_a_cpas_hold_deadline_is_written_in_utc_like_every_time(
    client: AsyncClient, world: World
) -> None:
    # Friday 23:00 in Brussels (22:00 UTC): held until Saturday 09:00, 08:00 UTC. The answer
    # writes it as every other time of the API ("…Z"), not in Brussels' offset, and the audit
    # the same way as other holds' deadlines.
    world.clock.set(datetime(2026, 12, 4, 23, 0, tzinfo=BRUSSELS).astimezone(UTC))
    await _world(world)
    hold = await _cpas_hold(client, world, "cpas-night-0001")
    assert hold["deadline"] == "2026-12-05T08:00:00Z"
    assert hold["minutesLeft"] == 600
    async with world.db.read() as s:
        entry = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "hold.created"))
        ).one()
    assert entry.detail is not None and entry.detail["deadline"] == "2026-12-05T08:00:00Z"


async def test_a_cpas_hold_made_just_before_nine_is_not_over_in_minutes(
    client: AsyncClient, world: World
) -> None:
    # 08:55 in Brussels: someone turned up at the CPAS as it opens. "Until 09:00 the next
    # morning" gave a 5-minute hold, expired before anyone could go there; a hold made less
    # than an hour before 09:00 lasts the kind's default (12 h) instead.
    world.clock.set(datetime(2026, 12, 7, 8, 55, tzinfo=BRUSSELS).astimezone(UTC))
    await _world(world)
    hold = await _cpas_hold(client, world, "cpas-morning-0001")
    assert hold["minutesLeft"] == 12 * 60
    assert hold["deadline"] == "2026-12-07T19:55:00Z"
    # 07:30: still until 09:00, as documented
    world.clock.set(datetime(2026, 12, 8, 7, 30, tzinfo=BRUSSELS).astimezone(UTC))
    hold = await _cpas_hold(client, world, "cpas-morning-0002")
    assert hold["deadline"] == "2026-12-08T08:00:00Z"
