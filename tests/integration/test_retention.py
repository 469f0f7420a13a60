"""Retention purge: after the period, closed holds keep statistics only; active holds and recent
data are untouched; a second run changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from capacity import retention
from capacity.audit import Actor
from capacity.commands import PoolCreate
from capacity.models import AuditEntry, Hold
from ops.scheduler import JobContext, load_jobs
from placement import holds_service
from placement.household import Adult, Child, Household
from placement.policy import AccessPolicy
from tests.conftest import TEST_EPISODE, World

FAMILY = Household(
    adults=[Adult(gender="female")], children=[Child(age=3)], residence_status="undocumented"
)


async def _hold(world: World, pool_ref: str, actor: Actor, key: str) -> str:
    # each hold its own episode (a case id may be the requester's token)
    r = await holds_service.reserve(
        world.db,
        pool_ref=pool_ref,
        household=FAMILY,
        need="ipv",
        minutes=None,
        callback="Dispatch, +32 2 555 00 00",
        idempotency_key=key,
        actor=actor,
        now=world.clock.now(),
        episode_token=f"case-{key}",
        episode_key=TEST_EPISODE,
    )
    return r.view.ref


async def test_closed_holds_and_old_audit_detail_become_statistics(world: World) -> None:
    await world.operator("Refuges", "shelter_operator")
    police_id = await world.operator("Zone", "police")
    fac = await world.facility(
        "Refuges",
        "Refuge P",
        policy=AccessPolicy(accepts_undocumented=True),
        pools=[PoolCreate(label="Fam", unit_kind="family_room", places_per_unit=3, units_total=5)],
    )
    staff = Actor(operator_id=fac.operator.id, role="staff", operator_kind="shelter_operator")
    police = Actor(operator_id=police_id, role="police", operator_kind="police")
    pool = fac.pools[0].ref
    declined = await _hold(world, pool, police, "retention-0001")
    await holds_service.transition(
        world.db, declined, "declined", actor=staff, now=world.clock.now(), reason="Named person X"
    )
    arrived = await _hold(world, pool, police, "retention-0002")
    await holds_service.transition(world.db, arrived, "arrived", actor=staff, now=world.clock.now())

    # A requester who sends the key a purged hold would get (its old ref behind "purged:")
    # cannot block the purge: the purged form has a "#", which no Idempotency-Key may hold.
    await _hold(world, pool, police, f"purged:{declined}")
    world.clock.advance(days=91)
    recent = await _hold(world, pool, police, "retention-0003")  # still held, 91 days later

    jobs = load_jobs()
    assert jobs["retention_purge"].seconds <= 24 * 3600  # scheduled, at least daily
    done = await retention.purge(world.db, now=world.clock.now(), days=90)
    assert done.holds == 2 and done.audit_entries >= 3

    async with world.db.read() as s:
        rows = {
            r.ref: r
            for r in (
                await s.execute(
                    select(
                        Hold.ref,
                        Hold.state,
                        Hold.household,
                        Hold.callback,
                        Hold.close_reason,
                        Hold.segments,
                        Hold.units,
                        Hold.need,
                        Hold.idempotency_key,
                        Hold.request_hash,
                        Hold.requester_token_id,
                        Hold.household_key,
                    )
                )
            ).all()
        }
        for ref in (declined, arrived):
            r = rows[ref]
            assert r.household is None and r.callback is None and r.close_reason is None
            assert r.segments == {"undocumented": True, "withChildren": True, "noIncome": False}
            assert r.units == 1 and r.need == "ipv"  # statistics survive
            # Nothing left to tie the hold to the requester's case (its key may be a case id).
            assert r.idempotency_key == f"#purged:{ref}" and r.request_hash == ""
            assert r.requester_token_id is None and r.household_key is None
        assert rows[declined].state == "declined" and rows[arrived].state == "arrived"
        assert rows[recent].household is not None and rows[recent].callback is not None
        assert rows[recent].idempotency_key == "retention-0003" and rows[recent].request_hash
        assert rows[recent].household_key is not None
        old_details = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.at <= world.clock.now().replace(year=2026, month=3),
                AuditEntry.detail.is_not(None),
            )
        )
        assert old_details == 0
        assert (
            await s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "hold.declined")
            )
            == 1
        )  # who/what/when stays
    again = await retention.purge(world.db, now=world.clock.now(), days=90)
    assert again.holds == 0 and again.audit_entries == 0
    # The job wrapper runs it with the configured period.
    from capacity.settings import Settings

    ctx = JobContext(world.db, world.clock, Settings(database_url=world.db.url), None)  # type: ignore[arg-type]
    assert await jobs["retention_purge"].fn(ctx) == 0
    assert await holds_service.counters_agree(world.db) == []


async def test_searches_that_found_nothing_lose_their_episode_hash(world: World) -> None:
    """An episode token may be a requester's case number: after the period its hash goes, the
    search's statistics stay (and a second run finds nothing)."""
    from sqlalchemy import insert

    from capacity.models import UnmetDemand

    def row(days_ago: int, episode: str) -> dict[str, object]:
        return {
            "at": world.clock.now() - timedelta(days=days_ago),
            "requester_kind": "police",
            "need": "ipv",
            "arrondissement_nis": "21000",
            "province_nis": "04000",
            "region_nis": "04000",
            "household_shape": "1A+1C",
            "segments": {"undocumented": True},
            "top_reasons": ["no_room"],
            "episode_hash": episode,
        }

    async with world.db.write() as s:
        await s.execute(insert(UnmetDemand), [row(91, "a" * 64), row(89, "b" * 64)])
    done = await retention.purge(world.db, now=world.clock.now(), days=90)
    assert done.unmet_episodes == 1
    async with world.db.read() as s:
        rows = (
            await s.execute(
                select(
                    UnmetDemand.household_shape, UnmetDemand.top_reasons, UnmetDemand.episode_hash
                ).order_by(UnmetDemand.at)
            )
        ).all()
    # the statistics stay; the older hash is gone
    assert [tuple(r) for r in rows] == [
        ("1A+1C", ["no_room"], None),
        ("1A+1C", ["no_room"], "b" * 64),
    ]
    assert (await retention.purge(world.db, now=world.clock.now(), days=90)).unmet_episodes == 0


