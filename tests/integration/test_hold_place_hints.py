"""A hold decided from what the place was last read as (PostgreSQL's one-statement hold).

On PostgreSQL a process remembers each pool's place (rules, status, unit kind) from its last
full read, and the next hold on that pool is decided from it and granted in ONE statement that
checks again that nothing it was decided from has changed. These tests change the place in
every way that matters — through the services, from another process (a second ``Database``)
and behind the services' back — between two holds, and require the same answer a fresh read
gives: on SQLite (always the full path) and on PostgreSQL (the one-statement path first). On
PostgreSQL they also check which path was taken, so that a hint that is never used, or used
when it should not be, fails here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from capacity import registry
from capacity.audit import CLI, Actor
from capacity.commands import FacilityUpdate, PoolCreate, PoolUpdate, StatusChange
from capacity.db import Database
from capacity.errors import InvalidInput, NotFound
from placement import holds_service
from placement.errors import IdempotencyKeyReused, NoLongerFree, NotAdmitting, NotEligible
from placement.household import Adult, Child, Household
from placement.policy import AccessPolicy, PolicyPatch
from tests.conftest import World

ONE = Household(adults=[Adult(gender="female")])
TWO = Household(adults=[Adult(gender="female"), Adult(gender="male")])
MOTHER_AND_BOY = Household(adults=[Adult(gender="female")], children=[Child(age=15, gender="male")])


class Paths:
    """Counts which way each hold went: ``fast`` granted or refused in one statement,
    ``fell_back`` tried it and went the full way, ``full`` the full way without trying."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fast = self.fell_back = self.full = 0
        self._trying = False
        fast, full = holds_service._reserve_fast, holds_service._reserve_once

        async def spy_fast(*a: Any, **k: Any) -> Any:
            self._trying = True
            try:
                view = await fast(*a, **k)
            except BaseException:
                self.fast += 1
                raise
            finally:
                self._trying = False
            if view is None:
                self.fell_back += 1
            else:
                self.fast += 1
            return view

        async def spy_full(*a: Any, **k: Any) -> Any:
            self.full += 1
            return await full(*a, **k)

        monkeypatch.setattr(holds_service, "_reserve_fast", spy_fast)
        monkeypatch.setattr(holds_service, "_reserve_once", spy_full)

    def taken(self) -> tuple[int, int, int]:
        out = (self.fast, self.fell_back, self.full)
        self.fast = self.fell_back = self.full = 0
        return out


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    return Paths(monkeypatch)


async def _place(world: World, total: int = 6, **policy: Any) -> tuple[int, int, str, Actor]:
    await world.operator("Refuges H", "shelter_operator")
    view = await world.facility(
        "Refuges H",
        "Refuge H-1",
        policy=AccessPolicy(**policy),
        pools=[PoolCreate(label="Beds", units_total=total)],
    )
    police = await world.operator("Zone H", "police")
    actor = Actor(operator_id=police, role="police", operator_kind="police")
    return view.facility.id, view.pools[0].id, view.pools[0].ref, actor


async def _facility(world: World, fid: int, **change: Any) -> None:
    """Staff or an admin change the facility (through the service)."""
    await registry.update_facility(
        world.db, fid, FacilityUpdate(**change), actor=CLI, now=world.clock.now()
    )


async def _pool(world: World, pool_id: int, db: Database | None = None, **change: Any) -> None:
    await registry.update_pool(
        db or world.db, pool_id, PoolUpdate(**change), actor=CLI, now=world.clock.now()
    )


async def _status(world: World, fid: int, status: str, reason: str | None = None) -> None:
    await registry.set_status(
        world.db,
        fid,
        StatusChange(status=status, reason=reason),  # type: ignore[arg-type]
        actor=CLI,
        now=world.clock.now(),
    )


counter = iter(range(1, 1_000_000))


async def _hold(
    world: World,
    pool_ref: str,
    actor: Actor,
    *,
    household: Household = ONE,
    key: str | None = None,
    minutes: int | None = None,
) -> holds_service.Reserved:
    return await holds_service.reserve(
        world.db,
        pool_ref=pool_ref,
        household=household,
        need="ipv",
        minutes=minutes,
        callback=None,
        idempotency_key=key or f"hint-{next(counter)}",
        actor=actor,
        now=world.clock.now(),
    )


