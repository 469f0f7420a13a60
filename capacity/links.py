"""Signed one-time links for night workers (issue 7).

A coordinator (staff of the facility's operator, or an admin) issues a link for ONE facility,
with an expiry (default 12 h, at most 7 days) and a label. The clear secret is returned once;
only its SHA-256 is stored (256 random bits, as for tokens). Opening the link exchanges it,
once, for a web session limited to that facility: update its pools' counts, confirm
"still accurate", mark the holds on it arrived, no-show or departed, and report its location
compromised (never lift it; ``api/web/links.py``) — no household data, no address, no other
facility, no other status.

The session lasts at most the night (the web session's 12 h absolute limit), never beyond the
link's expiry, and ends as soon as the link is revoked. A second exchange of the same secret is
refused ("used") and audited, so a coordinator can see if someone else opened the link first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit, availability
from capacity.audit import Actor
from capacity.commands import AvailabilityUpdate
from capacity.db import Database
from capacity.errors import Conflict, InvalidInput, NotFound
from capacity.models import Facility, Operator, Pool, StaffLink
from capacity.registry import hash_token

LINK_PREFIX = "abl_"
DEFAULT_HOURS = 12
MAX_HOURS = 7 * 24
LINK_ROLE = "link"  # the actor role of a link session (no route guard admits it)
SENT_TWICE = (
    "This link was already created: the form was sent twice (the page reloaded?). It is "
    "listed below; revoke it and create a new one if it was not passed on."
)


def link_state(link: StaffLink, now: datetime) -> str:
    """``active`` (not yet opened), ``used``, ``expired`` or ``revoked``."""
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    if link.used_at is not None:
        return "used"
    return "active"


@dataclass(frozen=True)
class Exchange:
    """The outcome of opening a link: the session's facility, or why it was refused."""

    link: StaffLink | None
    facility_alias: str | None
    operator_id: int | None
    refused: str | None  # None | "unknown" | "used" | "expired" | "revoked"


async def _facility_in_scope(
    s: AsyncSession, facility_id: int, operator_scope: int | None
) -> Facility:
    fac = await s.get(Facility, facility_id)
    if fac is None or (operator_scope is not None and fac.operator_id != operator_scope):
        raise NotFound("No such facility.")  # same answer for "not yours": no existence leak
    return fac


async def issue(
    db: Database,
    facility_id: int,
    *,
    label: str,
    hours: int = DEFAULT_HOURS,
    actor: Actor,
    now: datetime,
    operator_scope: int | None,
    form_nonce: str | None = None,
) -> tuple[str, StaffLink]:
    """Issue a link for one facility. The clear secret is returned once and never stored.

    ``form_nonce``: the staff page's form nonce. The same form sent twice (a reload of the
    page that showed the link, or two clicks racing) is refused (409) instead of issuing a
    second live link, which the coordinator would not have seen."""
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"A link lasts from 1 to {MAX_HOURS} hours.", field="hours")
    label = label.strip()
    if not label or len(label) > 120:
        raise InvalidInput("Give the link a label of 1 to 120 characters.", field="label")
    clear = LINK_PREFIX + secrets.token_urlsafe(32)
    try:
        async with db.write() as s:
            fac = await _facility_in_scope(s, facility_id, operator_scope)
            link = StaffLink(
                facility_id=fac.id,
                created_by_operator_id=actor.operator_id,
                created_by_token_id=actor.token_id,
                label=label,
                secret_hash=hash_token(clear),
                created_at=now,
                expires_at=now + timedelta(hours=hours),
                form_nonce=form_nonce,
            )
            s.add(link)
            await s.flush()  # the same nonce again: IntegrityError (the unique key decides)
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="staff_link.issue",
                object_type="staff_link",
                object_id=link.id,
                facility_id=fac.id,
                detail={"hours": hours},
            )
    except IntegrityError:
        if form_nonce is None:
            raise
        raise Conflict(SENT_TWICE) from None  # sent before, or a twin committed first
    return clear, link


async def list_links(
    db: Database, facility_id: int, *, operator_scope: int | None
) -> list[StaffLink]:
    async with db.read() as s:
        await _facility_in_scope(s, facility_id, operator_scope)
        rows = await s.scalars(
            select(StaffLink)
            .where(StaffLink.facility_id == facility_id)
            .order_by(StaffLink.id.desc())
        )
        return list(rows.all())


