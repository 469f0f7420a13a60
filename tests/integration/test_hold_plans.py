"""PostgreSQL must look a hold up by its key, however many holds are active and whatever its
statistics say. Before migration 0007 it did not: after an ANALYZE that saw no active hold
(a quiet moment), it took ``state = 'held'`` for the most selective condition, and every
release or arrival read the index entries of all active holds (in the holds benchmark:
1.5-2 ms of database CPU per release instead of ~0.5 ms). This test recreates that moment
and reads the plans PostgreSQL keeps for the prepared statements (generic plans)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from placement import holds_service
from tests.conftest import World

_HISTORY = (
    "INSERT INTO holds (ref, pool_id, facility_id, requester_operator_id, requester_kind, units,"
    " state, need, idempotency_key, request_hash, created_at, deadline, extensions)"
    " SELECT $1::text || i, $2::bigint, $3::bigint, $4::bigint, 'police', 1, $5::text, 'ipv',"
    " $1::text || i, 'x', $6::timestamp, $6::timestamp + interval '90 minutes', 0"
    " FROM generate_series(1, $7::int) AS i"
)


async def _plan(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    statement = await conn.prepare("EXPLAIN " + sql)
    return "\n".join(row[0] for row in await statement.fetch(*args))


@pytest.mark.postgres
async def test_holds_are_found_by_key_even_when_statistics_saw_no_active_hold(
    pg_world: World,
) -> None:
    world = pg_world
    op = await world.operator("Police", "police")
    await world.operator("Refuges", "shelter_operator")
    fac = await world.facility("Refuges", "Plans")
    pool_id, pool_ref, fac_id = fac.pools[0].id, fac.pools[0].ref, fac.facility.id
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = await asyncpg.connect(world.db.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # A history of closed holds, statistics taken while none is active, then a busy hour.
        await conn.execute(_HISTORY, "old-", pool_id, fac_id, op, "released", now, 5000)
        await conn.execute("ANALYZE holds")
        await conn.execute(_HISTORY, "new-", pool_id, fac_id, op, "held", now, 2000)
        await conn.execute("SET plan_cache_mode = force_generic_plan")

        release = await _plan(conn, holds_service._PG_RELEASE, "new-7", now, None, op, op, 1, "x")
        assert "uq_holds_ref" in release, release
        assert "ix_holds_held" not in release, release

        move = await _plan(conn, holds_service._MOVE["released"][0], 7, now, None, None)
        assert "pk_holds" in move, move

        target = await _plan(conn, holds_service._TARGET, pool_ref, op, now, "k-1")
        assert "Seq Scan on holds" not in target, target  # an index over active holds
        assert "uq_holds_idem" in target, target  # the replay check: by (operator, key)

        # The one-statement hold checks the same two things (and writes the same rows).
        fast = await _plan(
            conn,
            holds_service._PG_FAST,
            *("REF", pool_id, fac_id, op, None, "police", 1, "{}", "{}", "ipv", None, "k-1"),
            *("x", now, now, "police", "{}", "bed", 1, "{}", "refuge", pool_ref, None, None),
        )
        assert "Seq Scan on holds" not in fast, fast
        assert "uq_holds_idem" in fast, fast

        due = await _plan(
            conn,
            "SELECT DISTINCT pool_id FROM holds WHERE state = 'held' AND deadline <= $1",
            now + timedelta(hours=1),
        )
        assert "ix_holds_held" in due, due  # the sweeper reads active holds only
    finally:
        await conn.close()
