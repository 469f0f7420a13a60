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
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit, registry
from capacity.areas import areas
from capacity.audit import CLI, SYSTEM, Actor
from capacity.clock import utc_iso
from capacity.commands import StatusChange
from capacity.db import Database, RawTx, UniqueViolation
from capacity.episode import EpisodeKey, episode_hash, previous_episode_hash
from capacity.errors import AbriError, NotFound
from capacity.metrics import HOLD_TRANSITIONS
from capacity.models import PLACEMENT_KINDS, Facility, Hold, Operator, Pool, is_held
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
from placement.policy import AccessPolicy, policy_from_json
from placement.refcode import new_code, normalise
from placement.rules import (
    ADMISSION_LOOKAHEAD_MINUTES,
    admission_wait_minutes,
    evaluate,
)

ADMITTING = frozenset({"open", "reduced"})
#: Statuses a place may take after a hold was made there that leave the hold valid but are
#: shown to its requester (``HoldView.place_warning``): call before going.
PLACE_WARNINGS = frozenset({"closed_to_admissions", "suspended"})
WEBHOOK_EVENTS = frozenset({"hold.declined", "hold.expired", "hold.no_show", "hold.arrived"})
#: Why a hold ended without its requester, as a stable code in the webhook's ``reason``
#: (never the staff's own words, which may be sensitive); an arrival ends nothing: null.
REASON_DECLINED = "declined"
REASON_LOCATION_COMPROMISED = "location_compromised"
REASON_EXPIRED = "expired"
REASON_NO_SHOW = "no_show"
#: An admin gave back another operator's hold: its requester is told (``hold.released``), as
#: for a staff decline; a requester releasing its own hold is not (it did it).
REASON_RELEASED_BY_ADMIN = "released_by_admin"
#: Codes only the requester's own reads show (``closeCode``): no message is sent for them
#: (the requester released its own hold; a departure is the shelter's business).
REASON_RELEASED = "released"
REASON_DEPARTED = "departed"
#: The code a transition ends a hold with unless told otherwise (``_close_code``).
_ENDING_CODES = {
    "released": REASON_RELEASED,
    "declined": REASON_DECLINED,
    "no_show": REASON_NO_SHOW,
    "departed": REASON_DEPARTED,
}
#: Every code ``reason`` may carry (the OpenAPI document's list).
WEBHOOK_REASONS = (
    REASON_DECLINED,
    REASON_LOCATION_COMPROMISED,
    REASON_EXPIRED,
    REASON_NO_SHOW,
    REASON_RELEASED_BY_ADMIN,
)
#: Every code a hold's ``close_code`` (its requester's ``closeCode``) may carry: stored when
#: the hold ends, never the staff's own words.
CLOSE_CODES = (REASON_RELEASED, *WEBHOOK_REASONS, REASON_DEPARTED)
# transitions that give units back (a departure frees the occupied units the arrival took)
FREEING = frozenset({"released", "declined", "no_show", "departed"})

Pause = Callable[[], Awaitable[None]]


def requester_kind_of(actor: Actor) -> str:
    """The requester kind used by access rules and hold durations."""
    if actor.role == "police":
        return "police"
    kind = actor.operator_kind or "helpline"
    return kind if kind in rules.DURATIONS else "helpline"


def household_key(episode: str, need: str, household_json: Any) -> str:
    """What makes two hold requests the same household's (its episode, need and composition):
    a running hold per pool and key at most (``uq_holds_household_held``)."""
    canonical = msgspec.json.encode(household_json, order="sorted").decode()
    return hashlib.sha256(f"{episode}|{need}|{canonical}".encode()).hexdigest()


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
    intake_phone_24h: bool = True  # R21 (last: the SQL below appends it to its columns)
    #: when it was marked arrived (read by the lists, ``list_holds``; not by a transition's view)
    arrived_at: datetime | None = None
    #: when it was marked departed (read like ``arrived_at``)
    departed_at: datetime | None = None
    #: why it ended (``CLOSE_CODES``), as stored when it ended; read it with ``code``
    close_code: str | None = None
    #: the place's status when read (a new hold's: one that admits, ``ADMITTING``)
    facility_status: str = "open"

    @property
    def do_not_go(self) -> bool:
        """No one may be sent to, or call, this hold's place about it: the hold was declined
        because the location is compromised, or the place's location is compromised now (a
        household already in the house is moved by the shelter's own protocol). Its requester
        then gets no intake phone or handover protocol (``api.holds.schemas.hold_read``)."""
        return (
            self.close_code == REASON_LOCATION_COMPROMISED
            or self.facility_status == "location_compromised"
        )

    def place_warning(self, now: datetime) -> str | None:
        """The place's status when it has stopped admitting since this hold was made
        (``PLACE_WARNINGS``), while the hold is held: the hold stays valid (the place promised
        the bed; its staff may decline it) and can be extended, but its requester should call
        before going. None otherwise (a compromised place: ``do_not_go``)."""
        if self.facility_status in PLACE_WARNINGS and self.effective_state(now) == "held":
            return self.facility_status
        return None

    def effective_state(self, now: datetime) -> str:
        """A held hold past its deadline is expired, even before the sweeper writes it."""
        return "expired" if rules.is_due(self.state, self.deadline, now) else self.state

    def ended_at(self, now: datetime) -> datetime | None:
        """When the hold left ``held`` or ``arrived``; None while it is in one of them. An
        expiry ended it at its deadline, whenever the sweeper came by (it writes its own
        time in ``closed_at``)."""
        state = self.effective_state(now)
        if state in ("held", "arrived"):
            return None
        if state == "expired":
            return self.deadline
        if state == "departed":
            return self.departed_at
        return self.closed_at

    def code(self, now: datetime) -> str | None:
        """Why the hold ended (``CLOSE_CODES``); None while it is open (or for a hold that
        ended before the code was stored, when its cause could not be told: migration 0024).
        A held hold past its deadline is expired, before the sweeper writes it."""
        state = self.effective_state(now)
        if state in ("held", "arrived"):
            return None
        if state == "expired":
            return REASON_EXPIRED
        return self.close_code

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
    Facility.intake_phone_24h,
    Hold.arrived_at,
    Hold.departed_at,
    Hold.close_code,
    Facility.status,
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


def parse_ref(raw: str, *, field: str = "ref") -> str:
    """The canonical form of a reference code as typed or read out (``field``: the parameter
    it came in, named in the refusal)."""
    ref = normalise(raw)
    if ref is None:
        raise BadReference(
            "This is not a valid hold reference (check the code: 8 symbols, e.g. KM4T-9RC7).",
            field=field,
        )
    return ref


# --------------------------------------------------------------------------- side effects
#
# The write path runs on ``Database.raw_write``: plain SQL on the driver (asyncpg prepares each
# statement once per connection), the same text for SQLite and PostgreSQL. A hold costs one
# transaction of five statements: read the place, the gate, insert the hold, the audit row and
# the event. The ORM cost ~10x more CPU per hold than the database did (ops/bench/README.md).

_EVENT = (
    "INSERT INTO events (at, kind, facility_id, operator_id, payload) VALUES ($1, $2, $3, $4, $5)"
)
_HAS_HOOK = "SELECT 1 FROM webhook_endpoints WHERE operator_id = $1"
_OUTBOX = (
    "INSERT INTO outbox (operator_id, event, payload, created_at, attempts, next_attempt_at)"
    " VALUES ($1, $2, $3, $4, 0, $4)"
)


