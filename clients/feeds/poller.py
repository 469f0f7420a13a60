"""Polling one feed: a single-flight claim, a conditional GET with a whole-request timeout,
retries with exponential backoff and jitter, a circuit breaker, then ingest or rejection.

* Single flight: a conditional UPDATE claims the feed row (``claimed_until`` in the past or
  empty) before any request; a second process (or a second scheduler tick) claims nothing.
* Conditional requests: ``If-None-Match`` / ``If-Modified-Since`` from the last *good*
  document. ``304 Not Modified`` is a success that changes no figure but confirms the data is
  still accurate (the mapped pools' data age is refreshed, as a staff "still accurate").
* Retries: connection errors, timeouts, a body cut mid-way, HTTP 5xx and 429 are retried up
  to ``max_retries`` times after ``min(30, 2**n) * U(0.75, 1.25)`` seconds, or after the
  server's ``Retry-After`` when it asks for longer (beyond 30 s: no retry, the next poll comes
  at the interval, or after the ``Retry-After`` when that is later, up to an hour: the feed's
  ``retry_after_until``). A document that arrives but is malformed is not retried: it is
  rejected (nothing written).
* Circuit breaker: after ``failure_threshold`` consecutive failed polls the circuit opens and
  the feed is not requested for ``cooldown_seconds``; then one trial request (half-open, no
  retries) closes it on success or re-opens it on failure.
* Secrets: failure reasons are built here from status codes and exception types, never from
  exception messages or bodies (which may echo a URL or token). Logs carry the feed name and
  reason only.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx
import structlog
from sqlalchemy import or_, select, update

from capacity.clock import Clock
from capacity.crypto import AddressCipher, AddressKeyError
from capacity.db import Database
from capacity.leases import HOLDER
from capacity.models import Feed
from capacity.settings import Settings
from clients import outbound
from clients.feeds import ingest as ingest_mod
from clients.feeds.base import MAX_BODY_BYTES, FeedRejected
from clients.feeds.registry import ADAPTERS
from clients.feeds.service import auth_headers, auth_params, unseal, with_poll

log = structlog.get_logger("abri.feeds")

USER_AGENT = "Abri-feeds/1 (+emergency shelter capacity)"
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
JITTER = 0.25
#: Longest ``Retry-After`` that pushes a feed's next scheduled poll back: a partner asking for
#: a day (a misconfigured maintenance page) is still asked again within the hour.
RETRY_AFTER_MAX_S = 3600.0

Outcome = Literal["ok", "not_modified", "failed", "skipped", "circuit_open"]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class PollReport:
    outcome: Outcome
    reason: str | None = None
    attempts: int = 0
    delays: list[float] = field(default_factory=list)
    updated: int = 0
    confirmed: int = 0
    skipped_older: int = 0  # pools left alone: the document is older than their last update
    circuit: str | None = None
    retry_after: float | None = None  # seconds the server asked for on the failed last try


class FetchFailed(Exception):
    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        contacted: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.contacted = contacted
        self.retry_after = retry_after  # seconds the server asked for (``Retry-After``)


def retry_after_seconds(raw: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delay-seconds or an HTTP date); None if absent or
    unreadable."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        return float(min(int(raw), 86_400))
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), 86_400.0))


@dataclass(frozen=True)
class Fetched:
    status: int  # 200 or 304
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (1-based): exponential, capped, with +-25% jitter."""
    base = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


