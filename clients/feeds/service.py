"""Feed rows: register, change, remove, list with health. Credentials are sealed at rest.

Mapping rule: every entry maps one identifier of the feed to one pool of a facility of the
feed's own operator; any other pool is refused (at registration and again at every ingest,
in case a facility changed hands). A pool is written by one feed at most: two feeds mapping it
would overwrite each other's figures at every poll.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.audit import Actor
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.errors import AlreadyExists, InvalidInput, NotFound
from capacity.models import Facility, Feed, Operator, Pool
from clients import outbound
from clients.feeds.registry import ADAPTERS

FeedName = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,26}$", examples=["ibis-midi"])
]
FeedFormat = Literal["json_inventory", "csv_export", "edxl_have"]
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=500,
        pattern=r"^https?://",
        examples=["https://pms.example-hotel.be/abri/inventory"],
    ),
]
OperatorName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class MappingEntry(_In, kw_only=True):
    """One identifier of the feed (room type, place id, ``OrgID/BedType``) -> one Abri pool.

    ``countsHoldsAsOccupied``: the partner's system already counts rooms Abri holds as
    occupied, so ingest subtracts the pool's current ``unitsHeld`` from the reported
    occupancy (never below 0) instead of counting those rooms twice.
    """

    feed_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["DBL"])]
    pool_id: Annotated[int, msgspec.Meta(ge=1)]
    counts_holds_as_occupied: bool = False


class BearerAuth(_In, tag="bearer", tag_field="type"):
    token: Secret


class BasicAuth(_In, tag="basic", tag_field="type"):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    password: Secret


class HeaderAuth(_In, tag="header", tag_field="type"):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,64}$", examples=["X-Api-Key"])]
    value: Secret


class QueryAuth(_In, tag="query", tag_field="type"):
    """A key the partner's system wants in the URL's query (``?apikey=…``): kept encrypted
    with the other credentials and added to the URL only when polling, so it is never shown."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.~-]{1,64}$", examples=["apikey"])]
    value: Secret


Credentials = BearerAuth | BasicAuth | HeaderAuth | QueryAuth

Interval = Annotated[int, msgspec.Meta(ge=10, le=86_400)]
Timeout = Annotated[int, msgspec.Meta(ge=1, le=120)]
Retries = Annotated[int, msgspec.Meta(ge=0, le=5)]
Threshold = Annotated[int, msgspec.Meta(ge=1, le=100)]
Cooldown = Annotated[int, msgspec.Meta(ge=10, le=86_400)]


class FeedCreate(_In, kw_only=True):
    name: FeedName
    operator: OperatorName
    url: Url
    format: FeedFormat
    mapping: Annotated[list[MappingEntry], msgspec.Meta(min_length=1, max_length=500)]
    interval_seconds: Interval = 300
    timeout_seconds: Timeout = 10
    max_retries: Retries = 2
    failure_threshold: Threshold = 5
    cooldown_seconds: Cooldown = 900
    credentials: Credentials | None = None
    enabled: bool = True


class FeedUpdate(_In, kw_only=True):
    url: Url | None = None
    format: FeedFormat | None = None
    mapping: Annotated[list[MappingEntry], msgspec.Meta(min_length=1, max_length=500)] | None = None
    interval_seconds: Interval | None = None
    timeout_seconds: Timeout | None = None
    max_retries: Retries | None = None
    failure_threshold: Threshold | None = None
    cooldown_seconds: Cooldown | None = None
    credentials: Credentials | None = None
    clear_credentials: bool = False
    enabled: bool | None = None


# --------------------------------------------------------------------------- alert rule

#: The alert rule looks at the polls of the last 15 minutes, or of the last three intervals
#: for a feed polled less often than every 5 minutes.
ALERT_WINDOW_S = 900
#: Polls kept on the feed row at most (a 10 s interval makes 90 in 15 minutes).
RECENT_POLLS_MAX = 120


def alert_window_s(interval_seconds: int) -> int:
    return max(ALERT_WINDOW_S, 3 * interval_seconds)


@dataclass(frozen=True)
class RecentPolls:
    total: int
    failed: int
    alerting: bool