def _expect(paths: Paths, backend: str, on_postgres: tuple[int, int, int]) -> None:
    """SQLite always goes the full way; PostgreSQL as given."""
    fast, fell_back, full = paths.taken()
    if backend == "sqlite":
        assert (fast, fell_back) == (0, 0) and full >= 1
    else:
        assert (fast, fell_back, full) == on_postgres


async def test_a_known_place_is_held_in_one_statement_and_shows_the_place_as_it_is_now(
    world: World, backend: str, paths: Paths
) -> None:
    fid, pool_id, ref, actor = await _place(world)
    first = await _hold(world, ref, actor)
    _expect(paths, backend, (0, 0, 1))  # never read before: the full way
    # The intake phone changes (from another process): the next hold, decided from the hint,
    # still shows the phone as it is now — what a hold shows of the place is read when granted.
    await _facility(world, fid, intake_phone="+32 2 555 09 09", handover_protocol="Ring twice.")
    second = await _hold(world, ref, actor)
    _expect(paths, backend, (1, 0, 0))
    assert second.created and second.view.intake_phone == "+32 2 555 09 09"
    assert second.view.handover_protocol == "Ring twice."
    for field in ("requester_operator", "facility_ref", "facility_alias", "pool_label"):
        assert getattr(second.view, field) == getattr(first.view, field)
    assert (second.view.pool_id, second.view.facility_id, second.view.units) == (pool_id, fid, 1)
    assert second.view.deadline == world.clock.now() + timedelta(minutes=90)
    got = await holds_service.get(world.db, second.view.ref, actor=actor, side="requester")
    assert got == second.view
    # Names change too (none of them is a reason to decide again): shown as they are now.
    await _facility(world, fid, alias="Refuge H-1 bis")
    await _pool(world, pool_id, label="Lits")
    async with world.db.write() as s:
        await s.execute(
            text("UPDATE operators SET name = 'Zone H-Nord' WHERE id = :id"),
            {"id": actor.operator_id},
        )
    third = await _hold(world, ref, actor)
    _expect(paths, backend, (1, 0, 0))
    assert (third.view.facility_alias, third.view.pool_label, third.view.requester_operator) == (
        "Refuge H-1 bis",
        "Lits",
        "Zone H-Nord",
    )
    got = await holds_service.get(world.db, third.view.ref, actor=actor, side="requester")
    assert got == third.view  # the view built from the statement = the view read afterwards
    assert await holds_service.counters_agree(world.db) == []


async def test_the_place_closed_meanwhile_is_refused_from_a_fresh_read(
    world: World, backend: str, paths: Paths
) -> None:
    fid, _pool_id, ref, actor = await _place(world)
    await _hold(world, ref, actor)
    paths.taken()
    await _status(world, fid, "closed_to_admissions", "water damage")
    with pytest.raises(NotAdmitting):
        await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))
    with pytest.raises(NotAdmitting):  # now known as closed: straight to the full way
        await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))
    await _status(world, fid, "open")
    assert (await _hold(world, ref, actor)).created
    _expect(paths, backend, (0, 1, 1))  # decided "closed" from the hint: asks afresh
    # A temporary scheme's planned end, set by another process, passes: no new placements.
    await _facility(world, fid, planned_end=world.clock.now() + timedelta(minutes=1))
    world.clock.advance(minutes=2)  # (the holds made above are not due yet)
    with pytest.raises(NotAdmitting):
        await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))


async def test_new_rules_apply_to_the_very_next_hold(
    world: World, backend: str, paths: Paths
) -> None:
    fid, _pool_id, ref, actor = await _place(world)
    await _hold(world, ref, actor, household=MOTHER_AND_BOY)
    paths.taken()
    # Boys from 14 are no longer taken, and holds last at most 30 minutes here.
    patch = msgspec.convert({"maxBoyAge": 13, "maxHoldMinutes": 30}, PolicyPatch)
    await _facility(world, fid, policy=patch)
    with pytest.raises(NotEligible):
        await _hold(world, ref, actor, household=MOTHER_AND_BOY)
    _expect(paths, backend, (0, 1, 1))
    with pytest.raises(InvalidInput):
        await _hold(world, ref, actor, minutes=60)
    _expect(paths, backend, (0, 1, 1))
    granted = await _hold(world, ref, actor)
    _expect(paths, backend, (1, 0, 0))  # the hint was refreshed by the full read
    assert granted.view.deadline == world.clock.now() + timedelta(minutes=30)