async def fetch_once(
    http: httpx.AsyncClient,
    feed: Feed,
    headers: dict[str, str],
    timeout_s: float,
    params: dict[str, str] | None = None,
) -> Fetched:
    """One GET with a hard deadline for the whole exchange (connect to last byte)."""
    why = await outbound.resolved_refusal(feed.url)
    if why is not None:
        raise FetchFailed(f"refused: {why}", transient=False, contacted=False)
    try:
        async with asyncio.timeout(timeout_s):
            async with http.stream(
                "GET",
                # the URL's own query kept, the credentials' parameters added
                httpx.URL(feed.url).copy_merge_params(params) if params else feed.url,
                headers=headers,
                timeout=httpx.Timeout(timeout_s),
                follow_redirects=False,
            ) as resp:
                if resp.status_code == 304:
                    return Fetched(status=304)
                if resp.status_code != 200:
                    status = resp.status_code
                    transient = status >= 500 or status in (408, 429)
                    wait = retry_after_seconds(resp.headers.get("retry-after"))
                    hint = {401: " (credentials refused)", 403: " (access refused)"}.get(
                        status, " (redirects are not followed)" if 300 <= status < 400 else ""
                    )
                    if transient and wait is not None:
                        hint = f" (Retry-After {wait:g} s)"
                    raise FetchFailed(
                        f"HTTP {status}{hint}",
                        transient=transient,
                        contacted=True,
                        retry_after=wait,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise FetchFailed(
                            "document larger than the 5 MB limit", transient=False, contacted=True
                        )
                    chunks.append(chunk)
                return Fetched(
                    status=200,
                    body=b"".join(chunks),
                    etag=resp.headers.get("etag"),
                    last_modified=resp.headers.get("last-modified"),
                )
    except FetchFailed:
        raise
    except (TimeoutError, httpx.TimeoutException):
        raise FetchFailed(
            f"timed out after {timeout_s:g}s", transient=True, contacted=False
        ) from None
    except httpx.ConnectError as exc:
        if str(exc).startswith(outbound.REFUSED_PREFIX):  # checked again at connection time
            raise FetchFailed(str(exc), transient=False, contacted=False) from None
        raise _connect_failure(exc) from None
    except (httpx.RemoteProtocolError, httpx.ReadError):
        raise FetchFailed(
            "connection closed mid-response (truncated body)", transient=True, contacted=True
        ) from None
    except httpx.HTTPError as exc:
        raise FetchFailed(
            f"HTTP client error ({type(exc).__name__})", transient=True, contacted=False
        ) from None


def _connect_failure(exc: BaseException) -> FetchFailed:
    """Why the connection failed, from the exception types in its chain (never their
    messages): what an admin fixes differs for a certificate, a name and a closed port."""
    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return FetchFailed(
                "TLS certificate not trusted (self-signed, expired, or issued for another "
                "host name)",
                transient=False,
                contacted=True,
            )
        if isinstance(cur, ssl.SSLError):
            return FetchFailed("TLS handshake failed", transient=False, contacted=True)
        if isinstance(cur, socket.gaierror):
            return FetchFailed(
                "the host name does not resolve (DNS)", transient=True, contacted=False
            )
        cur = cur.__cause__ or cur.__context__
    return FetchFailed("connection refused or unreachable", transient=True, contacted=False)


async def _claim(db: Database, feed_id: int, *, now: datetime, force: bool, seconds: int) -> bool:
    q = (
        update(Feed)
        .where(
            Feed.id == feed_id,
            Feed.enabled.is_(True),
            or_(Feed.claimed_until.is_(None), Feed.claimed_until <= now),
        )
        .values(claimed_by=HOLDER, claimed_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    if not force:
        q = q.where(Feed.next_poll_at <= now)
    async with db.write() as s:
        return (await s.execute(q)).rowcount == 1


async def _finish(db: Database, feed_id: int, values: dict[str, object]) -> None:
    async with db.write() as s:
        await s.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.claimed_by == HOLDER)
            .values(claimed_by=None, claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )


async def poll_feed(
    db: Database,
    feed_id: int,
    *,
    cipher: AddressCipher,
    clock: Clock,
    settings: Settings | None = None,
    http: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    force: bool = False,
) -> PollReport:
    """Poll one feed if it is due (``force``: now, and a trial request if the circuit is
    open). Never raises for a feed's fault; the outcome is on the feed row and returned."""
    rng = rng or random.Random()
    now = clock.now()
    async with db.read() as s:
        feed = await s.get(Feed, feed_id)
    if feed is None or not feed.enabled:
        return PollReport("skipped", reason="no such feed or disabled")
    trial = False
    if feed.circuit != "closed":
        opened = feed.circuit_opened_at or now
        if not force and now < opened + timedelta(seconds=feed.cooldown_seconds):
            return PollReport("circuit_open", circuit="open")
        trial = True  # half-open: one request, no retries
    # "poll now" is an admin waiting for the answer (behind a proxy's read timeout): one try
    attempts_allowed = 1 if trial or force else 1 + feed.max_retries
    budget = attempts_allowed * (feed.timeout_seconds + BACKOFF_MAX_S) + 60
    if not await _claim(db, feed_id, now=now, force=force, seconds=int(budget)):
        return PollReport("skipped", reason="not due or being polled elsewhere")
    if trial:
        await _finish_claimless_circuit(db, feed_id)
    report = await _poll_claimed(
        db,
        feed,
        cipher=cipher,
        clock=clock,
        http=http,
        sleep=sleep,
        rng=rng,
        attempts_allowed=attempts_allowed,
        trial=trial,
    )
    if report.outcome == "ok" and report.updated and settings is not None:
        from placement import standing_service

        await standing_service.run_round(db, settings, now=clock.now())  # freed: next in line
    return report


async def _finish_claimless_circuit(db: Database, feed_id: int) -> None:
    async with db.write() as s:
        await s.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.claimed_by == HOLDER)
            .values(circuit="half_open")
            .execution_options(synchronize_session=False)
        )