def recent_polls(feed: Feed, *, now: datetime) -> RecentPolls:
    """The alert rule: a feed needs an admin when more than half of its polls in the window
    failed (at least two of them), or when its circuit is open. A success between failures
    does not reset it, so a flapping feed (fails, succeeds once, fails...) alerts as a dead
    one does, while one failure among good polls does not."""
    since = now.timestamp() - alert_window_s(feed.interval_seconds)
    outcomes = [bool(failed) for at, failed in feed.recent_polls or () if at > since]
    failed = sum(outcomes)
    alerting = feed.enabled and (
        feed.circuit != "closed" or (failed >= 2 and 2 * failed > len(outcomes))
    )
    return RecentPolls(total=len(outcomes), failed=failed, alerting=alerting)


def with_poll(feed: Feed, *, now: datetime, failed: bool) -> list[list[int]]:
    """The feed's ``recent_polls`` with one more poll, those out of the window dropped."""
    since = now.timestamp() - alert_window_s(feed.interval_seconds)
    kept = [[int(at), int(f)] for at, f in feed.recent_polls or () if at > since]
    return [*kept[-(RECENT_POLLS_MAX - 1) :], [int(now.timestamp()), int(failed)]]


# --------------------------------------------------------------------------- credentials


def seal(cipher: AddressCipher, creds: Credentials) -> str:
    return cipher.encrypt_text(msgspec.json.encode(creds).decode())


def unseal(cipher: AddressCipher, ciphertext: str) -> Credentials:
    """Raises ``AddressKeyError`` if the key changed (the poll then fails with that reason)."""
    raw = cipher.decrypt_text(ciphertext)
    return msgspec.json.decode(raw, type=Credentials)  # type: ignore[arg-type]


def auth_headers(creds: Credentials | None) -> dict[str, str]:
    """The request headers carrying the credentials (never logged)."""
    import base64

    if creds is None:
        return {}
    if isinstance(creds, BearerAuth):
        return {"Authorization": f"Bearer {creds.token}"}
    if isinstance(creds, BasicAuth):
        pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if isinstance(creds, QueryAuth):
        return {}
    return {creds.name: creds.value}


def auth_params(creds: Credentials | None) -> dict[str, str]:
    """The query parameters carrying the credentials (never logged nor stored in the URL)."""
    return {creds.name: creds.value} if isinstance(creds, QueryAuth) else {}


#: Query parameter names that carry a secret: refused in a feed's ``url`` (it is stored in
#: clear and shown to every admin); ``credentials`` of type ``query`` carry them instead.
_SECRET_PARAM = re.compile(
    r"(^|[_.-])(key|token|secret|password|passwd|pwd|pass|sig|signature|auth|authorization|"
    r"credential|credentials)$|^(api|access|client|private|secret|auth)key$",
    re.IGNORECASE,
)


def secret_params(url: str) -> list[str]:
    """The names of ``url``'s query parameters that look like they carry a secret."""
    return [
        name
        for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if _SECRET_PARAM.search(name)
    ]


