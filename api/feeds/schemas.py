"""Admin feed types. Requests reuse the service's commands; no response carries credentials
(only whether some are set)."""

from __future__ import annotations

from datetime import datetime

from api.schemas import Out
from capacity.models import Feed
from clients.feeds.service import (
    BasicAuth,
    BearerAuth,
    FeedCreate,
    FeedUpdate,
    FeedView,
    HeaderAuth,
    MappingEntry,
    QueryAuth,
    recent_polls,
    shown_url,
)

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "FeedCreate",
    "FeedHealth",
    "FeedRead",
    "FeedUpdate",
    "FeedWarning",
    "HeaderAuth",
    "MappingEntry",
    "PollResult",
    "QueryAuth",
    "feed_read",
]

#: Valid on the demo data (``abri serve --demo``): its hotel partner and that hotel's two pools.
FEED_EXAMPLE = {
    "name": "hotel-niv-20",
    "operator": "Hotel Partners Belgium",
    "url": "https://pms.example-hotel.be/abri/inventory",
    "format": "json_inventory",
    "mapping": [
        {"feedId": "DBL", "poolId": 27, "countsHoldsAsOccupied": True},
        {"feedId": "FAM", "poolId": 28},
    ],
    "intervalSeconds": 300,
    "credentials": {"type": "bearer", "token": "partner-issued-token"},
}


class MappingRead(Out, kw_only=True):
    feed_id: str
    pool_id: int
    counts_holds_as_occupied: bool


#: Polls in a row applying nothing, every entry older than its pool's data, before a warning:
#: one or two happen when staff update a pool just after the partner's export ran.
ALL_OLDER_WARN = 3


class MissingPool(Out, kw_only=True):
    feed_id: str
    pool_id: int


class FeedWarning(Out, kw_only=True):
    """Something an admin should look at on a feed that still polls successfully. ``code``
    never changes: ``pools-missing-from-document``, ``documents-older-than-pools`` (the last
    ``ALL_OLDER_WARN`` or more documents in a row applied nothing, every entry being stamped
    older than its pool's last update)."""

    code: str
    detail: str


class FeedHealth(Out, kw_only=True):
    """``healthy``: the last poll succeeded. ``circuit``: closed (polling normally), open
    (a dead feed, not requested until ``nextPollAt``), half_open (one trial request).
    ``alerting``: the feed needs an admin — more than half of its polls in the last 15 minutes
    (three intervals for a feed polled less often) failed, at least two, or its circuit is open;
    a success in between does not reset it (``pollsLast15Min``, ``failedPollsLast15Min``).
    ``retryAfterUntil``: the partner's server answered the last poll with a ``Retry-After``
    (at most an hour is honoured): no scheduled poll before then (null once that time
    has passed). ``missingFromDocument``:
    mapped identifiers the last document applied did not mention
    (their pools keep their figures and go stale on schedule). ``warnings``: what to look at
    even though the feed is healthy."""

    healthy: bool
    last_success_at: datetime | None
    last_contact_at: datetime | None
    last_attempt_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    circuit: str
    next_poll_at: datetime | None
    alerting: bool
    polls_last15_min: int
    failed_polls_last15_min: int
    retry_after_until: datetime | None
    missing_from_document: list[MissingPool]
    warnings: list[FeedWarning]


class FeedRead(Out, kw_only=True):
    id: int
    name: str
    source: str
    operator_id: int
    operator: str
    url: str
    format: str
    mapping: list[MappingRead]
    enabled: bool
    interval_seconds: int
    timeout_seconds: int
    max_retries: int
    failure_threshold: int
    cooldown_seconds: int
    has_credentials: bool
    created_at: datetime
    updated_at: datetime
    health: FeedHealth


class PollResult(Out, kw_only=True):
    """``updated``: pools whose figures changed; ``confirmed``: pools whose figures were the
    same (still accurate); ``skippedOlder``: pools left alone because the document is stamped
    older than their last update (a staff update since wins)."""

    outcome: str
    reason: str | None
    attempts: int
    updated: int
    confirmed: int
    skipped_older: int
    feed: FeedRead


def _missing(f: Feed) -> list[MissingPool]:
    pool_of = {str(m["feedId"]): int(m["poolId"]) for m in f.mapping}
    return [
        MissingPool(feed_id=fid, pool_id=pool_of[fid])
        for fid in f.missing_feed_ids or ()
        if fid in pool_of
    ]


def feed_warnings(f: Feed) -> list[FeedWarning]:
    """The feed's warnings, worded for an admin (the API, ``abri feeds list``)."""
    out = []
    missing = _missing(f)
    if missing:
        named = ", ".join(f"{m.feed_id!r} (pool {m.pool_id})" for m in missing)
        out.append(
            FeedWarning(
                code="pools-missing-from-document",
                detail=f"The last document did not mention {named}: their figures are left as "
                "they were and go stale on schedule. Ask the partner whether they were "
                "renamed or taken out of the export, or take them out of the mapping.",
            )
        )
    if f.polls_all_older >= ALL_OLDER_WARN:
        out.append(
            FeedWarning(
                code="documents-older-than-pools",
                detail=f"The last {f.polls_all_older} documents applied nothing: each entry was "
                "stamped older than its pool's last update (a staff update, or the pool's "
                "registration), and newer data wins. Check the time the document gives "
                "(generatedAt, updated_at, LastUpdateTime): an export job that stopped, or "
                "a clock or time zone that is off.",
            )
        )
    return out


def feed_read(v: FeedView, *, now: datetime) -> FeedRead:
    f = v.feed
    recent = recent_polls(f, now=now)
    return FeedRead(
        id=f.id,
        name=f.name,
        source=f"feed:{f.name}",
        operator_id=f.operator_id,
        operator=v.operator,
        url=shown_url(f.url),
        format=f.format,
        mapping=[
            MappingRead(
                feed_id=str(m["feedId"]),
                pool_id=int(m["poolId"]),
                counts_holds_as_occupied=bool(m.get("countsHoldsAsOccupied", False)),
            )
            for m in f.mapping
        ],
        enabled=f.enabled,
        interval_seconds=f.interval_seconds,
        timeout_seconds=f.timeout_seconds,
        max_retries=f.max_retries,
        failure_threshold=f.failure_threshold,
        cooldown_seconds=f.cooldown_seconds,
        has_credentials=f.credentials_ciphertext is not None,
        created_at=f.created_at,
        updated_at=f.updated_at,
        health=FeedHealth(
            healthy=f.consecutive_failures == 0 and f.last_success_at is not None,
            last_success_at=f.last_success_at,
            last_contact_at=f.last_contact_at,
            last_attempt_at=f.last_attempt_at,
            last_error_at=f.last_error_at,
            last_error=f.last_error,
            consecutive_failures=f.consecutive_failures,
            circuit=f.circuit,
            next_poll_at=f.next_poll_at if f.enabled else None,
            alerting=recent.alerting,
            polls_last15_min=recent.total,
            failed_polls_last15_min=recent.failed,
            # a wait that is over is no longer shown (the next poll clears it)
            retry_after_until=(
                f.retry_after_until
                if f.retry_after_until is not None and f.retry_after_until > now
                else None
            ),
            missing_from_document=_missing(f),
            warnings=feed_warnings(f),
        ),
    )