async def _poll_claimed(
    db: Database,
    feed: Feed,
    *,
    cipher: AddressCipher,
    clock: Clock,
    http: httpx.AsyncClient | None,
    sleep: Sleep,
    rng: random.Random,
    attempts_allowed: int,
    trial: bool,
) -> PollReport:
    adapter = ADAPTERS.get(feed.format)
    headers = {"User-Agent": USER_AGENT, "Accept": adapter.ACCEPT if adapter else "*/*"}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    params: dict[str, str] = {}
    report = PollReport("failed")
    contacted = False
    fetched: Fetched | None = None
    own_http = http is None
    client = http or outbound.guarded_client()
    try:
        if adapter is None:
            raise FetchFailed(f"unknown format {feed.format!r}", transient=False, contacted=False)
        if feed.credentials_ciphertext:
            try:
                creds = unseal(cipher, feed.credentials_ciphertext)
            except AddressKeyError:
                raise FetchFailed(
                    "the feed's credentials cannot be decrypted with this process's "
                    "ABRI_ADDRESS_KEY (every process needs the key they were registered with)",
                    transient=False,
                    contacted=False,
                ) from None
            headers.update(auth_headers(creds))
            params.update(auth_params(creds))
        for attempt in range(1, attempts_allowed + 1):
            report.attempts = attempt
            try:
                fetched = await fetch_once(
                    client, feed, headers, float(feed.timeout_seconds), params
                )
                contacted = True
                break
            except FetchFailed as exc:
                contacted = contacted or exc.contacted
                report.reason = exc.reason
                if not exc.transient or attempt == attempts_allowed:
                    raise
                delay = backoff_delay(attempt, rng)
                if exc.retry_after is not None and exc.retry_after > delay:
                    # The server said when to come back (maintenance, a rate limit): asking
                    # again sooner only earns another refusal. Beyond what this poll's
                    # retries would wait, the next poll comes at the feed's interval.
                    if exc.retry_after > BACKOFF_MAX_S:
                        raise
                    delay = exc.retry_after
                report.delays.append(delay)
                await sleep(delay)
        assert fetched is not None
        now = clock.now()
        if fetched.status == 304:
            report.confirmed = await ingest_mod.confirm_unchanged(db, feed.id, now=now)
            report.outcome, report.reason = "not_modified", None
        else:
            readings = adapter.parse(fetched.body)
            result = await ingest_mod.ingest(db, feed.id, readings, now=now)
            report.outcome, report.reason = "ok", None
            report.updated, report.confirmed = result.updated, result.confirmed
            report.skipped_older = result.skipped_older
    except FetchFailed as exc:
        report.outcome, report.reason = "failed", exc.reason
        report.retry_after = exc.retry_after if exc.transient else None
    except FeedRejected as exc:
        report.outcome, report.reason = "failed", f"document rejected: {exc.reason}"
    except Exception as exc:  # a bug or the database: never the feed's secrets in the reason
        report.outcome, report.reason = "failed", f"internal error ({type(exc).__name__})"
        log.error("feed_poll_error", feed=feed.name, error_type=type(exc).__name__)
    finally:
        if own_http:
            await client.aclose()
    await _record(
        db, feed, report, fetched=fetched, contacted=contacted, now=clock.now(), trial=trial
    )
    return report