def shown_url(url: str) -> str:
    """``url`` as admins see it: a secret-looking query value (stored by a version that did not
    refuse it) is replaced by ``…``."""
    parts = urlsplit(url)
    if not parts.query or not secret_params(url):
        return url
    query = "&".join(
        f"{quote(name, safe='')}={'…' if _SECRET_PARAM.search(name) else quote(value, safe='')}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(query=query))


# --------------------------------------------------------------------------- validation


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an http(s) URL with a host.", field="url")
    if parts.username or parts.password:
        raise InvalidInput(
            "Put credentials in `credentials`, not in the URL (they would be shown).",
            field="url",
        )
    secret = secret_params(url)
    if secret:
        name = secret[0]
        raise InvalidInput(
            f"The URL's query parameter {name!r} looks like a key: the URL is stored in clear "
            "and shown to every admin. Take it out of the URL and give it as credentials "
            f'{{"type": "query", "name": "{name}", "value": "…"}} (kept encrypted, added '
            "to the URL only when polling).",
            field="url",
        )
    why = outbound.literal_refusal(parts.hostname)
    if why is not None:
        raise InvalidInput(f"The feed URL {why}.", field="url")
    return url


async def check_mapping(
    s: AsyncSession,
    operator_id: int,
    mapping: list[MappingEntry] | list[dict[str, Any]],
    *,
    feed_id: int | None = None,
) -> list[dict[str, Any]]:
    """Every pool must belong to a facility of the feed's operator; ids and pools unique, and
    no pool already written by another feed (``feed_id``: the feed being changed)."""
    entries = [
        m if isinstance(m, MappingEntry) else msgspec.convert(m, MappingEntry) for m in mapping
    ]
    seen_ids: set[str] = set()
    seen_pools: set[int] = set()
    for i, m in enumerate(entries):
        if m.feed_id in seen_ids:
            raise InvalidInput(f"feedId {m.feed_id!r} is mapped twice.", field=f"mapping[{i}]")
        if m.pool_id in seen_pools:
            raise InvalidInput(
                "Two feed identifiers cannot write the same pool.", field=f"mapping[{i}].poolId"
            )
        seen_ids.add(m.feed_id)
        seen_pools.add(m.pool_id)
    owned = set(
        (
            await s.scalars(
                select(Pool.id)
                .join(Facility, Facility.id == Pool.facility_id)
                .where(Pool.id.in_(seen_pools), Facility.operator_id == operator_id)
            )
        ).all()
    )
    for i, m in enumerate(entries):
        if m.pool_id not in owned:
            raise InvalidInput(
                "This pool does not exist or is not a pool of the feed's operator.",
                field=f"mapping[{i}].poolId",
            )
    others = select(Feed.name, Feed.mapping)
    if feed_id is not None:
        others = others.where(Feed.id != feed_id)
    taken = {
        int(m["poolId"]): name for name, other in (await s.execute(others)).all() for m in other
    }
    for i, m in enumerate(entries):
        if m.pool_id in taken:
            raise InvalidInput(
                f"Pool {m.pool_id} is already written by the feed {taken[m.pool_id]!r}: two "
                "feeds would overwrite each other's figures. Take it out of that feed's "
                "mapping (or delete that feed) first.",
                field=f"mapping[{i}].poolId",
            )
    return [msgspec.to_builtins(m) for m in entries]


# --------------------------------------------------------------------------- commands


class FeedView(msgspec.Struct, kw_only=True):
    feed: Feed
    operator: str


async def _view(s: AsyncSession, feed: Feed) -> FeedView:
    name = await s.scalar(select(Operator.name).where(Operator.id == feed.operator_id))
    return FeedView(feed=feed, operator=name or "")


async def create_feed(
    db: Database, cmd: FeedCreate, *, actor: Actor, now: datetime, cipher: AddressCipher
) -> FeedView:
    if cmd.format not in ADAPTERS:
        raise InvalidInput(f"Unknown format {cmd.format!r}.", field="format")
    _check_url(cmd.url)
    try:
        async with db.write() as s:
            op = await s.scalar(select(Operator).where(Operator.name == cmd.operator))
            if op is None:
                raise NotFound(f"No operator named {cmd.operator!r}.", field="operator")
            if await s.scalar(select(Feed.id).where(Feed.name == cmd.name)) is not None:
                # before the mapping: a second registration of the same feed is a name clash
                raise AlreadyExists(f"A feed named {cmd.name!r} exists.", field="name")
            mapping = await check_mapping(s, op.id, cmd.mapping)
            feed = Feed(
                name=cmd.name,
                operator_id=op.id,
                url=cmd.url,
                format=cmd.format,
                mapping=mapping,
                enabled=cmd.enabled,
                interval_seconds=cmd.interval_seconds,
                timeout_seconds=cmd.timeout_seconds,
                max_retries=cmd.max_retries,
                failure_threshold=cmd.failure_threshold,
                cooldown_seconds=cmd.cooldown_seconds,
                credentials_ciphertext=seal(cipher, cmd.credentials) if cmd.credentials else None,
                consecutive_failures=0,
                circuit="closed",
                next_poll_at=now,
                created_at=now,
                updated_at=now,
            )
            s.add(feed)
            await s.flush()
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="feed.create",
                object_type="feed",
                object_id=feed.id,
                detail={"name": feed.name, "format": feed.format, "pools": len(mapping)},
            )
            return await _view(s, feed)
    except IntegrityError:
        raise AlreadyExists(f"A feed named {cmd.name!r} exists.", field="name") from None