async def current_links(
    db: Database,
    facility_ids: list[int],
    *,
    now: datetime,
    per_facility: int = 20,
    recent_hours: int = 24,
) -> dict[int, list[StaffLink]]:
    """The links of these facilities that have not expired, or expired within the last
    ``recent_hours`` (so the morning coordinator sees whether last night's link was opened),
    newest first (for the staff page; the caller has already limited ``facility_ids`` to the
    facilities it may see)."""
    if not facility_ids:
        return {}
    async with db.read() as s:
        rows = await s.scalars(
            select(StaffLink)
            .where(
                StaffLink.facility_id.in_(facility_ids),
                StaffLink.expires_at > now - timedelta(hours=recent_hours),
            )
            .order_by(StaffLink.id.desc())
        )
        out: dict[int, list[StaffLink]] = {}
        for link in rows.all():
            kept = out.setdefault(link.facility_id, [])
            if len(kept) < per_facility:
                kept.append(link)
        return out


async def revoke(
    db: Database, link_id: int, *, actor: Actor, now: datetime, operator_scope: int | None
) -> StaffLink:
    """Revoke a link (idempotent). Ends any session it opened at the session's next request."""
    async with db.write() as s:
        row = (
            await s.execute(
                select(StaffLink, Facility.operator_id)
                .join(Facility, Facility.id == StaffLink.facility_id)
                .where(StaffLink.id == link_id)
            )
        ).first()
        if row is None or (operator_scope is not None and row[1] != operator_scope):
            raise NotFound("No such link.")
        link: StaffLink = row[0]
        if link.revoked_at is None:
            link.revoked_at = now
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="staff_link.revoke",
                object_type="staff_link",
                object_id=link.id,
                facility_id=link.facility_id,
            )
        await s.flush()
    return link


