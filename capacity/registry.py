"""Operators, tokens, facilities, pools and addresses: the admin side of capacity.

Every command is one transaction (``db.write()``) that also writes its audit rows.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit, health_rules
from capacity.areas import Municipality, areas, local_name
from capacity.audit import Actor
from capacity.clock import utc_iso
from capacity.commands import (
    CLEARABLE_FACILITY_FIELDS,
    UNTIL_IN_PAST,
    FacilityCreate,
    FacilityUpdate,
    PoolCreate,
    PoolUpdate,
    StatusChange,
    check_future,
    check_instant,
)
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.errors import (
    AbriError,
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    UnknownArea,
)
from capacity.models import (
    Alert,
    AvailabilityReport,
    Facility,
    FacilityAddress,
    Operator,
    Pool,
    StaffLink,
    Token,
)
from capacity.phones import fixed_line_zone
from capacity.retention import ALERT_REASON
from capacity.templates import TEMPLATES
from placement.policy import AccessPolicy, apply_patch, policy_from_json, policy_to_json

#: Which operator kinds may hold a token of which role.
ROLE_KINDS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "staff": frozenset({"shelter_operator", "cpas", "hotel_partner", "caw"}),
    # the requester role (search, hold): its holds carry the operator's kind (police aside)
    "helpline": frozenset(
        {"helpline", "cpas", "shelter_operator", "caw", "fjc", "sac", "prosecutor"}
    ),
    "police": frozenset({"police"}),
    "taskforce": frozenset({"taskforce"}),
}

TOKEN_PREFIX = "abri_"


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


# --------------------------------------------------------------------------- operators


async def create_operator(
    db: Database,
    *,
    name: str,
    kind: str,
    actor: Actor,
    now: datetime,
    home_municipality_nis: str | None = None,
) -> Operator:
    name = name.strip()
    home = _home(home_municipality_nis)
    async with db.write() as s:
        if await s.scalar(select(Operator.id).where(Operator.name == name)) is not None:
            raise AlreadyExists(f"An operator named {name!r} exists already.", field="name")
        op = Operator(name=name, kind=kind, created_at=now, home_municipality_nis=home)
        s.add(op)
        await s.flush()
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="operator.create",
            object_type="operator",
            object_id=op.id,
            detail={"name": name, "kind": kind, "homeMunicipalityNis": home},
        )
    return op


def _home(nis: str | None) -> str | None:
    if nis is None:
        return None
    try:
        return areas().canonical_municipality(nis)
    except UnknownArea:
        raise UnknownArea(
            f"{nis!r} is not a Belgian municipality NIS code (2025 list).",
            field="homeMunicipalityNis",
        ) from None


async def set_operator_home(
    db: Database,
    operator_id: int,
    home_municipality_nis: str | None,
    *,
    actor: Actor,
    now: datetime,
) -> Operator:
    home = _home(home_municipality_nis)
    async with db.write() as s:
        op = await s.get(Operator, operator_id)
        if op is None:
            raise NotFound("No such operator.")
        op.home_municipality_nis = home
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="operator.update",
            object_type="operator",
            object_id=op.id,
            detail={"homeMunicipalityNis": home},
        )
    return op


async def operator_home(db: Database, operator_id: int | None) -> str | None:
    """A requester operator's home municipality, if it has one."""
    if operator_id is None:
        return None
    async with db.read() as s:
        return await s.scalar(
            select(Operator.home_municipality_nis).where(Operator.id == operator_id)
        )


async def list_operators(db: Database) -> list[Operator]:
    async with db.read() as s:
        return list((await s.scalars(select(Operator).order_by(Operator.name))).all())


async def operator_by_name(s: AsyncSession, name: str) -> Operator:
    op = await s.scalar(select(Operator).where(Operator.name == name.strip()))
    if op is None:
        raise NotFound(f"No operator named {name!r}.", field="operator")
    return op


# --------------------------------------------------------------------------- tokens


async def create_token(
    db: Database,
    *,
    operator: str,
    role: str,
    actor: Actor,
    now: datetime,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, Token]:
    """Create a bearer token. The clear token is returned once and never stored."""
    check_instant(expires_at, "expiresAt")
    async with db.write() as s:
        op = await operator_by_name(s, operator)
        allowed = ROLE_KINDS.get(role, frozenset())
        if op.kind not in allowed:
            raise InvalidInput(
                f"Role {role!r} cannot be given to an operator of kind {op.kind!r} "
                f"(allowed kinds: {', '.join(sorted(allowed))}).",
                field="role",
            )
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        tok = Token(
            token_hash=hash_token(clear),
            prefix=clear[:10],
            operator_id=op.id,
            role=role,
            label=label,
            created_at=now,
            expires_at=expires_at,
        )
        s.add(tok)
        await s.flush()
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="token.create",
            object_type="token",
            object_id=tok.id,
            detail={"operator": op.name, "role": role},
        )
    return clear, tok


