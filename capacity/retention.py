"""Retention: personal data is kept only as long as needed (DESIGN invariant 8, R26).

After ``ABRI_RETENTION_DAYS`` (default 90), a scheduled purge reduces what is left to
statistics:

* holds that ended (released, declined, expired, no-show, departed) — or arrived that long
  ago — lose their household composition, callback contact and free-text close reason, and
  what could tie them back to the requester's own case: the ``Idempotency-Key`` (requesters'
  systems may send their case number; it becomes ``#purged:<ref>``), the request hash (a hash of
  the household and callback) and the token used; the episode hash (of the requester's
  ``episodeToken``) becomes a random mark shared by that episode's holds, so the household is
  still counted once; their state, units, need, requester kind, dates and task-force segments
  (undocumented / with children / no income, no identity) stay, so counts and trends survive;
* standing requests that closed lose their callback, key and request hash (their search data
  went when they closed);
* audit entries keep who, what, when and which object, but lose their ``detail`` (which can hold
  a decline reason written by a person); alerts likewise lose the reason their message quoted
  (a "location compromised" reason may name the resident whose ex-partner found the place):
  which place, when and who acknowledged it stay;
* searches that found no place lose their episode hash (a hash of the requester's operator and
  the ``episodeToken`` it chose, which may be a case number): it only serves to count one
  household once while it is being searched for; area, shape, need and reasons stay;
* live-stream events and delivered webhook messages older than that are deleted (but the
  newest webhook message, whose id must never be given again);
* one-time staff links that expired that long ago lose their label (a coordinator writes
  "Night: Sarah" there); which facility, when and whether it was opened stay;
* signed-out web sessions are forgotten once their cookies would have expired anyway.

Idempotent: a second run finds nothing left to reduce. (JSON columns are cleared to SQL NULL
with ``null()``; a Python ``None`` would store a JSON ``null`` that ``IS NOT NULL`` still sees.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, literal, null, or_, select, update

from capacity.db import Database
from capacity.models import (
    Alert,
    AuditEntry,
    EndedWebSession,
    Event,
    Hold,
    OutboxMessage,
    StaffLink,
    StandingRequest,
    UnmetDemand,
)

ENDED = ("released", "declined", "expired", "no_show", "departed")
PURGED_EPISODE = "#"  # the mark that replaces a purged episode hash starts with it
#: What ``registry.set_status`` puts between an alert's fixed text and the reason it quotes.
ALERT_REASON = " Reason: "


@dataclass(frozen=True)
class Purged:
    holds: int
    standing_requests: int
    audit_entries: int
    events: int
    outbox: int
    web_sessions: int = 0
    unmet_episodes: int = 0
    alerts: int = 0
    staff_links: int = 0


async def purge(db: Database, *, now: datetime, days: int) -> Purged:
    cutoff = now - timedelta(days=days)
    ended_long_ago = or_(
        and_(Hold.state.in_(ENDED), Hold.closed_at <= cutoff),
        and_(Hold.state == "departed", Hold.departed_at <= cutoff),
        and_(Hold.state == "arrived", Hold.arrived_at <= cutoff),
    )
    async with db.write() as s:
        # A hold's episode hash (of the requester's token) becomes a random mark shared by all
        # the holds of that episode: the task force still counts the household once, but
        # nothing ties the holds to the requester's token any longer.
        due = (
            await s.scalars(
                select(Hold.episode_hash)
                .where(ended_long_ago, Hold.episode_hash.not_like(f"{PURGED_EPISODE}%"))
                .distinct()
            )
        ).all()
        if due:
            table = Hold.__table__  # Core: one UPDATE run for each episode
            await s.execute(
                update(table)
                .where(table.c.episode_hash == bindparam("old"))
                .values(episode_hash=bindparam("new")),
                [{"old": e, "new": PURGED_EPISODE + secrets.token_hex(12)} for e in due],
            )
        holds = await s.execute(
            update(Hold)
            .where(
                or_(
                    Hold.household.is_not(None),
                    Hold.callback.is_not(None),
                    Hold.request_hash != "",
                ),
                ended_long_ago,
            )
            .values(
                household=null(),
                callback=None,
                close_reason=None,
                # unique as the key must be, and in a form no requester's key can take (the
                # header allows no "#"), so no key sent in advance can block the purge
                idempotency_key=literal("#purged:") + Hold.ref,
                request_hash="",
                requester_token_id=None,
                household_key=None,
            )
            .execution_options(synchronize_session=False)
        )
        standing = await s.execute(
            update(StandingRequest)
            .where(
                StandingRequest.state != "waiting",
                StandingRequest.closed_at <= cutoff,
                or_(
                    StandingRequest.callback.is_not(None),
                    StandingRequest.search.is_not(None),
                    StandingRequest.idempotency_key.is_not(None),
                    StandingRequest.request_hash.is_not(None),
                ),
            )
            .values(callback=None, search=null(), idempotency_key=None, request_hash=None)
            .execution_options(synchronize_session=False)
        )
        audits = await s.execute(
            update(AuditEntry)
            .where(AuditEntry.at <= cutoff, AuditEntry.detail.is_not(None))
            .values(detail=null())
            .execution_options(synchronize_session=False)
        )
        episodes = await s.execute(
            update(UnmetDemand)
            .where(UnmetDemand.at <= cutoff, UnmetDemand.episode_hash.is_not(None))
            .values(episode_hash=None)
            .execution_options(synchronize_session=False)
        )
        # An alert quotes the free-text reason its audit entry kept in ``detail`` (cleared
        # above): the text up to it stays. Few rows (one per place reported compromised).
        quoting = (
            await s.execute(
                select(Alert.id, Alert.message).where(
                    Alert.at <= cutoff, Alert.message.contains(ALERT_REASON, autoescape=True)
                )
            )
        ).all()
        for alert_id, message in quoting:
            await s.execute(
                update(Alert)
                .where(Alert.id == alert_id)
                .values(message=message.partition(ALERT_REASON)[0])
                .execution_options(synchronize_session=False)
            )
        events = await s.execute(delete(Event).where(Event.at <= cutoff))
        # The newest message stays, whatever its age: its id is the ``Abri-Delivery`` receivers
        # de-duplicate on, and SQLite (no AUTOINCREMENT) would give the highest deleted id again.
        newest = select(func.max(OutboxMessage.id)).scalar_subquery()
        outbox = await s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.created_at <= cutoff,
                or_(OutboxMessage.delivered_at.is_not(None), OutboxMessage.failed_at.is_not(None)),
                OutboxMessage.id < newest,
            )
        )
        sessions = await s.execute(delete(EndedWebSession).where(EndedWebSession.until <= now))
        links = await s.execute(
            update(StaffLink)
            .where(StaffLink.expires_at <= cutoff, StaffLink.label != "")
            .values(label="")
            .execution_options(synchronize_session=False)
        )
    return Purged(
        holds.rowcount,
        standing.rowcount,
        audits.rowcount,
        events.rowcount,
        outbox.rowcount,
        sessions.rowcount,
        episodes.rowcount,
        len(quoting),
        links.rowcount,
    )