async def _get(s: AsyncSession, feed_id: int) -> Feed:
    feed = await s.get(Feed, feed_id)
    if feed is None:
        raise NotFound("No such feed.")
    return feed


async def update_feed(
    db: Database,
    feed_id: int,
    cmd: FeedUpdate,
    *,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
) -> FeedView:
    async with db.write() as s:
        feed = await _get(s, feed_id)
        changed: list[str] = []
        if cmd.url is not None and cmd.url != feed.url:
            feed.url = _check_url(cmd.url)
            feed.etag = feed.last_modified = None  # a new source: no conditional request
            changed.append("url")
        if cmd.format is not None and cmd.format != feed.format:
            feed.format = cmd.format
            feed.etag = feed.last_modified = None
            changed.append("format")
        if cmd.mapping is not None:
            feed.mapping = await check_mapping(s, feed.operator_id, cmd.mapping, feed_id=feed.id)
            feed.etag = feed.last_modified = None  # re-read the document with the new mapping
            feed.missing_feed_ids = None  # named against the old mapping
            feed.polls_all_older = 0
            changed.append("mapping")
        for name in (
            "interval_seconds",
            "timeout_seconds",
            "max_retries",
            "failure_threshold",
            "cooldown_seconds",
            "enabled",
        ):
            value = getattr(cmd, name)
            if value is not None and value != getattr(feed, name):
                setattr(feed, name, value)
                changed.append(name)
        if cmd.clear_credentials:
            feed.credentials_ciphertext = None
            changed.append("credentials")
        elif cmd.credentials is not None:
            feed.credentials_ciphertext = seal(cipher, cmd.credentials)
            changed.append("credentials")
        if "interval_seconds" in changed and feed.circuit == "closed" and feed.next_poll_at:
            # A shorter interval counts from the last poll, not after the old, longer wait.
            since = feed.last_attempt_at or now
            feed.next_poll_at = min(
                feed.next_poll_at, since + timedelta(seconds=feed.interval_seconds)
            )
            if feed.retry_after_until is not None:  # still not before the server asked
                feed.next_poll_at = max(feed.next_poll_at, feed.retry_after_until)
        source = {"url", "format", "mapping", "credentials"}
        if feed.enabled and ("enabled" in changed or source & set(changed)):
            # Re-enabled, or its source mended by an admin (a new address, new credentials):
            # a fresh start, polled at once, not after the cool-down of the old failures.
            feed.circuit, feed.consecutive_failures, feed.next_poll_at = "closed", 0, now
            feed.retry_after_until = None
        feed.updated_at = now
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="feed.update",
            object_type="feed",
            object_id=feed.id,
            detail={"changed": changed},
        )
        return await _view(s, feed)


async def delete_feed(db: Database, feed_id: int, *, actor: Actor, now: datetime) -> None:
    async with db.write() as s:
        feed = await _get(s, feed_id)
        await s.execute(delete(Feed).where(Feed.id == feed_id))
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="feed.delete",
            object_type="feed",
            object_id=feed_id,
            detail={"name": feed.name},
        )


async def get_feed(db: Database, feed_id: int) -> FeedView:
    async with db.read() as s:
        return await _view(s, await _get(s, feed_id))


async def list_feeds(db: Database) -> list[FeedView]:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(Feed, Operator.name)
                .join(Operator, Operator.id == Feed.operator_id)
                .order_by(Feed.name)
            )
        ).all()
    return [FeedView(feed=f, operator=name) for f, name in rows]


async def feed_id_by_name(db: Database, name: str) -> int:
    async with db.read() as s:
        fid = await s.scalar(select(Feed.id).where(Feed.name == name))
    if fid is None:
        raise NotFound("No such feed.")
    return int(fid)
