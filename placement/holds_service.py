"""The transactional shell around the hold rules (CONVENTIONS §3.1).

The pool row is the aggregate and the lock. A hold is granted by ONE conditional UPDATE of the
pool's ``units_held`` (``... WHERE total - occupied - held >= n``) in the same transaction as
the insert of the hold row: rowcount 0 means "no longer free". On PostgreSQL at READ COMMITTED
a blocked UPDATE re-checks its WHERE clause on the newest row, so concurrent holds can never
overbook; on SQLite every write transaction starts with BEGIN IMMEDIATE.

Lock order everywhere: hold rows first, then the pool row. Due holds of a pool are expired
inside every transaction that touches the pool (invariant 4), so an expired hold never blocks a
place even if the sweeper has not run. Audit rows, events (live streams) and outbox rows
(webhooks) are written in the same transaction as the change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.areas import areas
from capacity.audit import SYSTEM, Actor
from capacity.db import Database
from capacity.errors import NotFound
from capacity.metrics import HOLD_TRANSITIONS
from capacity.models import (
    Event,
    Facility,
    Hold,
    Operator,
    OutboxMessage,
    Pool,
    WebhookEndpoint,
)
from placement import holds as rules
from placement.errors import (
    BadReference,
    HoldExpired,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    NoLongerFree,
    NotAdmitting,
    NotEligible,
)
from placement.household import Household, SearchRequest
from placement.policy import policy_from_json
from placement.refcode import new_code, normalise
from placement.rules import evaluate

ADMITTING = frozenset({"open", "reduced"})
WEBHOOK_EVENTS = frozenset({"hold.declined", "hold.expired", "hold.no_show", "hold.arrived"})

Pause = Callable[[], Awaitable[None]]


def requester_kind_of(actor: Actor) -> str:
    """The requester kind used by access rules and hold durations."""
    if actor.role == "police":
        return "police"
    kind = actor.operator_kind or "helpline"
    return kind if kind in rules.DURATIONS else "helpline"


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()


@dataclass(frozen=True)
class HoldView:
    """A hold joined with what each audience may see of its place (never an address)."""

    id: int
    ref: str
    state: str
    units: int
    need: str
    household: dict[str, Any] | None
    callback: str | None
    created_at: datetime
    deadline: datetime
    extensions: int
    closed_at: datetime | None
    close_reason: str | None
    requester_operator_id: int
    requester_operator: str
    requester_kind: str
    facility_id: int
    facility_operator_id: int
    facility_ref: str
    facility_alias: str
    facility_kind: str
    secret_address: bool
    municipality_nis: str
    intake_phone: str
    handover_protocol: str
    pool_id: int
    pool_ref: str
    pool_label: str
    unit_kind: str

    def effective_state(self, now: datetime) -> str:
        """A held hold past its deadline is expired, even before the sweeper writes it."""
        return "expired" if rules.is_due(self.state, self.deadline, now) else self.state

    @property
    def coarse_area(self) -> tuple[str, str]:
        m = areas().municipality(self.municipality_nis)
        return (
            (m.province_nis, "province")
            if self.secret_address
            else (m.arrondissement_nis, "arrondissement")
        )


_VIEW_COLUMNS = (
    Hold.id,
    Hold.ref,
    Hold.state,
    Hold.units,
    Hold.need,
    Hold.household,
    Hold.callback,
    Hold.created_at,
    Hold.deadline,
    Hold.extensions,
    Hold.closed_at,
    Hold.close_reason,
    Hold.requester_operator_id,
    Operator.name,
    Hold.requester_kind,
    Hold.facility_id,
    Facility.operator_id,
    Facility.ref,
    Facility.alias,
    Facility.kind,
    Facility.secret_address,
    Facility.municipality_nis,
    Facility.intake_phone,
    Facility.handover_protocol,
    Hold.pool_id,
    Pool.ref,
    Pool.label,
    Pool.unit_kind,
)


def _view_query() -> Any:
    return (
        select(*_VIEW_COLUMNS)
        .join(Pool, Pool.id == Hold.pool_id)
        .join(Facility, Facility.id == Hold.facility_id)
        .join(Operator, Operator.id == Hold.requester_operator_id)
    )


def _to_view(row: Any) -> HoldView:
    return HoldView(*row)


async def load_view(s: AsyncSession, hold_id: int) -> HoldView:
    row = (await s.execute(_view_query().where(Hold.id == hold_id))).one()
    return _to_view(row)


def parse_ref(raw: str) -> str:
    ref = normalise(raw)
    if ref is None:
        raise BadReference(
            "This is not a valid hold reference (check the code: 8 symbols, e.g. KM4T-9RCX).",
            field="ref",
        )
    return ref


# --------------------------------------------------------------------------- side effects


async def _event(
    s: AsyncSession,
    *,
    kind: str,
    hold_id: int,
    ref: str,
    facility_id: int,
    requester_operator_id: int,
    now: datetime,
    state: str,
) -> None:
    await s.execute(
        insert(Event).values(
            at=now,
            kind=kind,
            facility_id=facility_id,
            operator_id=requester_operator_id,
            payload={"holdId": hold_id, "ref": ref, "state": state},
        )
    )
    if kind in WEBHOOK_EVENTS:
        has_hook = await s.scalar(
            select(WebhookEndpoint.operator_id).where(
                WebhookEndpoint.operator_id == requester_operator_id
            )
        )
        if has_hook is not None:
            await s.execute(
                insert(OutboxMessage).values(
                    operator_id=requester_operator_id,
                    event=kind,
                    payload={"event": kind, "ref": ref, "state": state, "at": now.isoformat()},
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )


async def expire_due_in_pool(
    s: AsyncSession, pool_id: int, now: datetime, actor: Actor = SYSTEM
) -> int:
    """Expire this pool's due holds inside the caller's transaction; return units freed.

    Idempotent: the ``state = 'held'`` predicate makes a second run (or a concurrent one that
    waited for the row locks) a no-op, so units are never given back twice.
    """
    rows = (
        await s.execute(
            update(Hold)
            .where(Hold.pool_id == pool_id, Hold.state == "held", Hold.deadline <= now)
            .values(state="expired", closed_at=now, close_reason="deadline passed")
            .returning(Hold.id, Hold.ref, Hold.units, Hold.facility_id, Hold.requester_operator_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not rows:
        return 0
    HOLD_TRANSITIONS.labels("expired").inc(len(rows))
    freed = sum(r.units for r in rows)
    await s.execute(
        update(Pool)
        .where(Pool.id == pool_id)
        .values(units_held=Pool.units_held - freed)
        .execution_options(synchronize_session=False)
    )
    for r in rows:
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="hold.expired",
            object_type="hold",
            object_id=r.ref,
            facility_id=r.facility_id,
            detail={"units": r.units, "poolId": pool_id},
        )
        await _event(
            s,
            kind="hold.expired",
            hold_id=r.id,
            ref=r.ref,
            facility_id=r.facility_id,
            requester_operator_id=r.requester_operator_id,
            now=now,
            state="expired",
        )
    return freed


# --------------------------------------------------------------------------- reserve


@dataclass(frozen=True)
class Reserved:
    view: HoldView
    created: bool  # False: an identical earlier request (same Idempotency-Key) is replayed


async def _replay(db: Database, operator_id: int, key: str, digest: str) -> HoldView | None:
    async with db.read() as s:
        row = (
            await s.execute(
                select(Hold.id, Hold.request_hash).where(
                    Hold.requester_operator_id == operator_id, Hold.idempotency_key == key
                )
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != digest:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different hold request; use a new "
                "key for a new request.",
                field="Idempotency-Key",
            )
        return await load_view(s, row.id)


async def reserve(
    db: Database,
    *,
    pool_ref: str,
    household: Household,
    need: str,
    minutes: int | None,
    callback: str | None,
    idempotency_key: str,
    actor: Actor,
    now: datetime,
    pause_between_check_and_write: Pause | None = None,
) -> Reserved:
    """Hold units of one pool for one household; replay an identical earlier request."""
    assert actor.operator_id is not None
    digest = request_hash(
        {
            "poolRef": pool_ref,
            "household": msgspec.to_builtins(household),
            "need": need,
            "minutes": minutes,
            "callback": callback,
        }
    )
    existing = await _replay(db, actor.operator_id, idempotency_key, digest)
    if existing is not None:
        return Reserved(existing, created=False)

    kind = requester_kind_of(actor)
    for _attempt in range(3):  # a new reference code on the (rare) collision
        ref = new_code()
        outcome: dict[str, Any] = {}
        try:
            async with db.write() as s:
                target = (
                    await s.execute(
                        select(
                            Pool.id,
                            Pool.unit_kind,
                            Pool.places_per_unit,
                            Facility.id,
                            Facility.status,
                            Facility.policy,
                            Facility.valid_from,
                            Facility.planned_end,
                        )
                        .join(Facility, Facility.id == Pool.facility_id)
                        .where(Pool.ref == pool_ref)
                    )
                ).first()
                if target is None:
                    raise NotFound(
                        "No such place (unknown option or pool reference).", field="poolRef"
                    )
                pool_id, unit_kind, places, facility_id, status, policy_json, v_from, p_end = target
                if status not in ADMITTING or (v_from and v_from > now) or (p_end and p_end <= now):
                    raise NotAdmitting(
                        "This place is not taking new placements right now.", status=status
                    )
                policy = policy_from_json(policy_json)
                failures = evaluate(
                    policy,
                    SearchRequest(household=household, need=need),  # type: ignore[arg-type]
                    requester_kind=kind,
                    now=now,
                )  # type: ignore[arg-type]
                if failures:
                    raise NotEligible(
                        failures[0].message,
                        errors=[{"field": f.code, "message": f.message} for f in failures],
                    )
                size = len(household.adults) + len(household.children)
                units = rules.units_needed(unit_kind, places, size, policy.beds_for_households)
                if units is None:
                    raise NotEligible(
                        f"A household of {size} does not fit in this pool ({unit_kind}, "
                        f"{places} place(s) per unit).",
                        errors=[{"field": "no_room", "message": "household does not fit"}],
                    )
                deadline = rules.deadline_for(
                    kind, minutes, facility_max_minutes=policy.max_hold_minutes, now=now
                )
                await expire_due_in_pool(s, pool_id, now)
                if pause_between_check_and_write is not None:
                    await pause_between_check_and_write()
                gate = await s.execute(
                    update(Pool)
                    .where(
                        Pool.id == pool_id,
                        Pool.units_total - Pool.units_occupied - Pool.units_held >= units,
                    )
                    .values(units_held=Pool.units_held + units)
                    .execution_options(synchronize_session=False)
                )
                if gate.rowcount == 0:
                    # Commit the expiries (they are real), then say "gone" with today's count.
                    row = (
                        await s.execute(
                            select(Pool.units_total - Pool.units_occupied - Pool.units_held).where(
                                Pool.id == pool_id
                            )
                        )
                    ).scalar_one()
                    outcome["gone"] = max(0, int(row))
                else:
                    res = await s.execute(
                        insert(Hold)
                        .values(
                            ref=ref,
                            pool_id=pool_id,
                            facility_id=facility_id,
                            requester_operator_id=actor.operator_id,
                            requester_token_id=actor.token_id,
                            requester_kind=kind,
                            units=units,
                            state="held",
                            household=msgspec.to_builtins(household),
                            segments=rules.segments(
                                undocumented=household.residence_status == "undocumented",
                                children=len(household.children),
                                no_income=household.income == "no",
                            ),
                            need=need,
                            callback=callback,
                            idempotency_key=idempotency_key,
                            request_hash=digest,
                            created_at=now,
                            deadline=deadline,
                            extensions=0,
                        )
                        .returning(Hold.id)
                    )
                    hold_id = res.scalar_one()
                    await audit.record(
                        s,
                        actor=actor,
                        at=now,
                        action="hold.created",
                        object_type="hold",
                        object_id=ref,
                        facility_id=facility_id,
                        detail={
                            "units": units,
                            "poolId": pool_id,
                            "deadline": deadline.isoformat(),
                            "need": need,
                        },
                    )
                    await _event(
                        s,
                        kind="hold.created",
                        hold_id=hold_id,
                        ref=ref,
                        facility_id=facility_id,
                        requester_operator_id=actor.operator_id,
                        now=now,
                        state="held",
                    )
                    outcome["view"] = await load_view(s, hold_id)
        except IntegrityError:
            # A twin with the same Idempotency-Key won (its transaction committed first), or
            # the reference code collided. Re-read: replay the twin, else retry a new code.
            twin = await _replay(db, actor.operator_id, idempotency_key, digest)
            if twin is not None:
                return Reserved(twin, created=False)
            continue
        if "gone" in outcome:
            raise NoLongerFree(
                f"No longer free: {outcome['gone']} unit(s) left, not enough for this household.",
                current={"unitsFree": outcome["gone"]},
            )
        return Reserved(outcome["view"], created=True)
    raise IdempotencyInFlight(
        "The same hold request is still being processed; retry shortly.", retry_after=1
    )


# --------------------------------------------------------------------------- transitions


async def _load_for_update(s: AsyncSession, ref: str) -> Any:
    return (
        await s.execute(
            select(
                Hold.id,
                Hold.state,
                Hold.deadline,
                Hold.units,
                Hold.pool_id,
                Hold.facility_id,
                Hold.requester_operator_id,
                Hold.requester_kind,
                Hold.extensions,
                Facility.operator_id.label("facility_operator_id"),
                Facility.policy,
            )
            .join(Facility, Facility.id == Hold.facility_id)
            .where(Hold.ref == ref)
        )
    ).first()


def _in_scope(row: Any, actor: Actor, side: str) -> bool:
    if actor.is_admin:
        return True
    if side == "requester":
        return row.requester_operator_id == actor.operator_id
    return row.facility_operator_id == actor.operator_id


async def transition(
    db: Database,
    raw_ref: str,
    target: str,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> HoldView:
    """Move a hold to ``target`` (released by its requester; arrived/no_show/declined/departed by
    the facility's staff). Other operators' holds answer 404, like unknown ones."""
    ref = parse_ref(raw_ref)
    side = "requester" if target in rules.REQUESTER_ACTIONS else "staff"
    expired_now = False
    async with db.write() as s:
        row = await _load_for_update(s, ref)
        if row is None or not _in_scope(row, actor, side):
            raise NotFound("No such hold.", field="ref")
        if rules.is_due(row.state, row.deadline, now):
            await expire_due_in_pool(s, row.pool_id, now)
            expired_now = True
        elif row.state == "expired":  # the same answer whether or not the sweeper ran
            expired_now = True
        else:
            rules.check_transition(row.state, target)
            source = "arrived" if target == "departed" else "held"
            values: dict[str, Any] = {"state": target}
            if target == "arrived":
                values["arrived_at"] = now
            elif target == "departed":
                values["departed_at"] = now
            else:
                values.update(closed_at=now, close_reason=reason)
            res = await s.execute(
                update(Hold)
                .where(Hold.id == row.id, Hold.state == source)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 0:  # someone else moved it first
                raise IllegalTransition("The hold changed meanwhile; reload it.")
            u = row.units
            pool_values: dict[str, Any]
            if target in ("released", "declined", "no_show"):
                pool_values = {"units_held": Pool.units_held - u}
            elif target == "arrived":
                pool_values = {
                    "units_held": Pool.units_held - u,
                    "units_occupied": Pool.units_occupied + u,
                    "version": Pool.version + 1,
                    "reported_at": now,
                }
            else:  # departed
                pool_values = {
                    "units_occupied": func.max(Pool.units_occupied - u, 0)
                    if db.sqlite
                    else func.greatest(Pool.units_occupied - u, 0),
                    "version": Pool.version + 1,
                    "reported_at": now,
                }
            await s.execute(
                update(Pool)
                .where(Pool.id == row.pool_id)
                .values(**pool_values)
                .execution_options(synchronize_session=False)
            )
            await audit.record(
                s,
                actor=actor,
                at=now,
                action=f"hold.{target}",
                object_type="hold",
                object_id=ref,
                facility_id=row.facility_id,
                detail={"units": u, "reason": reason, "from": row.state},
            )
            await _event(
                s,
                kind=f"hold.{target}",
                hold_id=row.id,
                ref=ref,
                facility_id=row.facility_id,
                requester_operator_id=row.requester_operator_id,
                now=now,
                state=target,
            )
            view = await load_view(s, row.id)
    if expired_now:
        raise HoldExpired("This hold has expired; its place was given back.", state="expired")
    HOLD_TRANSITIONS.labels(target).inc()
    return view


async def extend(
    db: Database, raw_ref: str, *, minutes: int | None, actor: Actor, now: datetime
) -> HoldView:
    ref = parse_ref(raw_ref)
    expired_now = False
    async with db.write() as s:
        row = await _load_for_update(s, ref)
        if row is None or not _in_scope(row, actor, "requester"):
            raise NotFound("No such hold.", field="ref")
        if rules.is_due(row.state, row.deadline, now):
            await expire_due_in_pool(s, row.pool_id, now)
            expired_now = True
        elif row.state == "expired":  # the same answer whether or not the sweeper ran
            expired_now = True
        else:
            if row.state != "held":
                raise IllegalTransition(f"Only a held hold can be extended (it is {row.state}).")
            new_deadline = rules.extended_deadline(
                requester_kind=row.requester_kind,
                current_deadline=row.deadline,
                extensions=row.extensions,
                minutes=minutes,
                facility_max_minutes=policy_from_json(row.policy).max_hold_minutes,
                now=now,
            )
            res = await s.execute(
                update(Hold)
                .where(Hold.id == row.id, Hold.state == "held", Hold.extensions == row.extensions)
                .values(deadline=new_deadline, extensions=row.extensions + 1)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 0:
                raise IllegalTransition("The hold changed meanwhile; reload it.")
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="hold.extended",
                object_type="hold",
                object_id=ref,
                facility_id=row.facility_id,
                detail={"deadline": new_deadline.isoformat(), "extension": row.extensions + 1},
            )
            await _event(
                s,
                kind="hold.extended",
                hold_id=row.id,
                ref=ref,
                facility_id=row.facility_id,
                requester_operator_id=row.requester_operator_id,
                now=now,
                state="held",
            )
            view = await load_view(s, row.id)
    if expired_now:
        raise HoldExpired("This hold has expired; its place was given back.", state="expired")
    return view


# --------------------------------------------------------------------------- reads, sweeper


async def get(db: Database, raw_ref: str, *, actor: Actor, side: str) -> HoldView:
    ref = parse_ref(raw_ref)
    async with db.read() as s:
        row = (await s.execute(_view_query().where(Hold.ref == ref))).first()
    if row is None:
        raise NotFound("No such hold.", field="ref")
    view = _to_view(row)
    owner = view.requester_operator_id if side == "requester" else view.facility_operator_id
    if not actor.is_admin and owner != actor.operator_id:
        raise NotFound("No such hold.", field="ref")
    return view


async def list_holds(
    db: Database,
    *,
    actor: Actor,
    side: str,
    states: list[str] | None = None,
    facility_id: int | None = None,
    limit: int = 200,
) -> list[HoldView]:
    q = _view_query()
    if not actor.is_admin:
        q = q.where(
            Hold.requester_operator_id == actor.operator_id
            if side == "requester"
            else Facility.operator_id == actor.operator_id
        )
    if states:
        q = q.where(Hold.state.in_(states))
    if facility_id is not None:
        q = q.where(Hold.facility_id == facility_id)
    async with db.read() as s:
        rows = (await s.execute(q.order_by(Hold.id.desc()).limit(limit))).all()
    return [_to_view(r) for r in rows]


async def expire_due_holds(db: Database, now: datetime) -> int:
    """The sweeper: expire due holds pool by pool, each pool in its own short transaction."""
    async with db.read() as s:
        pools = (
            await s.scalars(
                select(Hold.pool_id).where(Hold.state == "held", Hold.deadline <= now).distinct()
            )
        ).all()
    freed = 0
    for pool_id in pools:
        async with db.write() as s:
            freed += await expire_due_in_pool(s, pool_id, now)
    return freed


async def counters_agree(db: Database) -> list[tuple[int, int, int]]:
    """Pools whose ``units_held`` differs from their active holds: (pool id, counter, holds)."""
    async with db.read() as s:
        held = (
            select(Hold.pool_id, func.coalesce(func.sum(Hold.units), 0).label("n"))
            .where(Hold.state == "held")
            .group_by(Hold.pool_id)
            .subquery()
        )
        rows = (
            await s.execute(
                select(Pool.id, Pool.units_held, func.coalesce(held.c.n, 0)).outerjoin(
                    held, and_(held.c.pool_id == Pool.id)
                )
            )
        ).all()
    return [(r[0], r[1], int(r[2])) for r in rows if r[1] != int(r[2])]