async def revoke_token(db: Database, *, token_id: int, actor: Actor, now: datetime) -> None:
    async with db.write() as s:
        res = await s.execute(
            update(Token)
            .where(Token.id == token_id, Token.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if res.rowcount == 0:
            raise NotFound("No such active token.")
        await audit.record(
            s, actor=actor, at=now, action="token.revoke", object_type="token", object_id=token_id
        )
        # The one-time links this token issued go with it: a leaked staff token may have
        # issued a week-long link for later, and a session such a link opened must end too
        # (it ends with its link, ``capacity.links.session_scope``).
        issued = (
            await s.execute(
                select(StaffLink.id, StaffLink.facility_id).where(
                    StaffLink.created_by_token_id == token_id,
                    StaffLink.revoked_at.is_(None),
                    StaffLink.expires_at > now,
                )
            )
        ).all()
        if issued:
            await s.execute(
                update(StaffLink)
                .where(StaffLink.id.in_([link_id for link_id, _ in issued]))
                .values(revoked_at=now)
            )
        for link_id, facility_id in issued:
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="staff_link.revoke",
                object_type="staff_link",
                object_id=link_id,
                facility_id=facility_id,
                detail={"token": token_id},
            )


async def list_tokens(db: Database) -> list[tuple[Token, Operator]]:
    async with db.read() as s:
        rows = await s.execute(
            select(Token, Operator)
            .join(Operator, Operator.id == Token.operator_id)
            .order_by(Token.id)
        )
        return [(t, o) for t, o in rows.all()]


async def authenticate(db: Database, clear: str, now: datetime) -> Actor | None:
    if not clear.startswith(TOKEN_PREFIX) or len(clear) > 100:
        return None
    async with db.read() as s:
        row = (
            await s.execute(
                select(
                    Token.id,
                    Token.role,
                    Token.operator_id,
                    Token.expires_at,
                    Token.revoked_at,
                    Operator.kind,
                )
                .join(Operator, Operator.id == Token.operator_id)
                .where(Token.token_hash == hash_token(clear))
            )
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return Actor(
        operator_id=row.operator_id, role=row.role, token_id=row.id, operator_kind=row.kind
    )


async def token_active(db: Database, token_id: int, now: datetime) -> bool:
    """Whether a token authenticated earlier is still good (not revoked, not expired): for
    long-lived answers such as the hold stream, which must end with the token."""
    async with db.read() as s:
        row = (
            await s.execute(select(Token.revoked_at, Token.expires_at).where(Token.id == token_id))
        ).first()
    if row is None or row.revoked_at is not None:
        return False
    return row.expires_at is None or row.expires_at > now


# --------------------------------------------------------------------------- facilities


@dataclass(frozen=True)
class FacilityView:
    """A facility with its pools, as its own staff or an admin may see it (address apart)."""

    facility: Facility
    operator: Operator
    pools: list[Pool]


def _check_window(valid_from: datetime | None, planned_end: datetime | None) -> None:
    check_instant(valid_from, "validFrom")
    check_instant(planned_end, "plannedEnd")
    if valid_from and planned_end and planned_end <= valid_from:
        raise InvalidInput("plannedEnd must be after validFrom.", field="plannedEnd")


def _pool_counts_ok(p: PoolCreate) -> None:
    if p.units_blocked > p.units_total:
        raise InvalidInput("unitsBlocked cannot exceed unitsTotal.", field="unitsBlocked")
    if p.surge_72h < p.surge_24h:
        raise InvalidInput(
            "surge72h counts units openable within 72 h, so it includes surge24h.",
            field="surge72h",
        )


def _patched(base: AccessPolicy, patch: Any) -> AccessPolicy:
    try:
        return apply_patch(base, patch)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="policy") from None


def resolve_policy(cmd: FacilityCreate) -> tuple[str, AccessPolicy, bool, str, int | None]:
    """Apply a template, then explicit fields: kind, policy, secret flag, protocol, staleness."""
    tpl = None
    if cmd.template is not None:
        tpl = TEMPLATES.get(cmd.template)
        if tpl is None:
            raise InvalidInput(
                f"Unknown template {cmd.template!r}; known: {', '.join(sorted(TEMPLATES))}.",
                field="template",
            )
    kind = cmd.kind or (tpl.kind if tpl else None)
    if kind is None:
        raise InvalidInput("Give a kind or a template.", field="kind")
    base = tpl.policy if tpl else AccessPolicy()
    policy = base if cmd.policy is None else _patched(base, cmd.policy)
    secret = (
        cmd.secret_address
        if cmd.secret_address is not None
        else (tpl.secret_address if tpl else True)
    )
    protocol = cmd.handover_protocol or (tpl.handover_protocol if tpl else "")
    stale = cmd.stale_after_minutes or (tpl.stale_after_minutes if tpl else None)
    return kind, policy, secret, protocol, stale


async def _add_facility(
    s: AsyncSession,
    cmd: FacilityCreate,
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    source: str,
) -> Facility:
    op = await operator_by_name(s, cmd.operator)
    if op.kind not in ROLE_KINDS["staff"]:
        raise InvalidInput(
            f"Operator {op.name!r} is of kind {op.kind!r} and cannot run facilities.",
            field="operator",
        )
    nis = areas().canonical_municipality(cmd.municipality_nis)
    _check_window(cmd.valid_from, cmd.planned_end)
    kind, policy, secret, protocol, stale = resolve_policy(cmd)
    exists = await s.scalar(
        select(Facility.id).where(Facility.operator_id == op.id, Facility.alias == cmd.alias)
    )
    if exists is not None:
        raise AlreadyExists(
            f"{op.name} already has a facility called {cmd.alias!r}.", field="alias"
        )
    fac = Facility(
        ref=new_ref("fac"),
        operator_id=op.id,
        alias=cmd.alias,
        kind=kind,
        municipality_nis=nis,
        policy=policy_to_json(policy),
        intake_phone=cmd.intake_phone,
        intake_phone_24h=cmd.intake_phone_24h,
        handover_protocol=protocol,
        secret_address=secret,
        status="open",
        valid_from=cmd.valid_from,
        planned_end=cmd.planned_end,
        stale_after_minutes=stale,
        created_at=now,
        updated_at=now,
    )
    s.add(fac)
    await s.flush()
    if cmd.address is not None:
        _check_postal_code(nis, cmd.address, field="address.postalCode")
        s.add(
            FacilityAddress(
                facility_id=fac.id, ciphertext=cipher.encrypt(cmd.address), updated_at=now
            )
        )
    await audit.record(
        s,
        actor=actor,
        at=now,
        action="facility.create",
        object_type="facility",
        object_id=fac.id,
        facility_id=fac.id,
        detail={"alias": fac.alias, "kind": kind, "template": cmd.template, "source": source},
    )
    pools = list(cmd.pools)
    if not pools and cmd.template is not None:
        pools = [
            PoolCreate(label=label, unit_kind=uk, places_per_unit=n)  # type: ignore[arg-type]
            for label, uk, n in TEMPLATES[cmd.template].pools
        ]
    for p in pools:
        await _add_pool(s, fac, p, actor=actor, now=now, source=source)
    return fac


async def create_facility(
    db: Database, cmd: FacilityCreate, *, actor: Actor, now: datetime, cipher: AddressCipher
) -> FacilityView:
    async with db.write() as s:
        fac = await _add_facility(s, cmd, actor=actor, now=now, cipher=cipher, source="admin")
    return await get_facility(db, fac.id)


async def _add_pool(
    s: AsyncSession, fac: Facility, p: PoolCreate, *, actor: Actor, now: datetime, source: str
) -> Pool:
    _pool_counts_ok(p)
    dup = await s.scalar(select(Pool.id).where(Pool.facility_id == fac.id, Pool.label == p.label))
    if dup is not None:
        raise AlreadyExists(f"This facility already has a pool called {p.label!r}.", field="label")
    pool = Pool(
        ref=new_ref("pool"),
        facility_id=fac.id,
        label=p.label,
        unit_kind=p.unit_kind,
        places_per_unit=1 if p.unit_kind == "bed" else p.places_per_unit,
        units_total=p.units_total,
        units_occupied=p.units_occupied,
        units_blocked=p.units_blocked,
        units_held=0,
        surge_24h=p.surge_24h,
        surge_72h=p.surge_72h,
        version=1,
        reported_at=now,
        confirmed_at=None,
        created_at=now,
    )
    s.add(pool)
    await s.flush()
    s.add(
        AvailabilityReport(
            pool_id=pool.id,
            at=now,
            kind="create",
            source=source,
            operator_id=actor.operator_id,
            units_total=pool.units_total,
            units_blocked=pool.units_blocked,
            units_occupied=pool.units_occupied,
            units_held=0,
            version=1,
        )
    )
    await audit.record(
        s,
        actor=actor,
        at=now,
        action="pool.create",
        object_type="pool",
        object_id=pool.id,
        facility_id=fac.id,
        detail={"label": p.label, "unitKind": p.unit_kind, "unitsTotal": p.units_total},
    )
    return pool


async def create_pool(
    db: Database, facility_id: int, p: PoolCreate, *, actor: Actor, now: datetime
) -> Pool:
    async with db.write() as s:
        fac = await s.get(Facility, facility_id)
        if fac is None:
            raise NotFound("No such facility.")
        return await _add_pool(s, fac, p, actor=actor, now=now, source="admin")


async def update_pool(
    db: Database, pool_id: int, cmd: PoolUpdate, *, actor: Actor, now: datetime
) -> Pool:
    changes = {k: v for k, v in _struct_items(cmd) if v is not None}
    async with db.write() as s:
        pool = await s.get(Pool, pool_id)
        if pool is None:
            raise NotFound("No such pool.")
        if "label" in changes and changes["label"] != pool.label:
            dup = await s.scalar(
                select(Pool.id).where(
                    Pool.facility_id == pool.facility_id, Pool.label == changes["label"]
                )
            )
            if dup is not None:
                raise AlreadyExists(
                    "This facility already has a pool with that label.", field="label"
                )
        s24 = changes.get("surge_24h", pool.surge_24h)
        s72 = changes.get("surge_72h", pool.surge_72h)
        if s72 < s24:
            raise InvalidInput(
                "surge72h includes surge24h, so it cannot be smaller.", field="surge72h"
            )
        if changes.get("unit_kind", pool.unit_kind) == "bed":
            changes["places_per_unit"] = 1
        for k, v in changes.items():
            setattr(pool, k, v)
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="pool.update",
            object_type="pool",
            object_id=pool.id,
            facility_id=pool.facility_id,
            detail=_camel(changes),
        )
    return pool