async def _event(
    tx: RawTx,
    *,
    kind: str,
    hold_id: int,
    ref: str,
    facility_id: int,
    requester_operator_id: int,
    now: datetime,
    state: str,
    reason: str | None = None,
    happened_at: datetime | None = None,
) -> None:
    """The live-stream event, and the requester's webhook (outbox) for the events it gets.
    ``reason``: the webhook's reason code, the code the hold ended with (``_close_code``;
    None for an arrival). ``happened_at``: the webhook's ``at`` when it is not ``now`` (an
    expiry: the hold's deadline)."""
    at = tx.ts(now)
    payload = {"holdId": hold_id, "ref": ref, "state": state}
    await tx.run(_EVENT, at, kind, facility_id, requester_operator_id, tx.json(payload))
    told = kind in WEBHOOK_EVENTS or reason == REASON_RELEASED_BY_ADMIN
    if told and await tx.one(_HAS_HOOK, requester_operator_id) is not None:
        message = {
            "event": kind,
            "ref": ref,
            "state": state,
            "reason": reason,
            "at": utc_iso(happened_at or now),
        }
        await tx.run(_OUTBOX, requester_operator_id, kind, tx.json(message), at)


#: Why an expired hold ended, in Abri's words (the web pages translate it).
EXPIRED_REASON = "deadline passed"
_EXPIRE = (
    f"UPDATE holds SET state = 'expired', closed_at = $2, close_reason = '{EXPIRED_REASON}',"
    f" close_code = '{REASON_EXPIRED}'"
    " WHERE pool_id = $1 AND state = 'held' AND deadline <= $2"
    " RETURNING id, ref, units, facility_id, requester_operator_id, deadline"
)
_GIVE_BACK = "UPDATE pools SET units_held = units_held - $2 WHERE id = $1"


async def expire_due_in_pool(tx: RawTx, pool_id: int, now: datetime, actor: Actor = SYSTEM) -> int:
    """Expire this pool's due holds inside the caller's transaction; return units freed.

    Idempotent: the ``state = 'held'`` predicate makes a second run (or a concurrent one that
    waited for the row locks) a no-op, so units are never given back twice.
    """
    rows = await tx.all(_EXPIRE, pool_id, tx.ts(now))
    if not rows:
        return 0
    HOLD_TRANSITIONS.labels("expired").inc(len(rows))
    freed = sum(r[2] for r in rows)
    await tx.run(_GIVE_BACK, pool_id, freed)
    for hold_id, ref, units, facility_id, requester_operator_id, deadline in rows:
        await tx.run(_OFFER_SETTLED, hold_id)  # the requester let it run out: offer settled
        await audit.record_raw(
            tx,
            actor=actor,
            at=now,
            action="hold.expired",
            object_type="hold",
            object_id=ref,
            facility_id=facility_id,
            detail={"units": units, "poolId": pool_id},
        )
        await _event(
            tx,
            kind="hold.expired",
            hold_id=hold_id,
            ref=ref,
            facility_id=facility_id,
            requester_operator_id=requester_operator_id,
            now=now,
            state="expired",
            reason=REASON_EXPIRED,  # as written by _EXPIRE
            happened_at=tx.read_ts(deadline),  # it expired then, whenever this sweep runs
        )
    return freed


# --------------------------------------------------------------------------- reserve


@dataclass(frozen=True)
class Reserved:
    view: HoldView
    created: bool  # False: an identical earlier request (same Idempotency-Key) is replayed
    #: the household (same episode token, composition and need) already holds this place: its
    #: hold, made with another Idempotency-Key, is returned instead of a second one
    already_held: bool = False


async def _replay(
    db: Database, operator_id: int, key: str, digest: str, previous: str | None = None
) -> HoldView | None:
    """The hold this Idempotency-Key made, if any; refused when its request was another.
    ``previous``: the same request's digest as the release before the episode key made it
    (its token in clear), so a retry spanning the upgrade replays rather than being refused."""
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
        if row.request_hash not in (digest, previous):
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different hold request; use a new "
                "key for a new request.",
                field="Idempotency-Key",
            )
        return await load_view(s, row.id)


# The place, everything a hold's view shows of it, whether due holds still block it, how many
# units are free, and whether this operator already used this Idempotency-Key (a replay never
# reaches the gate; a place already full is refused from this read).
_TARGET = (
    "SELECT p.id, p.unit_kind, p.places_per_unit, p.label, f.id, f.status, f.policy,"
    " f.valid_from, f.planned_end, f.operator_id, f.ref, f.alias, f.kind, f.secret_address,"
    " f.municipality_nis, f.intake_phone, f.handover_protocol,"
    " (SELECT name FROM operators WHERE id = $2),"
    " EXISTS (SELECT 1 FROM holds h WHERE h.pool_id = p.id AND h.state = 'held'"
    " AND h.deadline <= $3),"
    " p.units_total - p.units_occupied - p.units_held,"
    " EXISTS (SELECT 1 FROM holds k WHERE k.requester_operator_id = $2"
    " AND k.idempotency_key = $4), f.intake_phone_24h"
    " FROM pools p JOIN facilities f ON f.id = p.facility_id WHERE p.ref = $1"
)
# The gate (CONVENTIONS §3.1): one conditional UPDATE; 0 rows written = not free enough.
_GATE = (
    "UPDATE pools SET units_held = units_held + $2"
    " WHERE id = $1 AND units_total - units_occupied - units_held >= $2"
)
# A refused attempt: was the key used already (then replay, or refuse a different body), and
# how many units are free now — one round trip.
_REFUSED = (
    "SELECT EXISTS (SELECT 1 FROM holds WHERE requester_operator_id = $1"
    " AND idempotency_key = $2),"
    " (SELECT units_total - units_occupied - units_held FROM pools WHERE id = $3)"
)
_INSERT_HOLD = (
    "INSERT INTO holds (ref, pool_id, facility_id, requester_operator_id, requester_token_id,"
    " requester_kind, units, state, household, segments, need, callback, idempotency_key,"
    " request_hash, created_at, deadline, extensions, episode_hash, household_key)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'held', $8, $9, $10, $11, $12, $13, $14, $15, 0, $16,"
    " $17)"
    " RETURNING id"
)


# The hold, its audit row and its event, written by a PostgreSQL grant statement after its
# gate ``g`` (nothing when the gate wrote nothing). Parameters: $1-$15 those of _INSERT_HOLD,
# then $16 the actor's role, $17 the detail; the episode hash and the household key are the
# statement's last two parameters (``{episode}``, ``{hkey}``). Parameters are cast because one
# parameter feeds columns of different integer widths.
_PG_WRITES = (
    " h AS ("
    " INSERT INTO holds (ref, pool_id, facility_id, requester_operator_id, requester_token_id,"
    " requester_kind, units, state, household, segments, need, callback, idempotency_key,"
    " request_hash, created_at, deadline, extensions, episode_hash, household_key)"
    " SELECT $1::text, g.id, $3::bigint, $4::bigint, $5::int, $6::text, $7::int, 'held',"
    " $8::json, $9::json, $10::text, $11::text, $12::text, $13::text, $14::timestamp,"
    " $15::timestamp, 0, {episode}::text, {hkey}::text FROM g RETURNING id),"
    " a AS ("
    " INSERT INTO audit_log (at, actor_operator_id, actor_token_id, actor_role, action,"
    " object_type, object_id, facility_id, detail)"
    " SELECT $14::timestamp, $4::bigint, $5::int, $16::text, 'hold.created', 'hold',"
    " $1::text, $3::bigint, $17::json FROM h),"
    " e AS ("
    " INSERT INTO events (at, kind, facility_id, operator_id, payload)"
    " SELECT $14::timestamp, 'hold.created', $3::bigint, $4::bigint,"
    " json_build_object('holdId', h.id, 'ref', $1::text, 'state', 'held') FROM h)"
)
_ADMITTING_SQL = ", ".join(f"'{s}'" for s in sorted(ADMITTING))
# The gate (the same conditional UPDATE as ``_GATE``), opening a grant statement. It also
# re-reads the facility's status under a KEY SHARE lock: a status change (``set_status``
# locks the row FOR UPDATE) committed after this statement's snapshot, or still under way,
# is waited for and seen, so a hold decided from the place as open is never granted after
# the place was reported compromised and its held holds declined (``decline_held_at``).
# (The hold's foreign key takes the same lock anyway. SQLite: BEGIN IMMEDIATE serialises.)
_PG_GATE = (
    " g AS ("
    " UPDATE pools SET units_held = units_held + $7::int"
    " WHERE id = $2::bigint AND units_total - units_occupied - units_held >= $7::int{and_also}"
    " AND EXISTS (SELECT 1 FROM facilities fs WHERE fs.id = $3::bigint"
    f" AND fs.status IN ({_ADMITTING_SQL}) FOR KEY SHARE)"
    " RETURNING id),"
)