async def _record(
    db: Database,
    feed: Feed,
    report: PollReport,
    *,
    fetched: Fetched | None,
    contacted: bool,
    now: datetime,
    trial: bool,
) -> None:
    values: dict[str, object] = {"last_attempt_at": now, "updated_at": now}
    values["recent_polls"] = with_poll(feed, now=now, failed=report.outcome == "failed")
    if contacted:
        values["last_contact_at"] = now
    if report.outcome in ("ok", "not_modified"):
        values.update(
            last_success_at=now,
            consecutive_failures=0,
            circuit="closed",
            circuit_opened_at=None,
            next_poll_at=now + timedelta(seconds=feed.interval_seconds),
            retry_after_until=None,
        )
        if report.outcome == "ok" and fetched is not None:
            values.update(etag=fetched.etag, last_modified=fetched.last_modified)
        if report.outcome == "ok":  # a 304 is the same document: the count stands
            all_older = report.skipped_older and not (report.updated or report.confirmed)
            values["polls_all_older"] = feed.polls_all_older + 1 if all_older else 0
        report.circuit = "closed"
        log.info(
            "feed_polled",
            feed=feed.name,
            outcome=report.outcome,
            updated=report.updated,
            confirmed=report.confirmed,
            skipped_older=report.skipped_older,
            attempts=report.attempts,
        )
    else:
        failures = feed.consecutive_failures + 1
        values.update(consecutive_failures=failures, last_error=report.reason, last_error_at=now)
        opens = trial or failures >= feed.failure_threshold
        wait = feed.cooldown_seconds if opens else feed.interval_seconds
        next_poll = now + timedelta(seconds=wait)
        # The server said when to come back: a scheduled poll sooner only earns another refusal.
        asked = None
        if report.retry_after:
            asked = now + timedelta(seconds=min(report.retry_after, RETRY_AFTER_MAX_S))
            asked = asked if asked > next_poll else None  # shown only when it pushes back
        values.update(next_poll_at=asked or next_poll, retry_after_until=asked)
        if opens:
            values.update(circuit="open", circuit_opened_at=now)
            report.circuit = "open"
        else:
            report.circuit = "closed"
        log.warning(
            "feed_failed",
            feed=feed.name,
            reason=report.reason,
            consecutive_failures=failures,
            circuit=report.circuit,
            attempts=report.attempts,
        )
    await _finish(db, feed.id, values)


async def poll_due(
    db: Database,
    *,
    cipher: AddressCipher,
    clock: Clock,
    settings: Settings | None = None,
    http: httpx.AsyncClient | None = None,
    concurrency: int = 4,
) -> int:
    """Poll every enabled feed whose time has come; returns how many were polled."""
    now = clock.now()
    async with db.read() as s:
        ids = list(
            (
                await s.scalars(
                    select(Feed.id)
                    .where(
                        Feed.enabled.is_(True),
                        Feed.next_poll_at <= now,
                        or_(Feed.claimed_until.is_(None), Feed.claimed_until <= now),
                    )
                    .order_by(Feed.next_poll_at)
                    .limit(50)
                )
            ).all()
        )
    if not ids:
        return 0
    gate = asyncio.Semaphore(concurrency)
    own_http = http is None
    client = http or outbound.guarded_client()

    async def one(fid: int) -> PollReport:
        async with gate:
            return await poll_feed(
                db, fid, cipher=cipher, clock=clock, settings=settings, http=client
            )

    try:
        reports = await asyncio.gather(*(one(i) for i in ids))
    finally:
        if own_http:
            await client.aclose()
    return sum(1 for r in reports if r.outcome not in ("skipped", "circuit_open"))