def _struct_items(obj: Any) -> list[tuple[str, Any]]:
    return [(f, getattr(obj, f)) for f in obj.__struct_fields__]


def _camel(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        head, *rest = k.split("_")
        key = head + "".join(x.capitalize() for x in rest)
        out[key] = (
            utc_iso(v)
            if isinstance(v, datetime)
            else (policy_to_json(v) if isinstance(v, AccessPolicy) else v)
        )
    return out


async def update_facility(
    db: Database,
    facility_id: int,
    cmd: FacilityUpdate,
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher | None = None,
) -> FacilityView:
    """``cipher``: to check a facility's address still lies in the municipality it is moved
    to (without it, moving a facility that has an address is refused)."""
    changes = {
        k: v
        for k, v in _struct_items(cmd)
        if v is not msgspec.UNSET and (v is not None or k in CLEARABLE_FACILITY_FIELDS)
    }
    try:
        return await _update_facility(db, facility_id, changes, actor=actor, now=now, cipher=cipher)
    except _AddressElsewhere as refused:
        # The refusal says whether the address lies in a municipality: tried for many, that
        # would locate the refuge without an address read. It is audited like one (its own
        # transaction: the refused change's rolled back).
        async with db.write() as s:
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="address.compared",
                object_type="facility",
                object_id=facility_id,
                facility_id=facility_id,
                detail={"municipalityNis": refused.municipality_nis},
            )
        raise InvalidInput(str(refused), field="municipalityNis") from None