# PostgreSQL after a read of the place: the gate, the hold, its audit row and its event in ONE
# statement (atomic by itself; data-modifying CTEs). When the gate writes nothing, nothing
# else is written and no row comes back.
_PG_GRANT = (
    "WITH"
    + _PG_GATE.format(and_also="")
    + _PG_WRITES.format(episode="$18", hkey="$19")
    + " SELECT id FROM h"
)

# PostgreSQL, the one-round-trip hold (``_reserve_fast``): ``c`` re-checks, in the statement
# that grants, everything the hold was decided from (parameters $18-$22: the pool's unit kind
# and places per unit, the facility's rules as compact JSON, its kind, the pool reference; $23
# the episode hash, $24 the household key);
# the gate writes only when ``c.ok``; the rest is ``_PG_GRANT``'s. One row always comes back
# while the pool exists: ok, the free count the statement began with, the new hold's id (NULL:
# nothing written), then what the view shows of the place.
_PG_FAST = (
    "WITH c AS ("
    " SELECT p.units_total - p.units_occupied - p.units_held AS free,"
    " (p.facility_id = $3::bigint AND p.unit_kind = $18::text AND p.places_per_unit = $19::int"
    f" AND f.kind = $21::text AND f.status IN ({_ADMITTING_SQL})"
    " AND (f.valid_from IS NULL OR f.valid_from <= $14::timestamp)"
    " AND (f.planned_end IS NULL OR f.planned_end > $14::timestamp)"
    " AND f.policy::jsonb = $20::jsonb"
    " AND NOT EXISTS (SELECT 1 FROM holds d WHERE d.pool_id = p.id AND d.state = 'held'"
    " AND d.deadline <= $14::timestamp)"
    " AND NOT EXISTS (SELECT 1 FROM holds k WHERE k.requester_operator_id = $4::bigint"
    " AND k.idempotency_key = $12::text)) AS ok,"
    " (SELECT name FROM operators WHERE id = $4::bigint) AS operator, p.label,"
    " f.operator_id, f.ref, f.alias, f.secret_address, f.municipality_nis, f.intake_phone,"
    " f.handover_protocol, f.intake_phone_24h"
    " FROM pools p JOIN facilities f ON f.id = p.facility_id"
    " WHERE p.id = $2::bigint AND p.ref = $22::text),"
    + _PG_GATE.format(and_also=" AND (SELECT ok FROM c)")
    + _PG_WRITES.format(episode="$23", hkey="$24")
    + " SELECT c.ok, c.free, (SELECT id FROM h), c.operator, c.label, c.operator_id, c.ref,"
    " c.alias, c.secret_address, c.municipality_nis, c.intake_phone, c.handover_protocol,"
    " c.intake_phone_24h FROM c"
)


class _KeyTaken(Exception):
    """This Idempotency-Key already has a hold: replay it (or refuse a different body)."""


class _Reread(Exception):
    """The grant found the place changed since it was read (not its free units): decide
    again from a fresh read."""


class _Gone(Exception):
    def __init__(self, free: int) -> None:
        self.free = free


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
    episode_token: str | None = None,
    pause_between_check_and_write: Pause | None = None,
    episode_digest: str | None = None,
    episode_key: EpisodeKey | None = None,
) -> Reserved:
    """Hold units of one pool for one household; replay an identical earlier request.

    The place's read also tells whether this operator already used the Idempotency-Key (then
    the earlier hold is replayed, or a different body refused); a twin racing in between is
    caught by the unique constraint on (operator, key) — so a replay never takes a unit.
    ``episode_token`` (the requester's, as on a search) is kept only as a hash with the
    operator, so that the task force counts a household once however many holds it took;
    ``episode_digest`` is that hash already made (a standing request keeps only the hash);
    ``episode_key`` makes it from ``episode_token``.
    """
    assert actor.operator_id is not None
    household_json = msgspec.to_builtins(household)
    body = {
        "poolRef": pool_ref,
        "household": household_json,
        "need": need,
        "minutes": minutes,
        "callback": callback,
    }
    episode = (
        episode_digest
        if episode_token is None
        else episode_hash(episode_key, actor.operator_id, episode_token)
    )
    # What the release before the episode key stored for this request (compared, never
    # stored): a hold it made is replayed, not refused, by a retry spanning the upgrade.
    previous = (
        None if episode_token is None else request_hash({**body, "episodeToken": episode_token})
    )
    if episode is not None:  # absent: the same digest as before the field existed
        # its keyed hash, never the token: the digest is stored beside the household, need
        # and callback, and with the token in it a dump gave the case number back by trial
        body["episodeHash"] = episode
    digest = request_hash(body)
    hkey = None if episode is None else household_key(episode, need, household_json)
    if episode_token is not None:
        # A requester's system retrying at its own level (a new Idempotency-Key), or a page
        # sent again: this household already holds this place, and a second hold would take
        # a second unit for one household. Its hold, not a new one (the key still replays
        # its own request, or is refused for a different one).
        earlier = await held_for_household(
            db,
            actor=actor,
            pool_ref=pool_ref,
            household=household,
            need=need,
            episode_token=episode_token,
            now=now,
            episode_key=episode_key,
        )
        if earlier is not None:
            replayed = await _replay(db, actor.operator_id, idempotency_key, digest, previous)
            if replayed is not None:
                return Reserved(replayed, created=False)
            return Reserved(earlier, created=False, already_held=True)
    kind = requester_kind_of(actor)
    hints = None if db.sqlite or pause_between_check_and_write else _hints(db)
    for _attempt in range(3):  # a new reference code on the (rare) collision
        ask = _Ask(
            ref=new_code(),
            pool_ref=pool_ref,
            household=household,
            household_json=household_json,
            need=need,
            minutes=minutes,
            callback=callback,
            idempotency_key=idempotency_key,
            digest=digest,
            kind=kind,
            actor=actor,
            now=now,
            episode_hash=episode,
            household_key=hkey,
        )
        try:
            place = None if hints is None else hints.get(pool_ref)
            view = None if place is None else await _reserve_fast(db, ask, place)
            if view is None:
                view = await _reserve_once(db, ask, pause_between_check_and_write)
            return Reserved(view, created=True)
        except UniqueViolation:
            # A twin with the same Idempotency-Key won (its transaction committed first), or
            # the same household's hold under another key did (uq_holds_household_held), or
            # the reference code collided. Re-read: replay the twin, return the household's
            # hold, else retry a new code.
            twin = await _replay(db, actor.operator_id, idempotency_key, digest, previous)
            if twin is not None:
                return Reserved(twin, created=False)
            if hkey is not None:
                held = await _held_by_key(db, pool_ref, hkey, now=now)
                if held is not None:
                    return Reserved(held, created=False, already_held=True)
            continue
        except _Reread:
            continue
        except _Gone as gone:  # the key was checked in the same attempt: not a replay
            raise NoLongerFree(
                f"No longer free: {gone.free} unit(s) left, not enough for this household.",
                current={"unitsFree": gone.free},
            ) from None
        except (_KeyTaken, AbriError) as refused:
            earlier = await _replay(db, actor.operator_id, idempotency_key, digest, previous)
            if earlier is not None:
                return Reserved(earlier, created=False)
            if isinstance(refused, _KeyTaken):
                continue  # the earlier hold vanished meanwhile (purged): try again
            raise
    raise IdempotencyInFlight(
        "The same hold request is still being processed; retry shortly.", retry_after=1
    )


