"""The append-only audit log (DESIGN invariant 7). Written inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import insert, select
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


async def facility_entries(
    db: Database,
    facility_id: int,
    *,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[tuple[AuditEntry, str | None]]:
    """The entries about one facility, newest first (by id: the order they were written in;
    several share one instant), each with its actor's operator name (None: Abri itself or the
    command line). The caller checks that the reader may see them."""
    q = (
        select(AuditEntry, Operator.name)
        .outerjoin(Operator, Operator.id == AuditEntry.actor_operator_id)
        .where(AuditEntry.facility_id == facility_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    if action is not None:
        q = q.where(AuditEntry.action == action)
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    async with db.read() as s:
        return [(e, name) for e, name in (await s.execute(q)).all()]
