"""A temporary status ends by itself (R03): the scheduled job reopens a facility closed to
admissions, reduced or suspended once its ``until`` has passed — not a minute before — and
never a compromised location. Each lapse is audited once; the search index follows."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import select, update

from capacity import registry
from capacity.audit import Actor
from capacity.clock import utc_iso
from capacity.commands import PoolCreate, StatusChange
from capacity.errors import InvalidInput
from capacity.models import AuditEntry, Facility
from capacity.settings import Settings
from ops.scheduler import JobContext, load_jobs
from placement.household import SearchRequest
from placement.search_service import SnapshotCache, search
from tests.conftest import World

WOMAN = {"adults": [{"gender": "female"}], "residenceStatus": "documented", "income": "yes"}
REQ = msgspec.convert({"household": WOMAN, "need": "homelessness"}, SearchRequest)


async def _facilities(world: World, *aliases: str) -> dict[str, int]:
    await world.operator("Refuges", "shelter_operator")
    out = {}
    for alias in aliases:
        view = await world.facility(
            "Refuges", alias, pools=[PoolCreate(label="Beds", units_total=3)]
        )
        out[alias] = view.facility.id
    return out


async def _set(world: World, fid: int, status: str, hours: float | None = None) -> None:
    staff = Actor(operator_id=1, role="staff", operator_kind="shelter_operator")
    now = world.clock.now()
    await registry.set_status(
        world.db,
        fid,
        StatusChange(
            status=status,  # type: ignore[arg-type]
            reason=f"{status} because of works at Rue de la Loi 16",
            until=None if hours is None else now + timedelta(hours=hours),
        ),
        actor=staff,
        now=now,
    )


async def _state(world: World) -> dict[str, tuple[object, ...]]:
    async with world.db.read() as s:
        rows = await s.execute(
            select(Facility.alias, Facility.status, Facility.status_reason, Facility.status_until)
        )
        return {r[0]: (r[1], r[2] is not None, r[3] is not None) for r in rows.all()}


async def _lapses(world: World) -> list[AuditEntry]:
    async with world.db.read() as s:
        rows = await s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "facility.status_lapsed")
            .order_by(AuditEntry.id)
        )
        return list(rows.all())


async def _offered(world: World, cache: SnapshotCache) -> set[str]:
    found = await search(
        world.db, cache, REQ, requester_kind="police", operator_id=1, now=world.clock.now()
    )
    return {o.alias for o in found.result.options}


async def test_the_job_reopens_at_until_not_before_and_never_a_compromised_location(
    world: World, settings: Settings
) -> None:
    ids = await _facilities(
        world, "Closed", "Reduced", "Suspended", "Open-ended", "Compromised", "Open"
    )
    await _set(world, ids["Closed"], "closed_to_admissions", hours=2)
    await _set(world, ids["Reduced"], "reduced", hours=3)
    await _set(world, ids["Suspended"], "suspended", hours=4)
    await _set(world, ids["Open-ended"], "suspended")  # no until: until someone changes it
    await _set(world, ids["Compromised"], "location_compromised")
    # an `until` kept from before it was refused for this status: never a reopening
    async with world.db.write() as s:
        await s.execute(
            update(Facility)
            .where(Facility.id == ids["Compromised"])
            .values(status_until=world.clock.now() + timedelta(hours=1))
        )
    for status in ("location_compromised", "open"):  # refused now: it would mean nothing
        with pytest.raises(InvalidInput) as refused:
            await _set(world, ids["Open"], status, hours=1)
        assert refused.value.field == "until"
    jobs = load_jobs()
    spec = jobs["facility_status_lapse"]
    assert spec.seconds <= 60
    ctx = JobContext(world.db, world.clock, settings, None)  # type: ignore[arg-type]
    cache = SnapshotCache(world.db, settings, max_age=3600)  # refreshed by hand below
    assert await _offered(world, cache) == {"Reduced", "Open"}
    closed_at = world.clock.now() + timedelta(hours=2)

    world.clock.advance(hours=1, minutes=59, seconds=59)
    assert await spec.fn(ctx) == 0  # not a second before
    assert (await _state(world))["Closed"] == ("closed_to_admissions", True, True)

    world.clock.advance(seconds=1)  # exactly at until
    index = await cache.index()
    assert await spec.fn(ctx) == 1
    state = await _state(world)
    assert state["Closed"] == ("open", False, False)  # reason and until cleared
    assert state["Compromised"] == ("location_compromised", True, True)  # its until is past
    async with world.db.read() as s:
        fac = await s.get(Facility, ids["Closed"])
        assert fac is not None and fac.updated_at == world.clock.now()
    (entry,) = await _lapses(world)
    assert (entry.actor_role, entry.actor_operator_id, entry.facility_id) == (
        "system",
        None,
        ids["Closed"],
    )
    assert entry.object_type == "facility" and entry.object_id == str(ids["Closed"])
    assert entry.detail == {"from": "closed_to_admissions", "until": utc_iso(closed_at)}
    # the search index notices (facilities' updated_at is in its stamp) and offers it again
    await cache._reload()
    assert cache._index is not index
    assert await _offered(world, cache) == {"Closed", "Reduced", "Open"}

    assert await spec.fn(ctx) == 0  # idempotent
    world.clock.advance(days=30)
    assert await spec.fn(ctx) == 2  # reduced and suspended
    assert await spec.fn(ctx) == 0
    state = await _state(world)
    assert {a for a, (st, _r, _u) in state.items() if st == "open"} == {
        "Closed",
        "Reduced",
        "Suspended",
        "Open",
    }
    assert state["Open-ended"] == ("suspended", True, False)
    assert state["Compromised"] == ("location_compromised", True, True)
    lapses = await _lapses(world)
    assert [(e.facility_id, e.detail["from"]) for e in lapses] == [
        (ids["Closed"], "closed_to_admissions"),
        (ids["Reduced"], "reduced"),
        (ids["Suspended"], "suspended"),
    ]
    for e in lapses:  # the staff's free text stays in the status change's own entry
        assert set(e.detail) == {"from", "until"} and "Rue de la Loi" not in str(e.detail)
    await cache._reload()
    assert await _offered(world, cache) == {"Closed", "Reduced", "Suspended", "Open"}
    await cache.aclose()


async def test_a_new_until_set_meanwhile_is_kept(world: World, settings: Settings) -> None:
    """Staff extend the closure before it ends: the job reopens at the new end only."""
    ids = await _facilities(world, "Closed")
    await _set(world, ids["Closed"], "closed_to_admissions", hours=1)
    world.clock.advance(minutes=50)
    await _set(world, ids["Closed"], "closed_to_admissions", hours=5)  # until +5h50 in all
    world.clock.advance(hours=1)
    assert await registry.lapse_due_statuses(world.db, now=world.clock.now()) == []
    world.clock.advance(hours=4, minutes=50)
    assert await registry.lapse_due_statuses(world.db, now=world.clock.now()) == [ids["Closed"]]
    assert len(await _lapses(world)) == 1