@dataclass(frozen=True, slots=True)
class _Place:
    """What a hold is decided from: the pool and its facility's rules, as last read."""

    pool_id: int
    pool_label: str
    unit_kind: str
    places: int
    facility_id: int
    kind: str
    status: str
    valid_from: datetime | None
    planned_end: datetime | None
    policy: AccessPolicy | None  # None: the stored rules do not parse (see ``rules``)
    policy_text: str  # the policy as read, compact JSON (compared again by the fast grant)

    def rules(self) -> AccessPolicy:
        """The access rules; stored rules that do not parse raise here, as they always did:
        only once admission is being decided (a replay or a closed place never needs them)."""
        return self.policy or policy_from_json(msgspec.json.decode(self.policy_text))

    def admitting(self, now: datetime) -> bool:
        return (
            self.status in ADMITTING
            and not (self.valid_from and self.valid_from > now)
            and not (self.planned_end and self.planned_end <= now)
        )


class _PlaceHints:
    """Per process and database: the place each pool reference was last read as, so that on
    PostgreSQL a hold is ONE round trip (``_PG_FAST``) instead of a read and then the grant.

    Only a hint: the fast statement checks again, inside the statement that grants, that
    every column the decision was made from still has the value it was made from (the rules
    themselves included), that no due hold waits to be expired and that the key is unused;
    otherwise it writes nothing and the hold takes the full path, which reads afresh (and
    refreshes the hint). A stale hint therefore costs a round trip, never a wrong grant."""

    MAX = 20_000

    def __init__(self) -> None:
        self._by_ref: dict[str, _Place] = {}

    def get(self, pool_ref: str) -> _Place | None:
        return self._by_ref.get(pool_ref)

    def put(self, pool_ref: str, place: _Place | None) -> None:
        if place is None:
            self._by_ref.pop(pool_ref, None)
            return
        if len(self._by_ref) >= self.MAX:
            self._by_ref.clear()
        self._by_ref[pool_ref] = place


_HINTS: weakref.WeakKeyDictionary[Database, _PlaceHints] = weakref.WeakKeyDictionary()


def _hints(db: Database) -> _PlaceHints:
    hints = _HINTS.get(db)
    if hints is None:
        hints = _HINTS[db] = _PlaceHints()
    return hints


def _opens_in(policy: AccessPolicy, now: datetime) -> int:
    """Minutes until the place's intake opens, when that is later today (0: open now); real
    minutes, also on the nights the clocks change (``admission_wait_minutes``)."""
    wait = admission_wait_minutes(policy.admission_hours, now)
    if wait is None or not 0 < wait <= ADMISSION_LOOKAHEAD_MINUTES:
        return 0
    return wait


def _decide(
    place: _Place,
    household: Household,
    need: str,
    minutes: int | None,
    kind: str,
    now: datetime,
) -> tuple[int, datetime]:
    """Units and deadline of a hold on this place, or the refusal (not admitting, not
    eligible, does not fit)."""
    if not place.admitting(now):
        raise NotAdmitting(
            "This place is not taking new placements right now.", status=place.status
        )
    policy = place.rules()
    failures = evaluate(
        policy,
        SearchRequest(household=household, need=need),  # type: ignore[arg-type]
        requester_kind=kind,  # type: ignore[arg-type]
        now=now,
    )
    if failures:
        raise NotEligible(
            failures[0].message,
            errors=[{"field": f.code, "message": f.message} for f in failures],
        )
    size = len(household.adults) + len(household.children)
    units = rules.units_needed(
        place.unit_kind, place.places, size, policy.beds_for_households, policy.rooms_for_households
    )
    if units is None:
        raise NotEligible(
            f"A household of {size} does not fit in this pool ({place.unit_kind}, "
            f"{place.places} place(s) per unit).",
            errors=[{"field": "no_room", "message": "household does not fit"}],
        )
    deadline = rules.deadline_for(
        kind,
        minutes,
        facility_max_minutes=policy.max_hold_minutes,
        now=now,
        opens_in=_opens_in(policy, now),
    )
    return units, deadline


@dataclass(frozen=True, slots=True)
class _Ask:
    """One hold request, as both paths write it."""

    ref: str
    pool_ref: str
    household: Household
    household_json: Any
    need: str
    minutes: int | None
    callback: str | None
    idempotency_key: str
    digest: str
    kind: str
    actor: Actor
    now: datetime
    episode_hash: str | None = None
    household_key: str | None = None

    def hold_values(
        self, tx: RawTx, place: _Place, units: int, deadline: datetime
    ) -> tuple[Any, ...]:
        household = self.household
        segments = rules.segments(
            undocumented=household.residence_status == "undocumented",
            children=len(household.children),
            no_income=household.income == "no",
        )
        return (
            self.ref,
            place.pool_id,
            place.facility_id,
            self.actor.operator_id,
            self.actor.token_id,
            self.kind,
            units,
            tx.json(self.household_json),
            tx.json(segments),
            self.need,
            self.callback,
            self.idempotency_key,
            self.digest,
            tx.ts(self.now),
            tx.ts(deadline),
        )

    def detail(self, place: _Place, units: int, deadline: datetime) -> dict[str, Any]:
        return {
            "units": units,
            "poolId": place.pool_id,
            "deadline": utc_iso(deadline),
            "need": self.need,
        }

    def view(
        self, hold_id: int, place: _Place, units: int, deadline: datetime, shown: Sequence[Any]
    ) -> HoldView:
        """The new hold's view; ``shown``: requester operator's name, the pool's label, the
        facility's operator, ref, alias, secret flag, municipality, intake phone, protocol."""
        assert self.actor.operator_id is not None
        return HoldView(
            id=hold_id,
            ref=self.ref,
            state="held",
            units=units,
            need=self.need,
            household=self.household_json,
            callback=self.callback,
            created_at=self.now,
            deadline=deadline,
            extensions=0,
            closed_at=None,
            close_reason=None,
            requester_operator_id=self.actor.operator_id,
            requester_operator=shown[0],
            requester_kind=self.kind,
            facility_id=place.facility_id,
            facility_operator_id=shown[2],
            facility_ref=shown[3],
            facility_alias=shown[4],
            facility_kind=place.kind,
            secret_address=bool(shown[5]),
            municipality_nis=shown[6],
            intake_phone=shown[7],
            handover_protocol=shown[8],
            intake_phone_24h=bool(shown[9]),
            pool_id=place.pool_id,
            pool_ref=self.pool_ref,
            pool_label=shown[1],
            unit_kind=place.unit_kind,
        )


def _parsed(policy_json: Any) -> AccessPolicy | None:
    try:
        return policy_from_json(policy_json)
    except msgspec.ValidationError:
        return None


