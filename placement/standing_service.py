"""Standing requests: "tell me as soon as a place that fits this household frees up".

A requester whose search found nothing leaves the search (household composition, need, areas
— no more than a search carries) with a deadline. Whenever places free up (a release, a
decline, a no-show, an expiry, a staff update; and every few seconds from the scheduler, which
also catches feeds), a **round** offers the freed places to the waiting requests **in the order
they were made**:

* for each waiting request, oldest first, the matcher ranks the places that now have room;
* the best one is **held for that requester** through the ordinary hold gate
  (``holds_service.reserve``), so no place is ever given twice, and a younger request can
  never overtake an older one by being faster on the phone;
* the request becomes ``offered`` (exactly once: a conditional update on ``state='waiting'``)
  and the requester is told: an event, the audit log, and a webhook when its operator has one.

The requester then has an ordinary hold with the default duration for its kind: it may extend
it, or release it, in which case the place goes to the next request in line. When the *place*
lets the offer down instead — it declines the hold (full after all, its location compromised)
or marks it no-show before the family got there — the request goes back to ``waiting`` in its
original position while its own deadline lasts (``holds_service._BACK_IN_LINE``, in the
decline's own transaction), with a ``standing.waiting`` webhook, and a place that declined it
is not offered to it again. That needs the search it waited with (the areas to avoid are in no
hold), so it is kept — no more than the waiting request kept — until the offer is settled: the
household arrives, the requester releases the hold, it expires, or the request's deadline has
passed when it ends; then it is dropped (``holds_service._OFFER_SETTLED``).

Rounds are single-flight across processes through a lease (``capacity.leases``). A crash
between the hold and the ``offered`` mark is repaired by the next round: the hold's
Idempotency-Key is derived from the standing request, so the round finds the same hold again
instead of making a second one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import exists, insert, null, select, update
from sqlalchemy.exc import IntegrityError

from capacity import audit, leases
from capacity.audit import Actor
from capacity.clock import utc_iso
from capacity.db import Database
from capacity.episode import EpisodeKey
from capacity.errors import NotFound
from capacity.models import (
    Event,
    Facility,
    Hold,
    OutboxMessage,
    Pool,
    StandingRequest,
    WebhookEndpoint,
)
from capacity.settings import Settings
from placement import holds_service
from placement.errors import (
    IdempotencyKeyReused,
    IllegalTransition,
    NoLongerFree,
    NotAdmitting,
    NotEligible,
)
from placement.holds_service import HoldView, parse_ref, request_hash, requester_kind_of
from placement.household import SearchRequest, validate_areas
from placement.matcher import MatcherIndex
from placement.refcode import new_code
from placement.search_service import load_snapshots

log = structlog.get_logger("abri.standing")

DEFAULT_MINUTES = 24 * 60
MAX_MINUTES = 72 * 60
LEASE = "standing-round"
STATES = ("waiting", "offered", "expired", "cancelled")
#: Standing events (``_notify``; ``standing.waiting``: ``holds_service._standing_back_in_line``).
EVENTS = ("standing.offered", "standing.waiting", "standing.expired")


def hold_key(standing_ref: str, offers: int = 0) -> str:
    """The Idempotency-Key of the hold made for a standing request (crash-safe rounds); one
    more ``offers`` (an offer that fell through on the place's side) makes a new one."""
    return f"standing:{standing_ref}" if offers == 0 else f"standing:{standing_ref}:{offers}"


def _requester(operator_id: int, requester_kind: str) -> Actor:
    """The requester on whose behalf a round holds a place (no token: the system acts)."""
    if requester_kind == "police":
        return Actor(operator_id=operator_id, role="police", operator_kind="police")
    return Actor(operator_id=operator_id, role="helpline", operator_kind=requester_kind)


@dataclass(frozen=True)
class StandingView:
    id: int
    ref: str
    state: str
    need: str
    callback: str | None
    created_at: datetime
    deadline: datetime
    notified_at: datetime | None
    closed_at: datetime | None
    requester_operator_id: int
    hold: HoldView | None  # the hold made when offered; once back in line, the one that ended
    # the household waiting, as its search gave it (composition only; gone once closed): the
    # console says whose each request is, an operator may wait for several at once
    household: dict[str, Any] | None = None

    @property
    def offered_hold(self) -> HoldView | None:
        """The place held for it, while it is offered."""
        return self.hold if self.state == "offered" else None

    @property
    def previous_hold(self) -> HoldView | None:
        """The hold of an offer the place declined or marked no-show (it is back in line)."""
        return self.hold if self.state != "offered" else None

    def effective_state(self, now: datetime) -> str:
        """A waiting request past its deadline is expired, before any round writes it."""
        return "expired" if self.state == "waiting" and self.deadline <= now else self.state


_COLUMNS = (
    StandingRequest.id,
    StandingRequest.ref,
    StandingRequest.state,
    StandingRequest.need,
    StandingRequest.callback,
    StandingRequest.created_at,
    StandingRequest.deadline,
    StandingRequest.notified_at,
    StandingRequest.closed_at,
    StandingRequest.requester_operator_id,
    StandingRequest.hold_id,
    StandingRequest.search,
)


async def _views(db: Database, rows: list[Any]) -> list[StandingView]:
    out = []
    for r in rows:
        hold = None
        if r.hold_id is not None:
            async with db.read() as s:
                hold = await holds_service.load_view(s, r.hold_id)
        household = (r.search or {}).get("household")
        out.append(StandingView(*r[:10], hold=hold, household=household))
    return out


# --------------------------------------------------------------------------- requester side


#: Where a waiting request's search keeps the hash of its ``episodeToken`` instead of it.
EPISODE_HASH = "#episodeHash"


@dataclass(frozen=True)
class Created:
    view: StandingView
    created: bool  # False: an identical earlier request (same Idempotency-Key) is replayed


async def create(
    db: Database,
    settings: Settings,
    *,
    request: SearchRequest,
    minutes: int | None,
    callback: str | None,
    idempotency_key: str | None,
    actor: Actor,
    now: datetime,
) -> Created:
    """Leave a standing request, then run a round at once (a place may already be free)."""
    assert actor.operator_id is not None
    validate_areas(request)  # unknown NIS codes: a clear 422 with the field
    search = msgspec.to_builtins(request)
    # what the release before the episode key stored (the token in clear; compared, never
    # stored): a retry spanning the upgrade replays its request rather than being refused
    previous = request_hash({"search": search, "minutes": minutes, "callback": callback})
    if request.episode_token is not None:
        # kept only as the hash its holds and searches keep (the token may be a case number),
        # in the search and in the request's digest alike
        token = search.pop("episodeToken")
        search[EPISODE_HASH] = holds_service.episode_hash(
            EpisodeKey.configured(settings), actor.operator_id, token
        )
    digest = request_hash({"search": search, "minutes": minutes, "callback": callback})
    if idempotency_key is not None:
        earlier = await _by_key(db, actor.operator_id, idempotency_key, digest, previous)
        if earlier is not None:
            return Created(earlier, created=False)
    deadline = now + timedelta(minutes=minutes or DEFAULT_MINUTES)
    for _attempt in range(3):  # a new reference code on the (rare) collision
        ref = new_code()
        try:
            async with db.write() as s:
                res = await s.execute(
                    insert(StandingRequest)
                    .values(
                        ref=ref,
                        requester_operator_id=actor.operator_id,
                        requester_kind=requester_kind_of(actor),
                        search=search,
                        need=request.need,
                        callback=callback,
                        state="waiting",
                        created_at=now,
                        deadline=deadline,
                        idempotency_key=idempotency_key,
                        request_hash=digest,
                    )
                    .returning(StandingRequest.id)
                )
                new_id = res.scalar_one()
                await audit.record(
                    s,
                    actor=actor,
                    at=now,
                    action="standing.created",
                    object_type="standing_request",
                    object_id=ref,
                    detail={"deadline": utc_iso(deadline), "need": request.need},
                )
            break
        except IntegrityError:
            if idempotency_key is not None:
                twin = await _by_key(db, actor.operator_id, idempotency_key, digest, previous)
                if twin is not None:
                    return Created(twin, created=False)
    else:  # pragma: no cover - three code collisions in a row
        raise RuntimeError("could not allocate a standing-request reference")
    await run_round(db, settings, now=now)
    return Created(await _get_by_id(db, new_id), created=True)


async def _by_key(
    db: Database, operator_id: int, key: str, digest: str, previous: str | None = None
) -> StandingView | None:
    async with db.read() as s:
        row = (
            await s.execute(
                select(*_COLUMNS, StandingRequest.request_hash).where(
                    StandingRequest.requester_operator_id == operator_id,
                    StandingRequest.idempotency_key == key,
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash not in (digest, previous):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different standing request; use a "
            "new key for a new request.",
            field="Idempotency-Key",
        )
    return (await _views(db, [row]))[0]


async def _get_by_id(db: Database, standing_id: int) -> StandingView:
    async with db.read() as s:
        row = (await s.execute(select(*_COLUMNS).where(StandingRequest.id == standing_id))).one()
    return (await _views(db, [row]))[0]


async def get(db: Database, raw_ref: str, *, actor: Actor) -> StandingView:
    """One of the caller's operator's standing requests; others answer 404, like unknown ones."""
    ref = parse_ref(raw_ref)
    async with db.read() as s:
        row = (await s.execute(select(*_COLUMNS).where(StandingRequest.ref == ref))).first()
    if row is None or (not actor.is_admin and row.requester_operator_id != actor.operator_id):
        raise NotFound("No such standing request.", field="ref")
    return (await _views(db, [row]))[0]


async def list_mine(
    db: Database, *, actor: Actor, states: list[str] | None = None, limit: int = 200
) -> list[StandingView]:
    q = select(*_COLUMNS)
    if not actor.is_admin:
        q = q.where(StandingRequest.requester_operator_id == actor.operator_id)
    if states:
        q = q.where(StandingRequest.state.in_(states))
    async with db.read() as s:
        rows = (await s.execute(q.order_by(StandingRequest.id.desc()).limit(limit))).all()
    return await _views(db, list(rows))


async def cancel(db: Database, raw_ref: str, *, actor: Actor, now: datetime) -> StandingView:
    """Withdraw a waiting request (its household data is dropped at once)."""
    view = await get(db, raw_ref, actor=actor)
    state = view.effective_state(now)
    if state != "waiting":
        hint = " Release its hold instead." if state == "offered" else ""
        raise IllegalTransition(f"This standing request is {state}; it cannot be cancelled.{hint}")
    async with db.write() as s:
        res = await s.execute(
            update(StandingRequest)
            .where(StandingRequest.id == view.id, StandingRequest.state == "waiting")
            .values(state="cancelled", search=null(), closed_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            raise IllegalTransition("The standing request changed meanwhile; reload it.")
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="standing.cancelled",
            object_type="standing_request",
            object_id=view.ref,
        )
    return await _get_by_id(db, view.id)


# --------------------------------------------------------------------------- rounds


async def _expire_waiting(db: Database, now: datetime) -> int:
    async with db.write() as s:
        rows = (
            await s.execute(
                update(StandingRequest)
                .where(StandingRequest.state == "waiting", StandingRequest.deadline <= now)
                .values(state="expired", search=null(), closed_at=now)
                .returning(StandingRequest.ref, StandingRequest.requester_operator_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for r in rows:
            await audit.record(
                s,
                actor=audit.SYSTEM,
                at=now,
                action="standing.expired",
                object_type="standing_request",
                object_id=r.ref,
            )
            await _notify(s, r.requester_operator_id, "standing.expired", r.ref, None, now)
    return len(rows)


async def _notify(
    s: Any, operator_id: int, kind: str, ref: str, hold_ref: str | None, now: datetime
) -> None:
    """An event for live views and, when the requester's operator has one, a webhook."""
    state = kind.removeprefix("standing.")
    payload = {
        "event": kind,
        "ref": ref,
        "state": state,
        "holdRef": hold_ref,
        "at": utc_iso(now),
    }
    await s.execute(
        insert(Event).values(
            at=now, kind=kind, facility_id=None, operator_id=operator_id, payload=payload
        )
    )
    hook = await s.scalar(
        select(WebhookEndpoint.operator_id).where(WebhookEndpoint.operator_id == operator_id)
    )
    if hook is not None:
        await s.execute(
            insert(OutboxMessage).values(
                operator_id=operator_id,
                event=kind,
                payload=payload,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )


async def waiting_exists(db: Database) -> bool:
    async with db.read() as s:
        return bool(await s.scalar(select(exists().where(StandingRequest.state == "waiting"))))


async def run_round(db: Database, settings: Settings, *, now: datetime) -> int:
    """Offer freed places to waiting requests, oldest first; return how many were offered.

    Single-flight: if another process is running a round, this one returns 0 at once (the
    scheduler's next round, a few seconds later, catches anything that round missed).
    """
    if not await waiting_exists(db):
        return 0
    if not await leases.acquire(db, LEASE, now=now, seconds=120):
        return 0
    try:
        return await _round(db, settings, now)
    finally:
        await leases.release(db, LEASE)


async def expire_and_offer(
    db: Database,
    settings: Settings,
    now: datetime,
    *,
    operator_id: int | None = None,
    facility_id: int | None = None,
    pool_id: int | None = None,
) -> int:
    """Expire the due holds in a scope (``holds_service.expire_due_holds``) and, when that
    freed places, offer them to the requests in line at once, as the sweeper does: a place
    freed by a staff read is otherwise free for whoever searches first (the sweeper, coming
    by later, finds nothing to expire and so offers nothing)."""
    freed = await holds_service.expire_due_holds(
        db, now, operator_id=operator_id, facility_id=facility_id, pool_id=pool_id
    )
    if freed and await waiting_exists(db):
        await run_round(db, settings, now=now)
    return freed


async def _round(db: Database, settings: Settings, now: datetime) -> int:
    await _expire_waiting(db, now)
    async with db.read() as s:
        waiting = (
            await s.execute(
                select(
                    StandingRequest.id,
                    StandingRequest.ref,
                    StandingRequest.requester_operator_id,
                    StandingRequest.requester_kind,
                    StandingRequest.search,
                    StandingRequest.callback,
                    StandingRequest.offers,
                    StandingRequest.offered_pool_id,
                )
                .where(StandingRequest.state == "waiting")
                .order_by(StandingRequest.created_at, StandingRequest.id)
            )
        ).all()
        if not waiting:
            return 0
        with_room = (
            await s.scalars(
                select(Pool.facility_id)
                .where(Pool.units_total - Pool.units_occupied - Pool.units_held > 0)
                .distinct()
            )
        ).all()
        facilities = await load_snapshots(s, settings, facility_ids=with_room)
        # back in line after a place declined it: that place is not offered to it again
        refused = dict(
            (
                await s.execute(
                    select(Pool.id, Facility.ref)
                    .join(Facility, Facility.id == Pool.facility_id)
                    .where(Pool.id.in_([w.offered_pool_id for w in waiting if w.offered_pool_id]))
                )
            ).all()
        )
    if not facilities:
        return 0
    index = MatcherIndex(facilities)
    offered = 0
    for w in waiting:
        stored = dict(w.search)
        episode = stored.pop(EPISODE_HASH, None)  # None: no token, or kept in clear (before)
        request = msgspec.convert(stored, SearchRequest)
        result = index.search(request, requester_kind=w.requester_kind, now=now)  # type: ignore[arg-type]
        actor = _requester(w.requester_operator_id, w.requester_kind)
        for option in result.options:
            if w.offered_pool_id is not None and refused.get(w.offered_pool_id) == (
                option.facility_ref
            ):
                continue
            try:
                reserved = await holds_service.reserve(
                    db,
                    pool_ref=option.pool_ref,
                    household=request.household,
                    need=request.need,
                    minutes=None,
                    callback=w.callback,
                    idempotency_key=hold_key(w.ref, w.offers),
                    actor=actor,
                    now=now,
                    episode_token=request.episode_token,  # one household, counted once
                    episode_digest=episode,
                    episode_key=(
                        EpisodeKey.configured(settings) if request.episode_token else None
                    ),
                )
                hold = reserved.view
                ours = not reserved.already_held  # else the household's own hold, kept
            except (NoLongerFree, NotAdmitting, NotEligible):
                continue  # taken meanwhile, or not for this household: the next best option
            except IdempotencyKeyReused:
                hold = await _earlier_hold(db, w.requester_operator_id, hold_key(w.ref, w.offers))
                if hold is None:
                    continue
                ours = True
            if await _mark_offered(db, w, hold, now):
                offered += 1
                log.info("standing_offered", standing_ref=w.ref, hold_ref=hold.ref)
            elif ours and hold.state == "held" and await _closed_without_offer(db, w.id):
                # Cancelled or expired meanwhile: give the place back to the next in line.
                with contextlib.suppress(IllegalTransition):
                    await holds_service.transition(
                        db,
                        hold.ref,
                        "released",
                        actor=actor,
                        now=now,
                        reason=STANDING_CLOSED_REASON,
                    )
            break
    return offered


#: Why a hold made for a waiting request that closed meanwhile was given back (Abri's words).
STANDING_CLOSED_REASON = "standing closed"


async def _closed_without_offer(db: Database, standing_id: int) -> bool:
    async with db.read() as s:
        state = await s.scalar(
            select(StandingRequest.state).where(StandingRequest.id == standing_id)
        )
    return state in ("cancelled", "expired")


async def _earlier_hold(db: Database, operator_id: int, key: str) -> HoldView | None:
    """The hold an interrupted earlier round made for this request (same derived key)."""
    async with db.read() as s:
        hold_id = await s.scalar(
            select(Hold.id).where(
                Hold.requester_operator_id == operator_id, Hold.idempotency_key == key
            )
        )
        return None if hold_id is None else await holds_service.load_view(s, hold_id)


async def _mark_offered(db: Database, w: Any, hold: HoldView, now: datetime) -> bool:
    """waiting → offered, exactly once. The search stays until the offer is settled (it may
    yet go back in line); the place it was declined at, if any, is forgotten."""
    async with db.write() as s:
        res = await s.execute(
            update(StandingRequest)
            .where(StandingRequest.id == w.id, StandingRequest.state == "waiting")
            .values(
                state="offered",
                hold_id=hold.id,
                offered_pool_id=hold.pool_id,
                offer_until=hold.deadline,
                notified_at=now,
                closed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            return False
        await audit.record(
            s,
            actor=audit.SYSTEM,
            at=now,
            action="standing.offered",
            object_type="standing_request",
            object_id=w.ref,
            facility_id=hold.facility_id,
            detail={"hold": hold.ref, "poolId": hold.pool_id},
        )
        await _notify(s, w.requester_operator_id, "standing.offered", w.ref, hold.ref, now)
    return True


__all__ = [
    "DEFAULT_MINUTES",
    "MAX_MINUTES",
    "STATES",
    "Created",
    "StandingView",
    "cancel",
    "create",
    "expire_and_offer",
    "get",
    "list_mine",
    "run_round",
]