async def test_an_alerts_free_text_reason_goes_with_the_audit_detail(world: World) -> None:
    """A "location compromised" reason is written by a person ("the ex-partner of Mrs X found
    the refuge"): its audit detail loses it after the period, so the alert that copied it into
    its message must too; the alert itself (which place, when, acknowledged) stays."""
    from capacity import registry
    from capacity.commands import StatusChange
    from capacity.models import Alert

    await world.operator("Refuges", "shelter_operator")
    fac = await world.facility(
        "Refuges",
        "Refuge A",
        pools=[PoolCreate(label="Fam", unit_kind="family_room", places_per_unit=3, units_total=2)],
    )
    admin = Actor(operator_id=None, role="admin", operator_kind="admin")
    reason = "the ex-partner of Marie Dupont (0470 12 34 56) was seen outside"
    await registry.set_status(
        world.db,
        fac.facility.id,
        StatusChange(status="location_compromised", reason=reason),
        actor=admin,
        now=world.clock.now(),
    )
    world.clock.advance(days=89)
    await registry.set_status(
        world.db,
        fac.facility.id,
        StatusChange(status="open", reason="moved"),
        actor=admin,
        now=world.clock.now(),
    )
    await registry.set_status(
        world.db,
        fac.facility.id,
        StatusChange(status="location_compromised", reason="recent: Jan Peeters' partner"),
        actor=admin,
        now=world.clock.now(),
    )
    world.clock.advance(days=2)

    done = await retention.purge(world.db, now=world.clock.now(), days=90)
    async with world.db.read() as s:
        messages = (await s.scalars(select(Alert.message).order_by(Alert.at))).all()
    assert messages == [
        "Location of Refuge A reported compromised: no new placements.",
        "Location of Refuge A reported compromised: no new placements. "
        "Reason: recent: Jan Peeters' partner",  # within the period: untouched
    ]
    assert done.alerts == 1
    assert (await retention.purge(world.db, now=world.clock.now(), days=90)).alerts == 0


async def test_an_old_staff_links_label_goes(world: World) -> None:
    """A coordinator labels the night's link with who gets it ("Night: Sarah"): that name
    stayed for ever. After the period the label goes; the link's facility and dates stay."""
    from capacity import links
    from capacity.models import StaffLink

    await world.operator("Refuges", "shelter_operator")
    fac = await world.facility("Refuges", "Refuge A")
    admin = Actor(operator_id=None, role="admin", operator_kind="admin")
    for label in ("Night: Sarah Janssens", "Night: Amina"):
        if label != "Night: Sarah Janssens":
            world.clock.advance(days=80)
        await links.issue(
            world.db,
            fac.facility.id,
            label=label,
            hours=12,
            actor=admin,
            now=world.clock.now(),
            operator_scope=None,
        )
    world.clock.advance(days=11)  # the first expired 90.5 days ago, the second 10.5 days ago

    done = await retention.purge(world.db, now=world.clock.now(), days=90)
    async with world.db.read() as s:
        rows = (await s.execute(select(StaffLink.label, StaffLink.facility_id))).all()
    assert sorted(tuple(r) for r in rows) == [
        ("", fac.facility.id),
        ("Night: Amina", fac.facility.id),  # within the period: untouched
    ]
    assert done.staff_links == 1
    assert (await retention.purge(world.db, now=world.clock.now(), days=90)).staff_links == 0