def _place_of(tx: RawTx, target: Sequence[Any]) -> _Place:
    policy_json = tx.read_json(target[6])
    return _Place(
        pool_id=target[0],
        unit_kind=target[1],
        places=target[2],
        pool_label=target[3],
        facility_id=target[4],
        status=target[5],
        policy=_parsed(policy_json),
        policy_text=msgspec.json.encode(policy_json).decode(),
        valid_from=tx.read_ts(target[7]),
        planned_end=tx.read_ts(target[8]),
        kind=target[12],
    )


async def _reserve_fast(db: Database, ask: _Ask, place: _Place) -> HoldView | None:
    """PostgreSQL, a place read before: decide from that, then check and grant in ONE
    statement. None: something the decision was made from has changed (or a due hold waits
    to be expired, or the key was used before) — the full path decides afresh."""
    if place.kind not in PLACEMENT_KINDS or place.policy is None:
        return None
    try:
        units, deadline = _decide(place, ask.household, ask.need, ask.minutes, ask.kind, ask.now)
    except AbriError:
        return None  # a refusal is only ever given from a fresh read
    async with db.raw_write(transaction=False) as tx:
        row = await tx.one(
            _PG_FAST,
            *ask.hold_values(tx, place, units, deadline),
            ask.actor.role,
            tx.json(ask.detail(place, units, deadline)),
            place.unit_kind,
            place.places,
            place.policy_text,
            place.kind,
            ask.pool_ref,
            ask.episode_hash,
            ask.household_key,
        )
        if row is None or not row[0]:
            return None
        if row[2] is None:  # the gate refused
            free = int(row[1])
            if free < units:
                raise _Gone(max(0, free))
            # Free enough when the statement began, taken before its gate: today's count.
            refused = await tx.one(
                _REFUSED, ask.actor.operator_id, ask.idempotency_key, place.pool_id
            )
            assert refused is not None
            if refused[0]:
                raise _KeyTaken
            if int(refused[1] or 0) >= units:
                return None  # free enough: the status changed under way; decide afresh
            raise _Gone(max(0, int(refused[1] or 0)))
    return ask.view(int(row[2]), place, units, deadline, row[3:])


async def _reserve_once(db: Database, ask: _Ask, pause: Pause | None) -> HoldView:
    gone: int | None = None
    hold_id: int | None = None
    # PostgreSQL: no BEGIN/COMMIT — the read is a read, and the grant below is ONE statement
    # (gate, hold, audit, event), atomic on its own. SQLite: one BEGIN IMMEDIATE transaction.
    async with db.raw_write(transaction=db.sqlite) as tx:
        target = await tx.one(
            _TARGET, ask.pool_ref, ask.actor.operator_id, tx.ts(ask.now), ask.idempotency_key
        )
        place = None if target is None else _place_of(tx, target)
        if not tx.sqlite:
            _hints(db).put(ask.pool_ref, place)
        if target is None or place is None or place.kind not in PLACEMENT_KINDS:
            raise NotFound("No such place (unknown option or pool reference).", field="poolRef")
        if target[20]:
            raise _KeyTaken  # a replay (or a reused key): answered from the earlier hold
        units, deadline = _decide(place, ask.household, ask.need, ask.minutes, ask.kind, ask.now)
        if target[18]:
            # Due holds still counted as held: expire them first (invariant 4). Only when
            # there are some, and before the gate: hold rows, then the pool row, is the lock
            # order everywhere (a gate that waited keeps the pool row locked even when it
            # writes nothing, so expiring after it could deadlock).
            async with tx.atomic():
                await expire_due_in_pool(tx, place.pool_id, ask.now)
        elif target[19] < units:
            # Not free enough and nothing due to expire: the gate would refuse. Say so from
            # this read (committed; SQLite already holds the write lock): one round trip for
            # a refusal instead of three (read, gate, what is free now).
            raise _Gone(max(0, int(target[19])))
        if pause is not None:
            await pause()
        hold_values = ask.hold_values(tx, place, units, deadline)
        detail = ask.detail(place, units, deadline)
        if tx.sqlite:
            if await tx.run(_GATE, place.pool_id, units):
                row = await tx.one(_INSERT_HOLD, *hold_values, ask.episode_hash, ask.household_key)
                assert row is not None
                hold_id = int(row[0])
                await audit.record_raw(
                    tx,
                    actor=ask.actor,
                    at=ask.now,
                    action="hold.created",
                    object_type="hold",
                    object_id=ask.ref,
                    facility_id=place.facility_id,
                    detail=detail,
                )
                await _event(
                    tx,
                    kind="hold.created",
                    hold_id=hold_id,
                    ref=ask.ref,
                    facility_id=place.facility_id,
                    requester_operator_id=ask.actor.operator_id,
                    now=ask.now,
                    state="held",
                )
        else:
            row = await tx.one(
                _PG_GRANT,
                *hold_values,
                ask.actor.role,
                tx.json(detail),
                ask.episode_hash,
                ask.household_key,
            )
            hold_id = None if row is None else int(row[0])
        if hold_id is None:
            refused = await tx.one(
                _REFUSED, ask.actor.operator_id, ask.idempotency_key, place.pool_id
            )
            assert refused is not None
            if refused[0]:
                raise _KeyTaken  # roll back: a replay or a reused key changes nothing
            if not tx.sqlite and int(refused[1] or 0) >= units:
                raise _Reread  # free enough: the facility's status changed under way
            # Commit the expiries (they are real), then say "gone" with today's count.
            gone = max(0, int(refused[1] or 0))
    if gone is not None or hold_id is None:
        raise _Gone(gone or 0)
    shown = (target[17], place.pool_label, *target[9:12], *target[13:17], target[21])
    return ask.view(hold_id, place, units, deadline, shown)


# --------------------------------------------------------------------------- transitions

