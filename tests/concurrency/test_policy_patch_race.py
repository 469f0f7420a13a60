"""Admins editing the same facility's policy at once, each one field (merge-patches, two
engines, committed data): every field given ends up in the policy. Without the row lock,
PostgreSQL's READ COMMITTED lets one merge overwrite another (a review saw one change lost in
half the rounds); SQLite serialises writers anyway."""

from __future__ import annotations

import asyncio

import pytest

from capacity import audit, registry
from capacity.commands import FacilityUpdate, PoolCreate
from capacity.db import Database
from placement.policy import PolicyPatch, policy_from_json
from tests.conftest import World

pytestmark = pytest.mark.concurrency

CHANGES = [
    {"accepts_pets": True},
    {"wheelchair_accessible": True},
    {"languages": ["de", "fr"]},
    {"interpreters_available": True},
    {"max_stay_nights": 42},
    {"accepts_adolescents_alone": True},
]


async def test_concurrent_policy_edits_all_land(world: World) -> None:
    await world.operator("Refuges", "shelter_operator")
    now = world.clock.now()
    view = await world.facility(
        "Refuges",
        "Refuge P",
        pools=[PoolCreate(label="Beds", units_total=2)],
    )
    fid = view.facility.id
    other = Database(world.db.url)  # a second API process
    try:
        for round_ in range(3):
            start = asyncio.Event()

            async def edit(
                db: Database, change: dict[str, object], start: asyncio.Event = start
            ) -> None:
                await start.wait()
                await registry.update_facility(
                    db,
                    fid,
                    FacilityUpdate(policy=PolicyPatch(**change)),
                    actor=audit.CLI,
                    now=now,
                )

            dbs = [world.db, other]
            tasks = [asyncio.create_task(edit(dbs[i % 2], c)) for i, c in enumerate(CHANGES)]
            await asyncio.sleep(0.05)
            start.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            got = policy_from_json((await registry.get_facility(world.db, fid)).facility.policy)
            for change in CHANGES:
                for name, value in change.items():
                    assert getattr(got, name) == value, (round_, name)
            # reset for the next round
            await registry.update_facility(
                world.db,
                fid,
                FacilityUpdate(
                    policy=PolicyPatch(
                        accepts_pets=False,
                        wheelchair_accessible=False,
                        languages=["fr"],
                        interpreters_available=False,
                        max_stay_nights=None,
                        accepts_adolescents_alone=False,
                    )
                ),
                actor=audit.CLI,
                now=now,
            )
    finally:
        await other.dispose()
