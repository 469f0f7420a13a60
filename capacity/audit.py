"""The append-only audit log (DESIGN invariant 7). Written inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.db import Database, RawTx
from capacity.models import AuditEntry, Operator


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who acts: from a token (API), or the system (CLI, scheduled jobs)."""

    operator_id: int | None
    role: str
    token_id: int | None = None
    operator_kind: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


SYSTEM = Actor(operator_id=None, role="system")
CLI = Actor(operator_id=None, role="cli")


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    at: datetime,
    action: str,
    object_type: str,
    object_id: object | None = None,
    facility_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row. ``detail`` must never hold an address or household identity."""
    await session.execute(
        insert(AuditEntry).values(
            at=at,
            actor_operator_id=actor.operator_id,
            actor_token_id=actor.token_id,
            actor_role=actor.role,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            facility_id=facility_id,
            detail=detail,
        )
    )


_INSERT = (
    "INSERT INTO audit_log (at, actor_operator_id, actor_token_id, actor_role, action,"
    " object_type, object_id, facility_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


async def record_raw(
    tx: RawTx,
    *,
    actor: Actor,
    at: datetime,
    action: str,
    object_type: str,
    object_id: object | None = None,
    facility_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`record` inside a :meth:`Database.raw_write` transaction (the hold hot path)."""
    await tx.run(
        _INSERT,
        tx.ts(at),
        actor.operator_id,
        actor.token_id,
        actor.role,
        action,
        object_type,
        None if object_id is None else str(object_id),
        facility_id,
        tx.json(detail),
    )


class Filter(msgspec.Struct, frozen=True, kw_only=True):
    """Which entries a reader asks for (all given conditions must hold). ``since`` is
    inclusive and ``until`` exclusive, both aware instants; ``hold_ref`` a canonical reference
    code: the hold's own entries and those naming it in their detail (which link marked it, which
    standing request it answered) while the detail is kept."""

    facility_id: int | None = None
    action: str | None = None
    token_id: int | None = None
    operator_id: int | None = None
    object_type: str | None = None
    object_id: str | None = None
    hold_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


def _where(q: Select[Any], f: Filter) -> Select[Any]:
    if f.facility_id is not None:
        q = q.where(AuditEntry.facility_id == f.facility_id)
    if f.action is not None:
        q = q.where(AuditEntry.action == f.action)
    if f.token_id is not None:
        q = q.where(AuditEntry.actor_token_id == f.token_id)
    if f.operator_id is not None:
        q = q.where(AuditEntry.actor_operator_id == f.operator_id)
    if f.object_type is not None:
        q = q.where(AuditEntry.object_type == f.object_type)
    if f.object_id is not None:
        q = q.where(AuditEntry.object_id == f.object_id)
    if f.hold_ref is not None:
        q = q.where(
            or_(
                and_(AuditEntry.object_type == "hold", AuditEntry.object_id == f.hold_ref),
                AuditEntry.detail["hold"].as_string() == f.hold_ref,
            )
        )
    if f.since is not None:
        q = q.where(AuditEntry.at >= f.since)
    if f.until is not None:
        q = q.where(AuditEntry.at < f.until)
    if f.before_id is not None:
        q = q.where(AuditEntry.id < f.before_id)
    return q


async def entries(
    db: Database, f: Filter, *, limit: int = 100
) -> list[tuple[AuditEntry, str | None]]:
    """The entries that match, newest first (by id: the order they were written in; several
    share one instant), each with its actor's operator name (None: Abri itself or the command
    line). The caller checks that the reader may see them."""
    q = (
        select(AuditEntry, Operator.name)
        .outerjoin(Operator, Operator.id == AuditEntry.actor_operator_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    async with db.read() as s:
        return [(e, name) for e, name in (await s.execute(_where(q, f))).all()]