# The hold with everything its view needs, and whether any standing request is waiting (a
# freed place then goes to the oldest one: the caller runs a round only when one waits).
_LOAD = (
    "SELECT h.id, h.ref, h.state, h.units, h.need, h.household, h.callback, h.created_at,"
    " h.deadline, h.extensions, h.closed_at, h.close_reason, h.requester_operator_id, o.name,"
    " h.requester_kind, h.facility_id, f.operator_id, f.ref, f.alias, f.kind,"
    " f.secret_address, f.municipality_nis, f.intake_phone, f.handover_protocol, h.pool_id,"
    " p.ref, p.label, p.unit_kind, f.policy,"
    " EXISTS (SELECT 1 FROM standing_requests WHERE state = 'waiting'), f.intake_phone_24h,"
    " h.close_code, f.status"
    " FROM holds h JOIN pools p ON p.id = h.pool_id JOIN facilities f ON f.id = h.facility_id"
    " JOIN operators o ON o.id = h.requester_operator_id WHERE h.ref = $1"
)
_MOVE = {
    # target -> (UPDATE of the hold, UPDATE of its pool); $1 hold/pool id, $2 now, $3 units
    "released": (
        "UPDATE holds SET state = 'released', closed_at = $2, close_reason = $3, close_code = $4"
        " WHERE id = $1 AND state = 'held'",
        "UPDATE pools SET units_held = units_held - $2 WHERE id = $1",
    ),
    "declined": (
        "UPDATE holds SET state = 'declined', closed_at = $2, close_reason = $3, close_code = $4"
        " WHERE id = $1 AND state = 'held'",
        "UPDATE pools SET units_held = units_held - $2 WHERE id = $1",
    ),
    "no_show": (
        "UPDATE holds SET state = 'no_show', closed_at = $2, close_reason = $3, close_code = $4"
        " WHERE id = $1 AND state = 'held'",
        "UPDATE pools SET units_held = units_held - $2 WHERE id = $1",
    ),
    "arrived": (
        "UPDATE holds SET state = 'arrived', arrived_at = $2 WHERE id = $1 AND state = 'held'",
        "UPDATE pools SET units_held = units_held - $2, units_occupied = units_occupied + $2,"
        " version = version + 1, reported_at = $3 WHERE id = $1",
    ),
    "departed": (
        f"UPDATE holds SET state = 'departed', departed_at = $2, close_code = '{REASON_DEPARTED}'"
        " WHERE id = $1 AND state = 'arrived'",
        "UPDATE pools SET units_occupied = CASE WHEN units_occupied > $2"
        " THEN units_occupied - $2 ELSE 0 END, version = version + 1, reported_at = $3"
        " WHERE id = $1",
    ),
}
_CLOSING = frozenset({"released", "declined", "no_show"})
# A standing request offered this hold goes back in line, in its original position (its
# ``created_at``), when the place lets it down — a decline (full after all, the location
# compromised) or a no-show before the family could get there — while its own deadline lasts
# and its search is still there: $1 the hold, $2 now, $3 the pool not to offer it again (the
# one that declined it; NULL after a no-show). Each time, ``offers`` counts one more, so its
# next hold gets a new Idempotency-Key (``standing_service.hold_key``).
_BACK_IN_LINE = (
    "UPDATE standing_requests SET state = 'waiting', offers = offers + 1, offered_pool_id = $3,"
    " offer_until = NULL, closed_at = NULL"
    " WHERE hold_id = $1 AND state = 'offered' AND search IS NOT NULL AND deadline > $2"
    " RETURNING id, ref, requester_operator_id"
)
_BACK_TARGETS = frozenset({"declined", "no_show"})
# Any other end of an offered hold (released by the requester, arrived, expired; or a decline
# past the request's deadline) settles the offer: the search it waited with goes.
_OFFER_SETTLED = (
    "UPDATE standing_requests SET search = NULL"
    " WHERE hold_id = $1 AND state = 'offered' AND search IS NOT NULL"
)
# PostgreSQL: a release in ONE statement and one round trip — the hold row (only if it is
# held, not due, and the caller's), then the pool row (it reads the hold's output: the usual
# lock order), the audit row and the event; it answers the view's columns in ``_LOAD``'s
# order. No row: something is off (unknown, expired, already moved, not the caller's) and the
# general path finds out what, and answers accordingly.
_PG_RELEASE = (
    "WITH h AS ("
    " UPDATE holds SET state = 'released', closed_at = $2::timestamp, close_reason = $3::text,"
    f" close_code = '{REASON_RELEASED}'"
    " WHERE ref = $1::text AND state = 'held' AND deadline > $2::timestamp"
    " AND requester_operator_id = $4::bigint"
    " RETURNING *),"
    " p AS ("
    " UPDATE pools SET units_held = pools.units_held - h.units FROM h"
    " WHERE pools.id = h.pool_id),"
    " s AS ("
    " UPDATE standing_requests SET search = NULL FROM h"
    " WHERE standing_requests.hold_id = h.id AND standing_requests.state = 'offered'),"
    " a AS ("
    " INSERT INTO audit_log (at, actor_operator_id, actor_token_id, actor_role, action,"
    " object_type, object_id, facility_id, detail)"
    " SELECT $2::timestamp, $5::bigint, $6::int, $7::text, 'hold.released', 'hold', $1::text,"
    " h.facility_id, json_build_object('units', h.units, 'reason', $3::text, 'from', 'held')"
    " FROM h),"
    " e AS ("
    " INSERT INTO events (at, kind, facility_id, operator_id, payload)"
    " SELECT $2::timestamp, 'hold.released', h.facility_id, h.requester_operator_id,"
    " json_build_object('holdId', h.id, 'ref', h.ref, 'state', 'released') FROM h)"
    " SELECT h.id, h.ref, h.state, h.units, h.need, h.household, h.callback, h.created_at,"
    " h.deadline, h.extensions, h.closed_at, h.close_reason, h.requester_operator_id, o.name,"
    " h.requester_kind, h.facility_id, f.operator_id, f.ref, f.alias, f.kind,"
    " f.secret_address, f.municipality_nis, f.intake_phone, f.handover_protocol, h.pool_id,"
    " pl.ref, pl.label, pl.unit_kind, f.policy,"
    " EXISTS (SELECT 1 FROM standing_requests WHERE state = 'waiting'), f.intake_phone_24h,"
    " h.close_code, f.status"
    " FROM h JOIN pools pl ON pl.id = h.pool_id JOIN facilities f ON f.id = h.facility_id"
    " JOIN operators o ON o.id = h.requester_operator_id"
)
_EXTEND = (
    "UPDATE holds SET deadline = $2, extensions = $3 + 1"
    " WHERE id = $1 AND state = 'held' AND extensions = $3"
)


@dataclass(frozen=True)
class _Loaded:
    view: HoldView
    policy: Any
    someone_waiting: bool


async def _load(tx: RawTx, ref: str) -> _Loaded | None:
    row = await tx.one(_LOAD, ref)
    return None if row is None else _loaded(tx, row)


def _loaded(tx: RawTx, row: Sequence[Any]) -> _Loaded:
    r = list(row)
    r[5] = tx.read_json(r[5])
    for i in (7, 8, 10):
        r[i] = tx.read_ts(r[i])
    r[20] = bool(r[20])
    view = HoldView(*r[:28], intake_phone_24h=bool(r[30]), close_code=r[31], facility_status=r[32])
    return _Loaded(view, r[28], bool(r[29]))


async def _open(
    tx: RawTx, ref: str, actor: Actor, side: str, now: datetime
) -> tuple[_Loaded, bool]:
    """The hold, if the caller may act on it (else 404, like an unknown one), and whether it
    is expired — expiring it now if it is due, so the answer is the same whether or not the
    sweeper ran."""
    loaded = await _load(tx, ref)
    if loaded is None or not _in_scope(loaded.view, actor, side):
        raise NotFound("No such hold.", field="ref")
    old = loaded.view
    if rules.is_due(old.state, old.deadline, now):
        async with tx.atomic():
            await expire_due_in_pool(tx, old.pool_id, now)
        return loaded, True
    return loaded, old.state == "expired"


def _in_scope(view: HoldView, actor: Actor, side: str) -> bool:
    # SYSTEM: Abri's own jobs; CLI: an admin at the server's shell (`abri facility status`);
    # never a request's actor
    if actor.is_admin or actor is SYSTEM or actor is CLI:
        return True
    if side == "requester":
        return view.requester_operator_id == actor.operator_id
    return view.facility_operator_id == actor.operator_id


@dataclass(frozen=True)
class Transitioned:
    view: HoldView
    someone_waiting: bool  # a standing request waits: run a round for the freed place


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
    return (await transition_ex(db, raw_ref, target, actor=actor, now=now, reason=reason)).view