class _AddressElsewhere(Exception):
    def __init__(self, message: str, municipality_nis: str) -> None:
        super().__init__(message)
        self.municipality_nis = municipality_nis


async def _update_facility(
    db: Database,
    facility_id: int,
    changes: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher | None,
) -> FacilityView:
    async with db.write() as s:
        fac = await s.get(Facility, facility_id, with_for_update=True)  # merges: no lost update
        if fac is None:
            raise NotFound("No such facility.")
        if "municipality_nis" in changes:
            changes["municipality_nis"] = areas().canonical_municipality(
                changes["municipality_nis"]
            )
            if changes["municipality_nis"] != fac.municipality_nis:
                # its address must lie in the new one, as at creation and on PUT .../address:
                # searches keep a facility away from an area to avoid by its municipality
                row = await s.get(FacilityAddress, facility_id)
                if row is not None:
                    if cipher is None:
                        raise InvalidInput(
                            "This facility has an address: moving it needs the address key.",
                            field="municipalityNis",
                        )
                    # the message names no part of the address, but tells whether it lies
                    # there: audited (address.compared) by update_facility
                    if _elsewhere(changes["municipality_nis"], cipher.decrypt(row.ciphertext)):
                        raise _AddressElsewhere(
                            "The facility's address is not in this municipality. To move the "
                            "facility, set its new address with the municipality: PUT "
                            "/admin/facilities/{id}/address?municipalityNis=….",
                            changes["municipality_nis"],
                        )
        _check_window(
            changes.get("valid_from", fac.valid_from), changes.get("planned_end", fac.planned_end)
        )
        if "alias" in changes and changes["alias"] != fac.alias:
            dup = await s.scalar(
                select(Facility.id).where(
                    Facility.operator_id == fac.operator_id, Facility.alias == changes["alias"]
                )
            )
            if dup is not None:
                raise AlreadyExists(
                    "This operator already has a facility with that alias.", field="alias"
                )
        if "policy" in changes:
            changes["policy"] = _patched(policy_from_json(fac.policy), changes["policy"])
        if "planned_end" in changes:
            changes["previous_planned_end"] = fac.planned_end
            _count_extension(fac, changes["planned_end"])
            changes["extensions"] = fac.extensions
        detail = _camel(changes)
        changes.pop("previous_planned_end", None)
        changes.pop("extensions", None)
        if "policy" in changes:
            changes["policy"] = policy_to_json(changes["policy"])
        await _apply_update(s, fac, changes, detail, actor=actor, now=now)
    return await get_facility(db, facility_id)


