"""A deliberately NAIVE hold: read the free count, then write. Test-only negative control.

It is what the hold gate replaces. Under the race harness it must overbook (on PostgreSQL, and
on SQLite with a driver-default engine); if it ever stops overbooking, the harness is broken.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert, select, update

from capacity.db import Database
from capacity.models import Hold, Pool
from placement.errors import NoLongerFree
from placement.refcode import new_code


async def naive_reserve(
    db: Database, *, pool_id: int, facility_id: int, operator_id: int, key: str, now
) -> str:  # type: ignore[no-untyped-def]
    async with db.write() as s:
        total, occupied, held = (
            await s.execute(
                select(Pool.units_total, Pool.units_occupied, Pool.units_held).where(
                    Pool.id == pool_id
                )
            )
        ).one()
        if total - occupied - held < 1:
            raise NoLongerFree("gone")
        await asyncio.sleep(0.01)  # the window every real system has between check and write
        await s.execute(update(Pool).where(Pool.id == pool_id).values(units_held=held + 1))
        ref = new_code()
        await s.execute(
            insert(Hold).values(
                ref=ref,
                pool_id=pool_id,
                facility_id=facility_id,
                requester_operator_id=operator_id,
                requester_kind="police",
                units=1,
                state="held",
                household={},
                segments={},
                need="ipv",
                idempotency_key=key,
                request_hash="x",
                created_at=now,
                deadline=now + timedelta(hours=1),
                extensions=0,
            )
        )
    return ref