async def _set_policy_behind_the_back(db: Database, facility_id: int, policy: AccessPolicy) -> None:
    """Not a service: no audit, no ``updated_at`` — nothing anyone could watch for."""
    async with db.write() as s:
        await s.execute(
            text("UPDATE facilities SET policy = :p WHERE id = :id"),
            {"p": msgspec.json.encode(policy).decode(), "id": facility_id},
        )


async def test_a_change_the_process_never_saw_still_wins(
    world: World, backend: str, db_url: str, paths: Paths
) -> None:
    """Another API process (a second Database), then a change behind every service's back:
    the one statement checks the columns themselves, not a version someone must bump."""
    fid, pool_id, ref, actor = await _place(world)
    await _hold(world, ref, actor)
    paths.taken()
    other = Database(db_url)
    try:
        await _pool(world, pool_id, other, unit_kind="family_room", places_per_unit=4)
        family = await _hold(world, ref, actor, household=MOTHER_AND_BOY)
        _expect(paths, backend, (0, 1, 1))
        assert (family.view.units, family.view.unit_kind) == (1, "family_room")
        await _set_policy_behind_the_back(other, fid, AccessPolicy(genders=["male"]))
        with pytest.raises(NotEligible):
            await _hold(world, ref, actor)
        _expect(paths, backend, (0, 1, 1))
        await _set_policy_behind_the_back(other, fid, AccessPolicy())
        await _hold(world, ref, actor)
        _expect(paths, backend, (0, 1, 1))
        await _hold(world, ref, actor)
        _expect(paths, backend, (1, 0, 0))
        async with other.write() as s:
            await s.execute(
                text("UPDATE facilities SET kind = 'perpetrator_accommodation' WHERE id = :id"),
                {"id": fid},
            )
        with pytest.raises(Exception, match="No such place"):  # R40: not a place for victims
            await _hold(world, ref, actor)
        _expect(paths, backend, (0, 1, 1))
    finally:
        await other.dispose()
    assert await holds_service.counters_agree(world.db) == []


async def test_due_holds_replays_and_refusals_on_a_known_place(
    world: World, backend: str, paths: Paths
) -> None:
    _fid, pool_id, ref, actor = await _place(world, total=3)
    short = await _hold(world, ref, actor, minutes=15)
    paths.taken()
    await _hold(world, ref, actor)
    await _hold(world, ref, actor)
    _expect(paths, backend, (2, 0, 0))
    with pytest.raises(NoLongerFree) as full:  # 3 of 3 held: refused from the one statement
        await _hold(world, ref, actor)
    assert full.value.extra["current"] == {"unitsFree": 0}
    _expect(paths, backend, (1, 0, 0))
    # The short hold falls due: it no longer blocks, though no sweeper ran (invariant 4).
    world.clock.advance(minutes=16)
    again = await _hold(world, ref, actor, key="after-due")
    _expect(paths, backend, (0, 1, 1))  # a due hold waits: the full way expires it first
    got = await holds_service.get(world.db, short.view.ref, actor=actor, side="requester")
    assert got.state == "expired"
    # The same key again: the same hold, nothing taken twice; another body with it: refused.
    replay = await _hold(world, ref, actor, key="after-due")
    assert (replay.created, replay.view.ref) == (False, again.view.ref)
    _expect(paths, backend, (0, 1, 1))
    with pytest.raises(IdempotencyKeyReused):
        await _hold(world, ref, actor, key="after-due", minutes=20)
    paths.taken()
    async with world.db.read() as s:
        held = await s.scalar(text("SELECT units_held FROM pools WHERE id = :id"), {"id": pool_id})
    assert held == 3
    assert await holds_service.counters_agree(world.db) == []