async def _apply_update(
    s: AsyncSession,
    fac: Facility,
    changes: dict[str, Any],
    detail: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
) -> None:
    """Set the changed columns and audit them as one ``facility.update`` entry."""
    for k, v in changes.items():
        setattr(fac, k, v)
    fac.updated_at = now
    await audit.record(
        s,
        actor=actor,
        at=now,
        action="facility.update",
        object_type="facility",
        object_id=fac.id,
        facility_id=fac.id,
        detail=detail,
    )


def _count_extension(fac: Facility, new_end: datetime | None) -> None:
    """R07: pushing a scheme's planned end back counts as an extension; the first planned end
    is kept. Bringing it forward is a correction, not counted; clearing it (the place is kept
    for good) is not an extension either."""
    if fac.planned_end is not None and new_end is not None and new_end > fac.planned_end:
        if fac.first_planned_end is None:
            fac.first_planned_end = fac.planned_end
        fac.extensions = (fac.extensions or 0) + 1


async def extend_schemes(
    db: Database,
    *,
    planned_end: datetime,
    operator: str | None,
    kind: str | None,
    area_nis: str | None,
    actor: Actor,
    now: datetime,
) -> list[int]:
    """Push back, in one go, the planned end of every temporary scheme that ends before
    ``planned_end`` (a winter plan extended for all its hotels), optionally only one
    operator's, one kind of place, or those in one area (``BE``, a region, province,
    arrondissement or municipality). Only extends running schemes, never shortens one, never
    reopens one that has already ended (that is a deliberate edit of that facility);
    facilities without a planned end are not schemes and stay as they are. One audit entry
    per facility. Returns the ids extended."""
    check_future(planned_end, now, "plannedEnd", "The new planned end must be in the future.")
    if area_nis is not None:
        area_nis = health_rules.check_area(area_nis)  # unknown: a clear 422
    async with db.write() as s:
        q = select(Facility).where(
            Facility.planned_end.is_not(None),
            Facility.planned_end > now,  # an ended scheme is not brought back to life here
            Facility.planned_end < planned_end,
        )
        if operator is not None:
            op = await operator_by_name(s, operator)
            q = q.where(Facility.operator_id == op.id)
        if kind is not None:
            q = q.where(Facility.kind == kind)
        facs = (await s.scalars(q.order_by(Facility.id).with_for_update())).all()
        out = []
        for fac in facs:
            if area_nis is not None and area_nis not in areas().enclosing(fac.municipality_nis):
                continue
            previous = fac.planned_end
            assert previous is not None
            _count_extension(fac, planned_end)
            fac.planned_end = planned_end
            fac.updated_at = now
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="facility.extended",
                object_type="facility",
                object_id=fac.id,
                facility_id=fac.id,
                detail={
                    "from": utc_iso(previous),
                    "to": utc_iso(planned_end),
                    "extensions": fac.extensions,
                },
            )
            out.append(fac.id)
    return out


#: Statuses that end by themselves once their ``until`` has passed (:func:`lapse_due_statuses`).
#: Never ``location_compromised``: only an administrator lifts it.
LAPSING_STATUSES: tuple[str, ...] = ("closed_to_admissions", "reduced", "suspended")
REASON_REQUIRED = "Give a reason for this status."
LIFT_REASON_REQUIRED = (
    "Give a reason for lifting 'location compromised' (why the place is safe again): the "
    "audit keeps it."
)
STATUS_KEPT = "This status cannot be changed here: only an administrator lifts it."
NOT_COMPROMISED = "This place is no longer reported compromised: nothing was changed."
UNTIL_NOT_LAPSING = (
    "'until' goes with a temporary status (closed to admissions, reduced, suspended), which "
    "ends then and reopens the place; leave it out for this status."
)


