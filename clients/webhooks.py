"""Webhooks: a requester operator's own system is told what happened to its holds.

The hold service writes an outbox row in the same transaction as the hold change (declined,
expired, no-show, arrived, released by an admin; ``reason`` a stable code, never the staff's
words) when the requester operator has a registered endpoint. This module delivers those
rows: at least once, signed, retried with exponential backoff and jitter, given up (and shown
to admins) after ``max_attempts``. Abri never sends anything to the person placed.

Signing (``v1``): ``hex(hmac_sha256(secret, f"{timestamp}.{raw_body}"))`` in the
``Abri-Signature: v1=<hex>`` header, the unix time in ``Abri-Timestamp``; receivers check it with
:func:`verify_signature` and de-duplicate on ``Abri-Delivery`` (the outbox id).

Claiming is safe with several workers: one write transaction selects due rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE) and claims them with a
conditional UPDATE that bumps ``attempts`` and moves ``next_attempt_at`` forward by a lease. A
second worker's identical UPDATE re-checks ``next_attempt_at <= now`` and claims nothing. The
claimed ``attempts`` value is the claim token: an outcome is only recorded if it still matches.
If a worker dies mid-flight the lease runs out and the row is due again.

Logs carry ids and outcomes only: never the secret, the URL, the body or the response.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import msgspec
import structlog
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.crypto import AddressCipher, AddressKeyError
from capacity.db import Database
from capacity.errors import Conflict, InvalidInput, NotFound
from capacity.models import Operator, OutboxMessage, WebhookEndpoint
from capacity.registry import ROLE_KINDS
from clients import outbound
from ops.scheduler import JobContext, job

log = structlog.get_logger("abri.webhooks")

SIGNATURE_VERSION = "v1"
HEADER_TIMESTAMP = "Abri-Timestamp"
HEADER_SIGNATURE = "Abri-Signature"
HEADER_EVENT = "Abri-Event"
HEADER_DELIVERY = "Abri-Delivery"
SECRET_PREFIX = "whsec_"
#: The only payload keys ever sent (an allow-list: no household, no callback, no address).
PAYLOAD_KEYS = ("event", "ref", "state", "holdRef", "reason", "at")
#: Operator kinds that can place holds (helpline, police or admin tokens), so can get webhooks.
REQUESTER_KINDS = ROLE_KINDS["helpline"] | ROLE_KINDS["police"] | ROLE_KINDS["admin"]
MAX_URL_LENGTH = 500

OutboxStatus = Literal["pending", "delivered", "failed"]


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry schedule and limits. The delay before attempt n+1 is
    ``min(max_delay_s, base_delay_s * 2**(n-1))`` times a random factor in ``1 ± jitter``."""

    max_attempts: int = 8
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    jitter: float = 0.25
    timeout_s: float = 10.0  # whole request, connect to status line
    lease_s: float = 120.0  # a claimed row is due again after this if its worker died
    batch: int = 50
    concurrency: int = 8
    max_batches: int = 20  # per run; the next run continues

    def backoff(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        base = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return timedelta(seconds=base * factor)


DEFAULT_POLICY = DeliveryPolicy()


# --------------------------------------------------------------------------- signing


def new_secret() -> str:
    """A fresh signing secret (shown once to the admin, stored encrypted)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """``v1=<hex hmac_sha256(secret, f"{timestamp}.{body}")>``."""
    mac = hmac.new(secret.encode(), f"{int(timestamp)}.".encode() + _as_bytes(body), "sha256")
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(
    secret: str, *, body: bytes, event: str, delivery_id: int, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Abri-Webhooks/1",
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: sign(secret, timestamp, body),
        HEADER_EVENT: event,
        HEADER_DELIVERY: str(delivery_id),
    }


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    now: datetime | float,
    tolerance_s: int = 300,
) -> bool:
    """For receivers: True if ``signature`` (the ``Abri-Signature`` header, which may list
    several ``v1=`` values separated by commas or spaces) matches ``body`` signed at
    ``timestamp`` (the ``Abri-Timestamp`` header) and the timestamp is within ``tolerance_s``
    of ``now`` (replay protection). Compare against the raw body bytes, before JSON parsing."""
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(now_s - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    candidates = [c for c in signature.replace(",", " ").split() if c]
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)


# --------------------------------------------------------------------------- secret at rest


def seal_secret(cipher: AddressCipher, secret: str) -> str:
    """Encrypt the signing secret with the at-rest key (Fernet, same keys and rotation as
    addresses; ``abri keys rotate`` re-encrypts it too)."""
    return cipher.encrypt_text(secret)


def open_secret(cipher: AddressCipher, ciphertext: str) -> str:
    try:
        return cipher.decrypt_text(ciphertext)
    except AddressKeyError as exc:
        raise AddressKeyError("The webhook secret cannot be decrypted with the key.") from exc


# --------------------------------------------------------------------------- URL


def validate_url(raw: str) -> str:
    """An absolute http(s) URL with a host and no credentials; 422 otherwise."""
    url = (raw or "").strip()

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"The webhook URL {why}.", field="url")

    if not url:
        raise bad("is empty")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise bad("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad("is not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise bad("must start with http:// or https://")
    if not parts.hostname:
        raise bad("has no host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise bad("must not carry a user name or password (the signature authenticates Abri)")
    if port == 0:
        raise bad("has an invalid port")
    why = outbound.literal_refusal(parts.hostname)
    if why is not None:
        raise bad(why)
    if parts.fragment:
        raise bad("must not have a #fragment")
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise bad("is not a valid URL") from exc
    return url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --------------------------------------------------------------------------- admin services


@dataclass(frozen=True)
class EndpointView:
    """What admins see of an endpoint: never the secret."""

    operator_id: int
    operator: str
    url: str
    created_at: datetime
    pending: int
    delivered: int
    failed: int
    last_delivered_at: datetime | None
    last_failed_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class OutboxView:
    id: int
    operator_id: int
    operator: str | None
    event: str
    ref: str | None
    state: str | None
    status: OutboxStatus
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


async def _operator(s: AsyncSession, operator: int | str) -> Operator:
    q = select(Operator)
    q = (
        q.where(Operator.id == operator)
        if isinstance(operator, int)
        else q.where(Operator.name == operator.strip())
    )
    op = await s.scalar(q)
    if op is None:
        raise NotFound("No such operator.", field="operator")
    return op


async def set_endpoint(
    db: Database,
    *,
    operator: int | str,
    url: str,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    rotate_secret: bool = False,
) -> tuple[EndpointView, str | None]:
    """Register (or change) an operator's webhook URL. Returns the view and the new secret in
    clear when one was generated (first registration, or ``rotate_secret``), else None."""
    url = validate_url(url)
    try:
        return await _set_endpoint(
            db,
            operator=operator,
            url=url,
            actor=actor,
            now=now,
            cipher=cipher,
            rotate_secret=rotate_secret,
        )
    except IntegrityError as exc:  # two first registrations at once: one won
        raise Conflict("The webhook was registered meanwhile; try again.") from exc


async def _set_endpoint(
    db: Database,
    *,
    operator: int | str,
    url: str,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    rotate_secret: bool,
) -> tuple[EndpointView, str | None]:
    async with db.write() as s:
        op = await _operator(s, operator)
        if op.kind not in REQUESTER_KINDS:
            raise InvalidInput(
                f"Operators of kind {op.kind!r} place no holds, so get no webhooks.",
                field="operator",
            )
        row = await s.get(WebhookEndpoint, op.id, with_for_update=not db.sqlite)
        secret: str | None = None
        if row is None:
            secret = new_secret()
            s.add(
                WebhookEndpoint(
                    operator_id=op.id,
                    url=url,
                    secret_ciphertext=seal_secret(cipher, secret),
                    created_at=now,
                )
            )
            action = "webhook.create"
        else:
            row.url = url
            if rotate_secret:
                secret = new_secret()
                row.secret_ciphertext = seal_secret(cipher, secret)
            action = "webhook.rotate" if rotate_secret else "webhook.update"
        await s.flush()
        await audit.record(
            s,
            actor=actor,
            at=now,
            action=action,
            object_type="webhook",
            object_id=op.id,
            detail={"origin": _origin(url), "secretIssued": secret is not None},
        )
        op_id = op.id
    # No log line here: the audit row records it, and the CLI keeps stdout for the secret.
    return await get_endpoint(db, op_id), secret


def _stats_columns() -> tuple[Any, ...]:
    delivered = OutboxMessage.delivered_at.is_not(None)
    failed = OutboxMessage.failed_at.is_not(None)
    return (
        func.coalesce(func.sum(case((delivered, 0), (failed, 0), else_=1)), 0),
        func.coalesce(func.sum(case((delivered, 1), else_=0)), 0),
        func.coalesce(func.sum(case((failed, 1), else_=0)), 0),
        func.max(OutboxMessage.delivered_at),
        func.max(OutboxMessage.failed_at),
    )


async def _view(s: AsyncSession, ep: WebhookEndpoint, op_name: str) -> EndpointView:
    stats = (
        await s.execute(
            select(*_stats_columns()).where(OutboxMessage.operator_id == ep.operator_id)
        )
    ).one()
    last_error = await s.scalar(
        select(OutboxMessage.last_error)
        .where(
            OutboxMessage.operator_id == ep.operator_id,
            OutboxMessage.last_error.is_not(None),
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    return EndpointView(
        operator_id=ep.operator_id,
        operator=op_name,
        url=ep.url,
        created_at=ep.created_at,
        pending=int(stats[0]),
        delivered=int(stats[1]),
        failed=int(stats[2]),
        last_delivered_at=stats[3],
        last_failed_at=stats[4],
        last_error=last_error,
    )


async def get_endpoint(db: Database, operator_id: int) -> EndpointView:
    async with db.read() as s:
        found = (
            await s.execute(
                select(WebhookEndpoint, Operator.name)
                .join(Operator, Operator.id == WebhookEndpoint.operator_id)
                .where(WebhookEndpoint.operator_id == operator_id)
            )
        ).first()
        if found is None:
            raise NotFound("This operator has no webhook.", field="operatorId")
        return await _view(s, found[0], found[1])


async def list_endpoints(db: Database) -> list[EndpointView]:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(WebhookEndpoint, Operator.name)
                .join(Operator, Operator.id == WebhookEndpoint.operator_id)
                .order_by(Operator.name)
            )
        ).all()
        return [await _view(s, ep, name) for ep, name in rows]


async def delete_endpoint(db: Database, *, operator: int | str, actor: Actor, now: datetime) -> int:
    """Remove the endpoint; its undelivered messages are marked failed (nowhere to send them).
    Returns how many were cancelled."""
    async with db.write() as s:
        op = await _operator(s, operator)
        res = await s.execute(
            delete(WebhookEndpoint)
            .where(WebhookEndpoint.operator_id == op.id)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            raise NotFound("This operator has no webhook.", field="operatorId")
        cancelled = await s.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.operator_id == op.id,
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
            )
            .values(failed_at=now, last_error="endpoint removed")
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="webhook.delete",
            object_type="webhook",
            object_id=op.id,
            detail={"cancelled": cancelled.rowcount},
        )
    return int(cancelled.rowcount)


def _status(m: OutboxMessage) -> OutboxStatus:
    if m.delivered_at is not None:
        return "delivered"
    return "failed" if m.failed_at is not None else "pending"


async def list_outbox(
    db: Database,
    *,
    status: OutboxStatus | None = None,
    operator_id: int | None = None,
    limit: int = 100,
) -> list[OutboxView]:
    q = (
        select(OutboxMessage, Operator.name)
        .outerjoin(Operator, Operator.id == OutboxMessage.operator_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    if status == "delivered":
        q = q.where(OutboxMessage.delivered_at.is_not(None))
    elif status == "failed":
        q = q.where(OutboxMessage.failed_at.is_not(None))
    elif status == "pending":
        q = q.where(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
    if operator_id is not None:
        q = q.where(OutboxMessage.operator_id == operator_id)
    async with db.read() as s:
        rows = (await s.execute(q)).all()
    out = []
    for m, name in rows:
        st = _status(m)
        payload = m.payload or {}
        out.append(
            OutboxView(
                id=m.id,
                operator_id=m.operator_id,
                operator=name,
                event=m.event,
                ref=payload.get("ref"),
                state=payload.get("state"),
                status=st,
                created_at=m.created_at,
                attempts=m.attempts,
                next_attempt_at=m.next_attempt_at if st == "pending" else None,
                delivered_at=m.delivered_at,
                failed_at=m.failed_at,
                last_error=m.last_error,
            )
        )
    return out


async def retry_failed(db: Database, *, message_id: int, actor: Actor, now: datetime) -> None:
    """Put a failed delivery back in the queue with a fresh retry schedule."""
    async with db.write() as s:
        m = await s.get(OutboxMessage, message_id)
        if m is None or m.failed_at is None:
            raise NotFound("No such failed delivery.", field="id")
        has_hook = await s.scalar(
            select(WebhookEndpoint.operator_id).where(WebhookEndpoint.operator_id == m.operator_id)
        )
        if has_hook is None:
            raise Conflict("This operator has no webhook any more; register one first.")
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.failed_at.is_not(None))
            .values(failed_at=None, attempts=0, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="webhook.retry",
            object_type="outbox",
            object_id=message_id,
        )


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Claimed:
    id: int
    operator_id: int
    event: str
    payload: dict[str, Any]
    attempts: int  # after the claim: this attempt's number, and the claim token


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed


def _due(now: datetime) -> tuple[Any, ...]:
    return (
        OutboxMessage.delivered_at.is_(None),
        OutboxMessage.failed_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
    )


async def claim_due(
    db: Database, *, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY
) -> tuple[list[Claimed], dict[int, WebhookEndpoint]]:
    """Claim up to ``policy.batch`` due messages for this worker (see module docstring).
    Returns them with the endpoints of their operators."""
    lease_until = now + timedelta(seconds=policy.lease_s)
    async with db.write() as s:
        q = (
            select(OutboxMessage.id)
            .where(*_due(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(policy.batch)
        )
        if not db.sqlite:
            q = q.with_for_update(skip_locked=True)
        ids = list((await s.scalars(q)).all())
        if not ids:
            return [], {}
        rows = (
            await s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), *_due(now))
                .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=lease_until)
                .returning(
                    OutboxMessage.id,
                    OutboxMessage.operator_id,
                    OutboxMessage.event,
                    OutboxMessage.payload,
                    OutboxMessage.attempts,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        claimed = [
            Claimed(r.id, r.operator_id, r.event, dict(r.payload or {}), r.attempts)
            for r in sorted(rows, key=lambda r: r.id)
        ]
        op_ids = {c.operator_id for c in claimed}
        endpoints = {
            ep.operator_id: ep
            for ep in (
                await s.scalars(
                    select(WebhookEndpoint).where(WebhookEndpoint.operator_id.in_(op_ids))
                )
            ).all()
        }
    return claimed, endpoints


def render_body(delivery_id: int, payload: dict[str, Any]) -> bytes:
    """The JSON sent: the delivery id plus allow-listed payload keys, nothing else."""
    body: dict[str, Any] = {"id": delivery_id}
    body.update({k: payload[k] for k in PAYLOAD_KEYS if k in payload})
    return msgspec.json.encode(body)


@dataclass(frozen=True)
class _Outcome:
    msg: Claimed
    ok: bool
    reason: str | None = None
    status: int | None = None
    final: bool = False  # give up now whatever the attempt count (no endpoint)


async def _post(
    client: httpx.AsyncClient,
    msg: Claimed,
    endpoint: WebhookEndpoint | None,
    cipher: AddressCipher,
    clock: Clock,
    policy: DeliveryPolicy,
) -> _Outcome:
    if endpoint is None:
        return _Outcome(msg, ok=False, reason="endpoint removed", final=True)
    try:
        secret = open_secret(cipher, endpoint.secret_ciphertext)
    except AddressKeyError:
        return _Outcome(msg, ok=False, reason="secret cannot be decrypted (key changed?)")
    body = render_body(msg.id, msg.payload)
    headers = signed_headers(
        secret,
        body=body,
        event=msg.event,
        delivery_id=msg.id,
        timestamp=int(clock.now().timestamp()),  # at sending time: receivers allow 5 min
    )
    why = await outbound.resolved_refusal(endpoint.url)
    if why is not None:  # e.g. registered before the check, or its name now points there
        return _Outcome(msg, ok=False, reason=f"refused: {why}")
    try:
        async with (
            asyncio.timeout(policy.timeout_s),
            client.stream("POST", endpoint.url, content=body, headers=headers) as resp,
        ):
            status = resp.status_code  # the body is never read (nor logged)
    except (TimeoutError, httpx.TimeoutException):
        return _Outcome(msg, ok=False, reason=f"timeout after {policy.timeout_s:g} s")
    except httpx.HTTPError as exc:
        if str(exc).startswith(outbound.REFUSED_PREFIX):  # checked again at connection time
            return _Outcome(msg, ok=False, reason=str(exc))
        return _Outcome(msg, ok=False, reason=f"connection failed ({type(exc).__name__})")
    except Exception as exc:  # e.g. httpx.InvalidURL: one bad message never stops the batch
        return _Outcome(msg, ok=False, reason=f"request failed ({type(exc).__name__})")
    if 200 <= status < 300:
        return _Outcome(msg, ok=True, status=status)
    return _Outcome(msg, ok=False, reason=f"HTTP {status}", status=status)


async def _record(
    db: Database,
    outcomes: list[_Outcome],
    *,
    now: datetime,
    policy: DeliveryPolicy,
    rng: random.Random | None,
    report: DeliveryReport,
) -> None:
    async with db.write() as s:
        for o in outcomes:
            m = o.msg
            mine = (
                OutboxMessage.id == m.id,
                OutboxMessage.attempts == m.attempts,  # still our claim
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
            )
            if o.ok:
                values: dict[str, Any] = {"delivered_at": now, "last_error": None}
                outcome, retry_in = "delivered", None
            elif o.final or m.attempts >= policy.max_attempts:
                values = {"failed_at": now, "last_error": o.reason}
                outcome, retry_in = "failed", None
            else:
                delay = policy.backoff(m.attempts, rng)
                values = {"next_attempt_at": now + delay, "last_error": o.reason}
                outcome, retry_in = "retrying", round(delay.total_seconds())
            res = await s.execute(
                update(OutboxMessage)
                .where(*mine)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 0:  # lease ran out and another worker took it: theirs now
                log.warning("webhook_claim_lost", outbox_id=m.id, attempt=m.attempts)
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            (log.info if o.ok else log.warning)(
                "webhook_" + outcome,
                outbox_id=m.id,
                operator_id=m.operator_id,
                hook_event=m.event,
                attempt=m.attempts,
                status=o.status,
                reason=o.reason,
                retry_in_s=retry_in,
            )


async def deliver_due(
    db: Database,
    *,
    cipher: AddressCipher,
    clock: Clock,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    client: httpx.AsyncClient | None = None,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Claim and send every due message (up to ``policy.max_batches`` batches); record each
    outcome. Idempotent and safe to run in several processes at once. The clock is read at the
    claim, at each request (the signed timestamp) and when the outcomes are recorded: a retry's
    backoff counts from when the attempt failed, not from when a slow batch was claimed."""
    report = DeliveryReport()
    own = client is None
    http = client or outbound.guarded_client(
        timeout=httpx.Timeout(policy.timeout_s), follow_redirects=False
    )
    gate = asyncio.Semaphore(max(1, policy.concurrency))

    async def one(m: Claimed, endpoints: dict[int, WebhookEndpoint]) -> _Outcome:
        async with gate:
            return await _post(http, m, endpoints.get(m.operator_id), cipher, clock, policy)

    try:
        for _ in range(policy.max_batches):
            now = clock.now()
            claimed, endpoints = await claim_due(db, now=now, policy=policy)
            if not claimed:
                break
            outcomes = await asyncio.gather(*(one(m, endpoints) for m in claimed))
            done = clock.now()
            await _record(db, list(outcomes), now=done, policy=policy, rng=rng, report=report)
    finally:
        if own:
            await http.aclose()
    return report


@job("deliver_webhooks", seconds=10)
async def deliver_webhooks(ctx: JobContext) -> int:
    report = await deliver_due(ctx.db, cipher=ctx.cipher, clock=ctx.clock)
    return report.attempted