async def exchange(db: Database, clear: str, *, now: datetime) -> Exchange:
    """Open a link: succeeds once (atomically on both databases), then refuses with a reason."""
    if not clear.startswith(LINK_PREFIX) or len(clear) > 100:
        return Exchange(None, None, None, "unknown")
    digest = hash_token(clear)
    async with db.write() as s:
        res = await s.execute(
            update(StaffLink)
            .where(
                StaffLink.secret_hash == digest,
                StaffLink.used_at.is_(None),
                StaffLink.revoked_at.is_(None),
                StaffLink.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        row = (
            await s.execute(
                select(StaffLink, Facility.alias, Facility.operator_id)
                .join(Facility, Facility.id == StaffLink.facility_id)
                .where(StaffLink.secret_hash == digest)
            )
        ).first()
        if row is None:
            return Exchange(None, None, None, "unknown")
        link, alias, operator_id = row
        refused = None if res.rowcount == 1 else link_state(link, now)
        if refused == "active":  # cannot happen (the update would have matched)
            refused = "used"
        await audit.record(
            s,
            actor=Actor(operator_id=operator_id, role=LINK_ROLE),
            at=now,
            action="staff_link.use" if refused is None else "staff_link.refused",
            object_type="staff_link",
            object_id=link.id,
            facility_id=link.facility_id,
            detail=None if refused is None else {"reason": refused},
        )
    return Exchange(link, alias, operator_id, refused)


@dataclass(frozen=True)
class LinkScope:
    """What a link session may touch: one facility (of one operator)."""

    link_id: int
    facility_id: int
    facility_alias: str
    actor: Actor
    expires_at: datetime


async def session_scope(
    db: Database, link_id: int, facility_id: int, now: datetime
) -> LinkScope | None:
    """The scope of a link session, or None once the link is revoked or expired."""
    async with db.read() as s:
        row = (
            await s.execute(
                select(StaffLink, Facility.alias, Facility.operator_id, Operator.kind)
                .join(Facility, Facility.id == StaffLink.facility_id)
                .join(Operator, Operator.id == Facility.operator_id)
                .where(StaffLink.id == link_id)
            )
        ).first()
    if row is None:
        return None
    link, alias, operator_id, kind = row
    if link.facility_id != facility_id or link.used_at is None:
        return None
    if link.revoked_at is not None or link.expires_at <= now:
        return None
    actor = Actor(operator_id=operator_id, role=LINK_ROLE, operator_kind=kind)
    return LinkScope(link.id, link.facility_id, alias, actor, link.expires_at)


async def facility_pools(db: Database, scope: LinkScope) -> list[Pool]:
    async with db.read() as s:
        rows = await s.scalars(
            select(Pool).where(Pool.facility_id == scope.facility_id).order_by(Pool.id)
        )
        return list(rows.all())


async def get_facility(db: Database, scope: LinkScope) -> Facility:
    async with db.read() as s:
        fac = await s.get(Facility, scope.facility_id)
    if fac is None:
        raise NotFound("No such facility.")
    return fac


async def _pool_of_scope(db: Database, scope: LinkScope, pool_id: int) -> Pool:
    async with db.read() as s:
        pool = await s.get(Pool, pool_id)
    if pool is None or pool.facility_id != scope.facility_id:
        raise NotFound("No such pool.")  # another facility's pool: as if it did not exist
    return pool


async def get_pool(db: Database, scope: LinkScope, pool_id: int) -> Pool:
    return await _pool_of_scope(db, scope, pool_id)


async def update_counts(
    db: Database,
    scope: LinkScope,
    pool_id: int,
    cmd: AvailabilityUpdate,
    *,
    if_match: int,
    now: datetime,
    expect_held: int | None = None,
) -> Pool:
    """Counts through a link: the same service (and optimistic concurrency) as the staff page,
    limited to the link's facility; the report's source names the link."""
    await _pool_of_scope(db, scope, pool_id)  # a pool never changes facility: no race
    pool = await availability.update_availability(
        db,
        pool_id,
        cmd,
        if_match=if_match,
        expect_held=expect_held,
        actor=scope.actor,
        now=now,
        operator_scope=scope.actor.operator_id,
        source=f"link:{scope.link_id}",
    )
    await _record_action(db, scope, pool, "update", now)
    return pool


async def confirm(
    db: Database, scope: LinkScope, pool_id: int, *, if_match: int | None, now: datetime
) -> Pool:
    """'Still accurate' through a link, limited to the link's facility."""
    await _pool_of_scope(db, scope, pool_id)
    pool = await availability.confirm_still_accurate(
        db,
        pool_id,
        if_match=if_match,
        actor=scope.actor,
        now=now,
        operator_scope=scope.actor.operator_id,
    )
    await _record_action(db, scope, pool, "confirm", now)
    return pool


async def _record_action(
    db: Database, scope: LinkScope, pool: Pool, action: str, now: datetime
) -> None:
    """Which link did it (the availability audit row names the role, not the link)."""
    await _record(db, scope, action, {"poolId": pool.id, "version": pool.version}, now)


def hold_action_audit(scope: LinkScope, hold_ref: str, target: str) -> dict[str, Any]:
    """Which link marked a hold (the hold's own audit row names the role, not the link): the
    entry :func:`placement.holds_service.transition_ex` writes in the move's transaction
    (``also_audit``), so a crash cannot keep the move and lose who made it."""
    return {
        "action": f"staff_link.hold_{target}",
        "object_type": "staff_link",
        "object_id": scope.link_id,
        "facility_id": scope.facility_id,
        "detail": {"hold": hold_ref},
    }


def status_audit(scope: LinkScope) -> dict[str, Any]:
    """Which link reported its facility's location compromised (the status's own audit row
    names the role, not the link): the entry ``registry.set_status`` writes in the change's
    transaction (``also_audit``). No reason here: the status's row keeps it, and the retention
    purge clears it there."""
    return {
        "action": "staff_link.status",
        "object_type": "staff_link",
        "object_id": scope.link_id,
        "facility_id": scope.facility_id,
        "detail": {"to": "location_compromised"},
    }


async def _record(
    db: Database, scope: LinkScope, action: str, detail: dict[str, object], now: datetime
) -> None:
    async with db.write() as s:
        await audit.record(
            s,
            actor=scope.actor,
            at=now,
            action=f"staff_link.{action}",
            object_type="staff_link",
            object_id=scope.link_id,
            facility_id=scope.facility_id,
            detail=detail,
        )