async def set_status(
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
) -> FacilityView:
    """Change a facility's operational status. ``location_compromised`` stops new placements at
    once (the matcher never offers it) and raises an alert for admins. A facility whose current
    status is in ``refuse_from`` is left as it is (``Conflict``). The row is locked before it is
    read, so that check and the audit's "from" see a status set meanwhile by someone else.
    ``also_audit``: one more audit entry (``audit.record``'s keywords but ``actor`` and ``at``)
    in the change's own transaction, e.g. which one-time link reported it. Lifting
    ``location_compromised`` (to any other status) needs a reason, even to ``open``. ``lift``:
    only that (``Conflict`` when the place is not compromised, e.g. lifted meanwhile by another
    admin: a form sent twice must not reopen a place someone closed since)."""
    check_future(cmd.until, now, "until", UNTIL_IN_PAST)
    if cmd.until is not None and cmd.status not in LAPSING_STATUSES:
        # kept and never used: the place would not reopen, nor anything else happen then
        raise InvalidInput(UNTIL_NOT_LAPSING, field="until")
    if cmd.status != "open" and not (cmd.reason or "").strip():
        raise InvalidInput(REASON_REQUIRED, field="reason")
    async with db.write() as s:
        fac = await s.get(Facility, facility_id, with_for_update=True)
        if fac is None or (operator_scope is not None and fac.operator_id != operator_scope):
            raise NotFound("No such facility.")
        if fac.status in refuse_from:
            if cmd.status != fac.status:
                raise Conflict(STATUS_KEPT, field="status")
            # the same kept status reported again (a retry whose answer was lost): audited as
            # such, no second alert, and the reason stays the one the alert quotes
            cmd = StatusChange(status=fac.status, reason=fac.status_reason, until=fac.status_until)
        if lift and fac.status != "location_compromised":
            raise Conflict(NOT_COMPROMISED, field="status")
        previous = fac.status
        if (
            previous == "location_compromised"
            and cmd.status != previous
            and not (cmd.reason or "").strip()
        ):
            # an admin lifting it: the audit must say why the place is judged safe again
            raise InvalidInput(LIFT_REASON_REQUIRED, field="reason")
        fac.status = cmd.status
        # an open place carries no reason (a lift's stays in the audit): else the staff page
        # shows it under "Open" and offers it again as the next closure's reason
        fac.status_reason = None if cmd.status == "open" else cmd.reason
        fac.status_until = cmd.until
        fac.updated_at = now
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="facility.status",
            object_type="facility",
            object_id=fac.id,
            facility_id=fac.id,
            detail={
                "from": previous,
                "to": cmd.status,
                "reason": cmd.reason,
                "until": utc_iso(cmd.until) if cmd.until else None,
            },
        )
        if also_audit is not None:
            await audit.record(s, actor=actor, at=now, **also_audit)
        if previous == "location_compromised" and cmd.status != previous:
            await _acknowledge_compromised_alerts(s, fac.id, actor=actor, now=now, to=cmd.status)
        if cmd.status == "location_compromised" and previous != "location_compromised":
            s.add(
                Alert(
                    at=now,
                    kind="location_compromised",
                    facility_id=fac.id,
                    # the retention purge cuts the message at ALERT_REASON
                    message=f"Location of {fac.alias} reported compromised: no new placements."
                    f"{ALERT_REASON}{cmd.reason}",
                )
            )
    return await get_facility(db, facility_id)