async def transition_ex(
    db: Database,
    raw_ref: str,
    target: str,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
    also_audit: Mapping[str, Any] | None = None,
    reason_code: str | None = None,
) -> Transitioned:
    """:func:`transition`, also telling whether a standing request is waiting for a place.
    ``also_audit``: one more audit entry (``audit.record_raw``'s keywords but ``actor`` and
    ``at``) written in the transition's own transaction, e.g. which one-time link did it.
    ``reason_code``: the code the hold ends with when not the transition's usual one
    (``_close_code``), e.g. ``location_compromised``."""
    ref = parse_ref(raw_ref)
    side = "requester" if target in rules.REQUESTER_ACTIONS else "staff"
    fast = also_audit is None and not db.sqlite
    # (not for an admin: releasing another operator's hold also tells that operator, below)
    if target == "released" and fast and not actor.is_admin and actor.operator_id is not None:
        async with db.raw_write(transaction=False) as tx:
            row = await tx.one(
                _PG_RELEASE,
                ref,
                tx.ts(now),
                reason,
                actor.operator_id,  # the requester's own hold (an admin's takes the full path)
                actor.operator_id,
                actor.token_id,
                actor.role,
            )
        if row is not None:
            done = _loaded(tx, row)
            HOLD_TRANSITIONS.labels(target).inc()
            return Transitioned(done.view, done.someone_waiting)
    # PostgreSQL: the read is a read; the moves are grouped with ``atomic()``. SQLite: one
    # BEGIN IMMEDIATE transaction for all of it.
    async with db.raw_write(transaction=db.sqlite) as tx:
        loaded, expired_now = await _open(tx, ref, actor, side, now)
        old = loaded.view
        code = _close_code(old, target, actor, reason_code)
        back_in_line = False
        if not expired_now:
            rules.check_transition(old.state, target)
            back_in_line = await _move(
                tx,
                old,
                target,
                actor=actor,
                now=now,
                reason=reason,
                also=also_audit,
                reason_code=code,
            )
    if expired_now:
        raise HoldExpired("This hold has expired; its place was given back.", state="expired")
    HOLD_TRANSITIONS.labels(target).inc()
    closing = target in _CLOSING
    view = replace(
        old,
        state=target,
        closed_at=now if closing else old.closed_at,
        close_reason=reason if closing else old.close_reason,
        close_code=code,
    )
    return Transitioned(view, (loaded.someone_waiting or back_in_line) and target in FREEING)


#: The reason a hold is declined with when its place reports its location compromised: what
#: the requester reads (the hold's page, the webhook), so no more than they need to act on.
COMPROMISED_REASON = (
    "The place can no longer take anyone, for safety reasons: do not go there. Search again "
    "and hold another place."
)


async def decline_held_at(
    db: Database, facility_id: int, *, actor: Actor, now: datetime
) -> list[HoldView]:
    """Decline the holds still held at a facility whose location was just reported compromised
    (``COMPROMISED_REASON``): the households on their way must not be brought there, and each
    requester is told at once as for any decline (the hold's page, the webhook, the staff's
    stream), audited as the actor's. Households already in the house (``arrived``) stay: the
    shelter moves them by its own protocol. A hold that changed or ran out meanwhile is left
    as it is."""
    async with db.read() as s:
        refs = list(
            await s.scalars(
                select(Hold.ref).where(Hold.facility_id == facility_id, is_held()).order_by(Hold.id)
            )
        )
    declined = []
    for ref in refs:
        try:
            done = await transition_ex(
                db,
                ref,
                "declined",
                actor=actor,
                now=now,
                reason=COMPROMISED_REASON,
                reason_code=REASON_LOCATION_COMPROMISED,
            )
        except (IllegalTransition, NotFound):  # moved or expired meanwhile (HoldExpired too)
            continue
        declined.append(done.view)
    return declined


async def decline_held_at_compromised(db: Database, *, now: datetime) -> int:
    """Decline the holds still held at facilities whose location is compromised, as Abri's
    (the expiry job). The status change and its declines (``set_facility_status``) are two
    transactions: a process that died between them left households on their way there.
    (No hold is granted there after the change: the grant re-reads the status.)"""
    async with db.read() as s:
        ids = list(
            await s.scalars(
                select(Hold.facility_id)
                .join(Facility, Facility.id == Hold.facility_id)
                .where(is_held(), Facility.status == "location_compromised")
                .distinct()
            )
        )
    declined = 0
    for facility_id in ids:
        declined += len(await decline_held_at(db, facility_id, actor=SYSTEM, now=now))
    return declined


async def set_facility_status(
    db: Database,
    facility_id: int,
    cmd: StatusChange,
    *,
    actor: Actor,
    now: datetime,
    operator_scope: int | None = None,
    refuse_from: Collection[str] = (),
    also_audit: Mapping[str, Any] | None = None,
    lift: bool = False,
) -> registry.FacilityView:
    """Set a facility's status (``registry.set_status``: scoped, audited, an alert for a
    compromised location) and, when its location is compromised, decline the holds still held
    there (``decline_held_at``). The one path of the API's staff and admin routes, of the
    staff page and of the night worker's link page, so a report made from a phone does what one
    made through the API does. ``also_audit``, ``lift``: as ``registry.set_status``'s."""
    view = await registry.set_status(
        db,
        facility_id,
        cmd,
        actor=actor,
        now=now,
        operator_scope=operator_scope,
        refuse_from=refuse_from,
        also_audit=also_audit,
        lift=lift,
    )
    if view.facility.status == "location_compromised":  # no household may be brought there
        await decline_held_at(db, facility_id, actor=actor, now=now)
    return view


def _close_code(old: HoldView, target: str, actor: Actor, given: str | None) -> str | None:
    """The code a transition to ``target`` ends the hold with (None: it does not end it):
    ``given`` (e.g. ``location_compromised``), else ``released_by_admin`` for an admin giving
    back another operator's hold, else the target's own (``_ENDING_CODES``)."""
    if target not in _ENDING_CODES:
        return None
    if given is not None:
        return given
    if target == "released" and actor.is_admin and actor.operator_id != old.requester_operator_id:
        return REASON_RELEASED_BY_ADMIN
    return _ENDING_CODES[target]


async def _move(
    tx: RawTx,
    old: HoldView,
    target: str,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None,
    also: Mapping[str, Any] | None = None,
    reason_code: str | None = None,
) -> bool:
    """A legal transition as a few statements in one transaction (hold row, then pool row).
    ``reason_code``: the code it ends the hold with (``_close_code``), stored and sent as the
    webhook's ``reason``. True when a standing request offered this hold went back in line
    (``_BACK_IN_LINE``), in the same transaction, so no round sees the hold ended and the
    request still offered, or the other way round."""
    ref = old.ref
    back_in_line = False
    async with tx.atomic():
        hold_sql, pool_sql = _MOVE[target]
        if target in _CLOSING:
            moved = await tx.run(hold_sql, old.id, tx.ts(now), reason, reason_code)
        else:
            moved = await tx.run(hold_sql, old.id, tx.ts(now))
        if moved == 0:  # someone else moved it first: say where it is now
            row = await tx.one("SELECT state FROM holds WHERE id = $1", old.id)
            raise IllegalTransition(
                "The hold changed meanwhile; reload it.", state=row[0] if row else None
            )
        if target in _CLOSING:
            await tx.run(pool_sql, old.pool_id, old.units)
        else:
            await tx.run(pool_sql, old.pool_id, old.units, tx.ts(now))
        await audit.record_raw(
            tx,
            actor=actor,
            at=now,
            action=f"hold.{target}",
            object_type="hold",
            object_id=ref,
            facility_id=old.facility_id,
            detail={"units": old.units, "reason": reason, "from": old.state},
        )
        if also is not None:
            await audit.record_raw(tx, actor=actor, at=now, **also)
        await _event(
            tx,
            kind=f"hold.{target}",
            hold_id=old.id,
            ref=ref,
            facility_id=old.facility_id,
            requester_operator_id=old.requester_operator_id,
            now=now,
            state=target,
            reason=reason_code,
        )
        if target in _BACK_TARGETS:
            back_in_line = await _standing_back_in_line(tx, old, target, now, reason_code)
        if target != "departed" and not back_in_line:
            await tx.run(_OFFER_SETTLED, old.id)
    return back_in_line