async def test_each_pool_change_alone_is_seen(world: World, backend: str, paths: Paths) -> None:
    """Unit kind alone, places per unit alone, the pool moved to another facility or its
    reference changed (the last two behind the services' back)."""
    _fid, pool_id, ref, actor = await _place(world)
    await _hold(world, ref, actor, household=TWO)  # 2 beds
    paths.taken()
    await _pool(
        world, pool_id, unit_kind="room"
    )  # rooms of 1 place: a household of 2 no longer fits
    with pytest.raises(NotEligible):
        await _hold(world, ref, actor, household=TWO)
    _expect(paths, backend, (0, 1, 1))
    await _pool(world, pool_id, places_per_unit=2)
    assert (await _hold(world, ref, actor, household=TWO)).view.units == 1
    _expect(paths, backend, (0, 1, 1))
    await _pool(world, pool_id, places_per_unit=1)
    with pytest.raises(NotEligible):
        await _hold(world, ref, actor, household=TWO)
    _expect(paths, backend, (0, 1, 1))
    other = await world.facility("Refuges H", "Refuge H-2", pools=[])
    async with world.db.write() as s:
        await s.execute(
            text("UPDATE pools SET facility_id = :f WHERE id = :id"),
            {"f": other.facility.id, "id": pool_id},
        )
    moved = await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))
    assert (moved.view.facility_id, moved.view.facility_alias) == (
        other.facility.id,
        "Refuge H-2",
    )
    async with world.db.write() as s:
        await s.execute(
            text("UPDATE pools SET ref = 'pool_renamed' WHERE id = :id"), {"id": pool_id}
        )
    with pytest.raises(NotFound):
        await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))
    assert (await _hold(world, "pool_renamed", actor)).created
    assert await holds_service.counters_agree(world.db) == []


async def test_a_place_that_opens_later_is_refused_until_then(
    world: World, backend: str, paths: Paths
) -> None:
    fid, _pool_id, ref, actor = await _place(world)
    await _hold(world, ref, actor)
    paths.taken()
    await _facility(world, fid, valid_from=world.clock.now() + timedelta(hours=2))
    with pytest.raises(NotAdmitting):
        await _hold(world, ref, actor)
    _expect(paths, backend, (0, 1, 1))


async def test_rules_that_no_longer_parse_stop_only_a_decision(
    world: World, backend: str, paths: Paths
) -> None:
    """A replay is answered, and a closed place refused, without reading the rules (as
    before the one-statement hold); only deciding a new hold needs them."""
    fid, _pool_id, ref, actor = await _place(world)
    first = await _hold(world, ref, actor, key="before-the-change")
    async with world.db.write() as s:  # e.g. a field this release does not know
        await s.execute(
            text("UPDATE facilities SET policy = :p WHERE id = :id"),
            {"p": '{"fieldFromAnotherRelease": true}', "id": fid},
        )
    replay = await _hold(world, ref, actor, key="before-the-change")
    assert (replay.created, replay.view.ref) == (False, first.view.ref)
    with pytest.raises(msgspec.ValidationError):  # stored data this release cannot read
        await _hold(world, ref, actor)
    await _status(world, fid, "suspended", "works")
    with pytest.raises(NotAdmitting):
        await _hold(world, ref, actor)
    paths.taken()


async def test_whether_the_intake_phone_answers_at_night_is_shown_on_every_path(
    world: World, backend: str, paths: Paths
) -> None:
    """R21: a hold says whether its intake phone answers round the clock — from the full path,
    the one-statement hold (PostgreSQL), a read, and the one-statement release — as the
    facility says it now."""
    fid, _pool_id, ref, actor = await _place(world)
    first = await _hold(world, ref, actor)
    _expect(paths, backend, (0, 0, 1))
    assert first.view.intake_phone_24h is True  # the default: a 24/7 intake number
    await _facility(world, fid, intake_phone_24h=False)
    second = await _hold(world, ref, actor)
    _expect(paths, backend, (1, 0, 0))
    assert second.view.intake_phone_24h is False
    got = await holds_service.get(world.db, second.view.ref, actor=actor, side="requester")
    assert got.intake_phone_24h is False
    released = await holds_service.transition(
        world.db, second.view.ref, "released", actor=actor, now=world.clock.now()
    )
    assert released.intake_phone_24h is False and released.state == "released"
    await _facility(world, fid, intake_phone_24h=True)
    third = await _hold(world, ref, actor)
    assert third.view.intake_phone_24h is True