async def acknowledge_alerts(
    s: AsyncSession,
    *which: ColumnElement[bool],
    actor: Actor,
    now: datetime,
    facility_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> list[int]:
    """Acknowledge the open alerts ``which`` selects, by ``actor``, one ``alert.acknowledge``
    audit row each (``facility_id`` and ``detail`` on those rows); the ids acknowledged."""
    ids = sorted(
        (
            await s.scalars(
                update(Alert)
                .where(*which, Alert.acknowledged_at.is_(None))
                .values(acknowledged_at=now, acknowledged_by=actor.operator_id)
                .returning(Alert.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )
    for alert_id in ids:
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="alert.acknowledge",
            object_type="alert",
            object_id=alert_id,
            facility_id=facility_id,
            detail=detail,
        )
    return ids


async def _acknowledge_compromised_alerts(
    s: AsyncSession, facility_id: int, *, actor: Actor, now: datetime, to: str
) -> None:
    """A lifted compromised location: its open alerts are acknowledged, as ``POST
    /admin/alerts/{id}/acknowledge`` does, so no admin acts later on a place already
    reopened."""
    await acknowledge_alerts(
        s,
        Alert.facility_id == facility_id,
        Alert.kind == "location_compromised",
        actor=actor,
        now=now,
        facility_id=facility_id,
        detail={"lifted": "location_compromised", "to": to},
    )


def _due(now: datetime) -> list[Any]:
    return [
        Facility.status.in_(LAPSING_STATUSES),
        Facility.status_until.is_not(None),
        Facility.status_until <= now,
    ]


async def lapse_due_statuses(
    db: Database,
    *,
    now: datetime,
    pause_between_check_and_write: Callable[[], Awaitable[None]] | None = None,
) -> list[int]:
    """Reopen the facilities whose temporary status (closed to admissions, reduced,
    suspended) has run out: status ``open``, no reason, no ``until``, ``updated_at`` bumped (the
    search index rebuilds on it), one ``facility.status_lapsed`` audit row each. Returns their
    ids. ``location_compromised`` never lapses.

    Idempotent, and safe in two processes at once: the due rows are locked first (PostgreSQL:
    ``FOR UPDATE``, whose rows are re-checked after any wait; SQLite: BEGIN IMMEDIATE already
    serialises writers), then one UPDATE re-states the same conditions, and only the rows it
    returns are audited. A second run finds nothing due. ``pause_between_check_and_write`` is
    for tests only (rows locked, not yet written).
    """
    async with db.read() as s:  # nothing due (nearly always): no write transaction
        if await s.scalar(select(Facility.id).where(*_due(now)).limit(1)) is None:
            return []
    async with db.write() as s:
        due = (
            await s.execute(
                select(Facility.id, Facility.status, Facility.status_until)
                .where(*_due(now))
                .order_by(Facility.id)
                .with_for_update()
            )
        ).all()
        if not due:
            return []
        if pause_between_check_and_write is not None:
            await pause_between_check_and_write()
        reopened = set(
            (
                await s.scalars(
                    update(Facility)
                    .where(Facility.id.in_([r.id for r in due]), *_due(now))
                    .values(status="open", status_reason=None, status_until=None, updated_at=now)
                    .returning(Facility.id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        )
        for r in due:
            if r.id not in reopened:  # pragma: no cover - the rows are locked
                continue
            await audit.record(
                s,
                actor=audit.SYSTEM,
                at=now,
                action="facility.status_lapsed",
                object_type="facility",
                object_id=r.id,
                facility_id=r.id,
                detail={"from": r.status, "until": utc_iso(r.status_until)},
            )
    return sorted(reopened)


async def get_facility(
    db: Database, facility_id: int, *, operator_scope: int | None = None
) -> FacilityView:
    views = await list_facilities(db, operator_id=operator_scope, facility_id=facility_id)
    if not views:
        raise NotFound("No such facility.")
    return views[0]


async def facility_id_of(db: Database, name: str) -> int:
    """A facility's id from what an admin types: its id or its ref (``NotFound`` otherwise)."""
    name = name.strip()
    async with db.read() as s:
        if name.isdecimal() and len(name) < 12:
            found = await s.scalar(select(Facility.id).where(Facility.id == int(name)))
        else:
            found = await s.scalar(select(Facility.id).where(Facility.ref == name))
    if found is None:
        raise NotFound("No such facility.")
    return found


async def secret_landlines(
    db: Database, facility_ids: Sequence[int] | None = None
) -> list[tuple[int, str, str]]:
    """``(id, alias, area code)`` of each secret place whose intake number is a Belgian
    landline: the area code tells every requester roughly where it is (``capacity.phones``)."""
    async with db.read() as s:
        q = select(Facility.id, Facility.alias, Facility.intake_phone).where(
            Facility.secret_address.is_(True)
        )
        if facility_ids is not None:
            q = q.where(Facility.id.in_(list(facility_ids)))
        rows = (await s.execute(q.order_by(Facility.id))).all()
    found = [(i, alias, fixed_line_zone(phone)) for i, alias, phone in rows]
    return [(i, alias, zone) for i, alias, zone in found if zone is not None]


async def list_facilities(
    db: Database, *, operator_id: int | None = None, facility_id: int | None = None
) -> list[FacilityView]:
    async with db.read() as s:
        q = select(Facility, Operator).join(Operator, Operator.id == Facility.operator_id)
        if operator_id is not None:
            q = q.where(Facility.operator_id == operator_id)
        if facility_id is not None:
            q = q.where(Facility.id == facility_id)
        rows = (await s.execute(q.order_by(Facility.id))).all()
        ids = [f.id for f, _ in rows]
        pools: dict[int, list[Pool]] = {i: [] for i in ids}
        if ids:
            for p in (
                await s.scalars(select(Pool).where(Pool.facility_id.in_(ids)).order_by(Pool.id))
            ).all():
                pools[p.facility_id].append(p)
    return [FacilityView(f, o, pools[f.id]) for f, o in rows]


async def read_address(
    db: Database,
    facility_id: int,
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    operator_scope: int | None = None,
) -> Address | None:
    """Decrypt a facility's address. Every read is audited, in the same transaction."""
    async with db.write() as s:
        fac = await s.get(Facility, facility_id)
        if fac is None or (operator_scope is not None and fac.operator_id != operator_scope):
            raise NotFound("No such facility.")
        row = await s.get(FacilityAddress, facility_id)
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="address.read",
            object_type="facility",
            object_id=facility_id,
            facility_id=facility_id,
        )
    return cipher.decrypt(row.ciphertext) if row else None


async def read_addresses(
    db: Database, facility_ids: list[int], *, actor: Actor, now: datetime, cipher: AddressCipher
) -> dict[int, Address]:
    """Addresses of several facilities the caller may see; one audit row per facility."""
    if not facility_ids:
        return {}
    async with db.write() as s:
        rows = (
            await s.scalars(
                select(FacilityAddress).where(FacilityAddress.facility_id.in_(facility_ids))
            )
        ).all()
        for fid in facility_ids:
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="address.read",
                object_type="facility",
                object_id=fid,
                facility_id=fid,
            )
    return {r.facility_id: cipher.decrypt(r.ciphertext) for r in rows}


def _elsewhere(municipality_nis: str, address: Address) -> list[Municipality]:
    """The municipalities the address's postal code belongs to when none is this one; empty
    when it fits (a code the shipped table does not know, special or foreign, fits)."""
    idx = areas()
    served = idx.by_postal_code(address.postal_code)
    nis = idx.canonical_municipality(municipality_nis)
    return [] if nis in {m.nis for m in served} else list(served)


def _check_postal_code(municipality_nis: str, address: Address, *, field: str) -> None:
    """Refuse an address whose postal code belongs only to other municipalities: the
    municipality, not the address, is what searches keep away from an area to avoid, so a
    refuge in Liège registered under Bruxelles would be offered to someone fleeing Liège."""
    served = _elsewhere(municipality_nis, address)
    if served:
        nis = areas().canonical_municipality(municipality_nis)
        names = ", ".join(f"{local_name(m.nis)} ({m.nis})" for m in served)
        raise InvalidInput(
            f"Postal code {address.postal_code.strip()} is in {names}, not in "
            f"{local_name(nis)} ({nis}): check the municipality or the address.",
            field=field,
        )


async def set_address(
    db: Database,
    facility_id: int,
    address: Address,
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    municipality_nis: str | None = None,
) -> None:
    """Set (or replace) the address. With ``municipality_nis``, the facility moves there in the
    same step: a relocation, where the new address is not in the old municipality and the old
    address not in the new one, so neither could be changed first."""
    if not address.street.strip() or not address.city.strip():
        # `{}` (every field defaults to "") replaced the only copy of a secret refuge's
        # address with nothing
        raise InvalidInput(
            "An address needs at least `street` and `city`: an empty one would erase the "
            "address on file, which only this copy keeps.",
            field="street" if not address.street.strip() else "city",
        )
    async with db.write() as s:
        fac = await s.get(Facility, facility_id, with_for_update=True)
        if fac is None:
            raise NotFound("No such facility.")
        moved_to = None
        if municipality_nis is not None:
            nis = areas().canonical_municipality(municipality_nis)
            if nis != fac.municipality_nis:
                moved_to = nis
        _check_postal_code(moved_to or fac.municipality_nis, address, field="postalCode")
        if moved_to is not None:
            await _apply_update(
                s,
                fac,
                {"municipality_nis": moved_to},
                {"municipalityNis": moved_to},
                actor=actor,
                now=now,
            )
        row = await s.get(FacilityAddress, facility_id)
        if row is None:
            s.add(
                FacilityAddress(
                    facility_id=facility_id, ciphertext=cipher.encrypt(address), updated_at=now
                )
            )
        else:
            row.ciphertext = cipher.encrypt(address)
            row.updated_at = now
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="address.write",
            object_type="facility",
            object_id=facility_id,
            facility_id=facility_id,
        )


async def add_facilities(
    db: Database,
    cmds: list[FacilityCreate],
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    source: str,
) -> list[int]:
    """Create several facilities in ONE transaction: all or nothing (bulk import).

    Errors carry the 1-based index of the failing item in ``extra['row']``. Every item is
    tried, so that the first error raised carries them all in ``extra['failures']`` (index,
    error): a file is corrected in one go, not one refused row per attempt. Going on after a
    refused item is safe, as nothing is committed: its checks come before anything the
    database could refuse, and the other items' aliases differ (checked before).
    """
    ids: list[int] = []
    failures: list[tuple[int, AbriError]] = []
    async with db.write() as s:
        for i, cmd in enumerate(cmds, start=1):
            try:
                fac = await _add_facility(
                    s, cmd, actor=actor, now=now, cipher=cipher, source=source
                )
            except (InvalidInput, NotFound, AlreadyExists) as exc:
                exc.extra.setdefault("row", i)
                failures.append((i, exc))
                continue
            except IntegrityError as exc:  # pragma: no cover - guarded by the checks above
                raise AlreadyExists(f"Row {i}: conflicts with an existing record.", row=i) from exc
            ids.append(fac.id)
        if failures:
            first = failures[0][1]
            first.extra["failures"] = failures
            raise first
    return ids


def policy_of(fac: Facility) -> AccessPolicy:
    return policy_from_json(fac.policy)