async def _standing_back_in_line(
    tx: RawTx, old: HoldView, target: str, now: datetime, code: str | None
) -> bool:
    """Put the standing request this hold was offered to (if any) back in line, audited, and
    tell its requester: an event and, when its operator has one, a ``standing.waiting``
    webhook naming the ended hold and why it ended (no household data)."""
    refused = old.pool_id if target == "declined" else None
    row = await tx.one(_BACK_IN_LINE, old.id, tx.ts(now), refused)
    if row is None:
        return False
    standing_ref, operator_id = row[1], row[2]
    await audit.record_raw(
        tx,
        actor=SYSTEM,
        at=now,
        action="standing.waiting",
        object_type="standing_request",
        object_id=standing_ref,
        facility_id=old.facility_id,
        detail={"hold": old.ref, "reason": code},
    )
    at = tx.ts(now)
    payload = {
        "event": "standing.waiting",
        "ref": standing_ref,
        "state": "waiting",
        "holdRef": old.ref,
        "reason": code,
        "at": utc_iso(now),
    }
    await tx.run(_EVENT, at, "standing.waiting", None, operator_id, tx.json(payload))
    if await tx.one(_HAS_HOOK, operator_id) is not None:
        await tx.run(_OUTBOX, operator_id, "standing.waiting", tx.json(payload), at)
    return True


async def extend(
    db: Database, raw_ref: str, *, minutes: int | None, actor: Actor, now: datetime
) -> HoldView:
    ref = parse_ref(raw_ref)
    async with db.raw_write() as tx:
        loaded, expired_now = await _open(tx, ref, actor, "requester", now)
        old = loaded.view
        if not expired_now:
            if old.state != "held":
                raise IllegalTransition(
                    f"Only a held hold can be extended (it is {old.state}).", state=old.state
                )
            if old.do_not_go:  # reported compromised, its declines not yet written
                raise NotAdmitting(COMPROMISED_REASON, state=old.state)
            policy = policy_from_json(tx.read_json(loaded.policy))
            new_deadline = rules.extended_deadline(
                requester_kind=old.requester_kind,
                current_deadline=old.deadline,
                extensions=old.extensions,
                minutes=minutes,
                facility_max_minutes=policy.max_hold_minutes,
                now=now,
                opens_in=_opens_in(policy, now),
            )
            if await tx.run(_EXTEND, old.id, tx.ts(new_deadline), old.extensions) == 0:
                raise IllegalTransition("The hold changed meanwhile; reload it.")
            await audit.record_raw(
                tx,
                actor=actor,
                at=now,
                action="hold.extended",
                object_type="hold",
                object_id=ref,
                facility_id=old.facility_id,
                detail={"deadline": utc_iso(new_deadline), "extension": old.extensions + 1},
            )
            await _event(
                tx,
                kind="hold.extended",
                hold_id=old.id,
                ref=ref,
                facility_id=old.facility_id,
                requester_operator_id=old.requester_operator_id,
                now=now,
                state="held",
            )
    if expired_now:
        raise HoldExpired("This hold has expired; its place was given back.", state="expired")
    return replace(old, deadline=new_deadline, extensions=old.extensions + 1)


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


async def held_for_household(
    db: Database,
    *,
    actor: Actor,
    pool_ref: str,
    household: Household,
    need: str,
    episode_token: str,
    now: datetime,
    episode_key: EpisodeKey | None,
) -> HoldView | None:
    """This operator's hold still running at this pool for the same household (its episode
    token, composition and need), if any: the console's results page, sent again from the
    browser's history, carries new hold forms, a requester's system may retry with a new
    Idempotency-Key, and holding the place again would take a second unit for one
    household."""
    assert actor.operator_id is not None
    household_json = msgspec.to_builtins(household)
    episode = episode_hash(episode_key, actor.operator_id, episode_token)
    # and the key of a hold made before the upgrade to the episode key (a plain SHA-256)
    previous = previous_episode_hash(actor.operator_id, episode_token)
    keys = [household_key(e, need, household_json) for e in (episode, previous)]
    return await _held_by_key(db, pool_ref, *keys, now=now)


async def _held_by_key(db: Database, pool_ref: str, *keys: str, now: datetime) -> HoldView | None:
    """The running hold at this pool with one of these household keys
    (``uq_holds_household_held``: one at most each), unless its deadline has passed."""
    q = _view_query().where(
        Hold.household_key.in_(keys), is_held(), Hold.deadline > now, Pool.ref == pool_ref
    )
    async with db.read() as s:
        row = (await s.execute(q)).first()
    return None if row is None else _to_view(row)


async def list_holds(
    db: Database,
    *,
    actor: Actor,
    side: str,
    states: list[str] | None = None,
    facility_id: int | None = None,
    limit: int | None = 200,
    before_id: int | None = None,
    now: datetime | None = None,
    hold_id: int | None = None,
) -> list[HoldView]:
    """Newest first, at most ``limit`` (None: all); ``before_id``: only holds older than that
    one (the next page). ``now``: ``states`` filter by the state each hold is shown in at that
    moment (a held hold past its deadline is expired, before the sweeper writes it);
    ``hold_id``: that hold alone, if it matches the other filters (a hold picked from a page,
    which may be older than the newest ``limit``)."""
    q = _view_query()
    if not actor.is_admin:
        q = q.where(
            Hold.requester_operator_id == actor.operator_id
            if side == "requester"
            else Facility.operator_id == actor.operator_id
        )
    if states and now is not None:
        due = and_(Hold.state == "held", Hold.deadline <= now)
        shown = [Hold.state.in_(set(states) - {"held"})]
        if "held" in states:
            shown.append(and_(Hold.state == "held", Hold.deadline > now))
        if "expired" in states:
            shown.append(due)
        q = q.where(or_(*shown))
    elif states:
        q = q.where(Hold.state.in_(states))
    if facility_id is not None:
        q = q.where(Hold.facility_id == facility_id)
    if before_id is not None:
        q = q.where(Hold.id < before_id)
    if hold_id is not None:
        q = q.where(Hold.id == hold_id)
    async with db.read() as s:
        rows = (await s.execute(q.order_by(Hold.id.desc()).limit(limit))).all()
    return [_to_view(r) for r in rows]


async def expire_due_holds(
    db: Database,
    now: datetime,
    *,
    operator_id: int | None = None,
    facility_id: int | None = None,
    pool_id: int | None = None,
) -> int:
    """The sweeper: expire due holds pool by pool, each pool in its own short transaction.

    With a scope (an operator's facilities, one facility, one pool), only there: what staff
    read runs it first, so that a hold past its deadline no longer counts as held on their
    page before the sweeper has come by (a search made then agrees), and they are told at once
    (``hold.expired``). Cheap when nothing is due (the partial index on held deadlines)."""
    q = select(Hold.pool_id).where(is_held(), Hold.deadline <= now)
    if operator_id is not None:
        q = q.where(
            Hold.facility_id.in_(select(Facility.id).where(Facility.operator_id == operator_id))
        )
    if facility_id is not None:
        q = q.where(Hold.facility_id == facility_id)
    if pool_id is not None:
        q = q.where(Hold.pool_id == pool_id)
    async with db.read() as s:
        pools = (await s.scalars(q.distinct())).all()
    freed = 0
    for pool_id in pools:
        async with db.raw_write() as tx:
            freed += await expire_due_in_pool(tx, pool_id, now)
    return freed


async def next_deadline(db: Database) -> datetime | None:
    """The earliest deadline of a hold still held (the partial index on held deadlines)."""
    async with db.read() as s:
        found = await s.scalar(select(func.min(Hold.deadline)).where(is_held()))
    return RawTx.read_ts(found)


async def counters_agree(db: Database) -> list[tuple[int, int, int]]:
    """Pools whose ``units_held`` differs from their active holds: (pool id, counter, holds)."""
    async with db.read() as s:
        held = (
            select(Hold.pool_id, func.coalesce(func.sum(Hold.units), 0).label("n"))
            .where(is_held())
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
