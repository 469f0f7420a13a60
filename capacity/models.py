"""Database tables. The pool row is the aggregate and the lock (CONVENTIONS §2.6).

All instants are stored as naive UTC (``UTCDateTime``) so SQLite and PostgreSQL
compare them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# Integer primary keys: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
PK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


OPERATOR_KINDS = (
    "shelter_operator",
    "cpas",
    "hotel_partner",
    "police",
    "helpline",
    "caw",
    "fjc",
    "sac",
    "prosecutor",
    "taskforce",
    "admin",
)
FACILITY_KINDS = ("refuge", "crisis_hotel", "cpas_place", "night_shelter", "safe_house", "other")
#: The kinds of place the matcher may offer, a hold may take and the task force counts: places
#: for victims and people without a home. Listed on purpose, not derived from FACILITY_KINDS
#: (R40): a future "perpetrator accommodation" kind (temporary residence bans) goes into
#: FACILITY_KINDS only, and so can never be matched with, held for or counted with victims.
PLACEMENT_KINDS = frozenset(
    {"refuge", "crisis_hotel", "cpas_place", "night_shelter", "safe_house", "other"}
)
FACILITY_STATUSES = (
    "open",
    "closed_to_admissions",
    "reduced",
    "suspended",
    "location_compromised",
)
UNIT_KINDS = ("bed", "room", "family_room")
ROLES = ("admin", "staff", "helpline", "police", "taskforce")


class Operator(Base):
    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Where a local requester works (a police zone's main municipality): the console's
    # default preferred area, and the area of its unmet searches that name none (R32).
    home_municipality_nis: Mapped[str | None] = mapped_column(String(5))


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Facility(Base):
    __tablename__ = "facilities"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    alias: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))
    municipality_nis: Mapped[str] = mapped_column(String(5), index=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    intake_phone: Mapped[str] = mapped_column(String(40))
    # R21: whether the intake phone is answered round the clock (else only in office hours)
    intake_phone_24h: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    handover_protocol: Mapped[str] = mapped_column(Text)
    secret_address: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(32), default="open")
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # R07: a scheme's first planned end and how often it was pushed back (3-5 month hotel
    # schemes were extended again and again); None / 0 until the first extension.
    first_planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    extensions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stale_after_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("operator_id", "alias", name="uq_facilities_operator_alias"),
    )


class FacilityAddress(Base):
    """The confidential address, kept apart and encrypted at rest (Fernet)."""

    __tablename__ = "facility_addresses"
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True
    )
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Pool(Base):
    __tablename__ = "pools"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    label: Mapped[str] = mapped_column(String(120))
    unit_kind: Mapped[str] = mapped_column(String(16))
    places_per_unit: Mapped[int] = mapped_column(Integer, default=1)
    units_total: Mapped[int] = mapped_column(Integer, default=0)
    units_blocked: Mapped[int] = mapped_column(Integer, default=0)
    units_occupied: Mapped[int] = mapped_column(Integer, default=0)
    units_held: Mapped[int] = mapped_column(Integer, default=0)
    surge_24h: Mapped[int] = mapped_column(Integer, default=0)
    surge_72h: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("units_held >= 0", name="held_nonneg"),
        CheckConstraint("units_total >= 0", name="total_nonneg"),
        CheckConstraint("units_occupied >= 0", name="occupied_nonneg"),
        CheckConstraint("units_blocked >= 0", name="blocked_nonneg"),
        CheckConstraint("places_per_unit >= 1", name="places_pos"),
        CheckConstraint("surge_24h >= 0 AND surge_72h >= 0", name="surge_nonneg"),
        UniqueConstraint("facility_id", "label", name="uq_pools_facility_label"),
    )


class AvailabilityReport(Base):
    """History of every change of a pool's counts, and of every 'still accurate'."""

    __tablename__ = "availability_reports"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))  # update | confirm | create
    source: Mapped[str] = mapped_column(String(32))  # staff | admin | feed:<name> | import
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    units_total: Mapped[int] = mapped_column(Integer)
    units_blocked: Mapped[int] = mapped_column(Integer)
    units_occupied: Mapped[int] = mapped_column(Integer)
    units_held: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_availability_reports_pool_at", "pool_id", "at"),)


class AuditEntry(Base):
    """Append-only. The API has no route that edits or deletes it."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_operator_id: Mapped[int | None] = mapped_column(Integer)
    actor_token_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    facility_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Alert(Base):
    """Something an admin must see now (e.g. a refuge whose location is compromised)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"))
    message: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[int | None] = mapped_column(Integer)


HOLD_STATES = ("held", "arrived", "released", "declined", "expired", "no_show", "departed")


_ACTIVE_ONLY: dict[str, Any] = {
    "postgresql_where": text("state = 'held'"),
    "sqlite_where": text("state = 'held'"),
}

#: Running holds that carry a household key (migration 0019).
_HELD_KEYED: dict[str, Any] = {
    "postgresql_where": text("state = 'held' AND household_key IS NOT NULL"),
    "sqlite_where": text("state = 'held' AND household_key IS NOT NULL"),
}


class Hold(Base):
    """A temporary reservation of units at one pool for one household (composition only)."""

    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    # (looked up through uq_holds_idem, whose leading column it is)
    requester_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    requester_token_id: Mapped[int | None] = mapped_column(Integer)
    requester_kind: Mapped[str] = mapped_column(String(32))
    units: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="held")
    household: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None once purged
    segments: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # undocumented, children...
    need: Mapped[str] = mapped_column(String(32))
    callback: Mapped[str | None] = mapped_column(String(200))  # the professional's contact
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(Text)
    # Why it ended, as a stable code (``placement.holds_service.CLOSE_CODES``; None while it
    # is open): shown to its requester as ``closeCode``. No personal data: the purge keeps it.
    close_code: Mapped[str | None] = mapped_column(String(32))
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # R33: a hash of the requester's operator and its optional episodeToken, so the task force
    # counts one household once however many holds it took; cleared by the retention purge
    episode_hash: Mapped[str | None] = mapped_column(String(64))
    # A hash of the episode hash, the need and the household's composition (only with an
    # episode): one household holds one place once, whatever Idempotency-Key each try carried
    # (uq_holds_household_held). Cleared by the retention purge.
    household_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("requester_operator_id", "idempotency_key", name="uq_holds_idem"),
        CheckConstraint("units >= 1", name="units_pos"),
        # Active holds only (migration 0007 says why). Queries must spell the condition
        # ``state = 'held'`` literally (``is_held()`` below) for SQLite to use them.
        Index("ix_holds_held_deadline", "deadline", **_ACTIVE_ONLY),
        Index("ix_holds_held_pool_deadline", "pool_id", "deadline", **_ACTIVE_ONLY),
        Index("uq_holds_household_held", "pool_id", "household_key", unique=True, **_HELD_KEYED),
    )


def is_held() -> ColumnElement[bool]:
    """``holds.state = 'held'`` with the value written into the SQL rather than bound: SQLite
    uses a partial index only for a condition it can see matches (PostgreSQL's custom plans
    would manage with a parameter; SQLite cannot)."""
    return Hold.state == literal("held", literal_execute=True)


class StandingRequest(Base):
    """'Tell me when a place that fits frees up' — first come, first served."""

    __tablename__ = "standing_requests"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    requester_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    requester_kind: Mapped[str] = mapped_column(String(32))
    search: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # the SearchRequest; None once closed
    need: Mapped[str] = mapped_column(String(32))
    callback: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # offered: the pool held for it; back in line after a decline: the pool that declined it
    offered_pool_id: Mapped[int | None] = mapped_column(Integer)
    offer_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hold_id: Mapped[int | None] = mapped_column(Integer)  # the hold made for it when offered
    # offers that ended without the household (declined, no-show): back in line each time
    offers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_standing_state_created", "state", "created_at"),
        # the request a hold was offered to, found when the hold ends (migration 0026)
        Index(
            "ix_standing_requests_offered_hold",
            "hold_id",
            postgresql_where=text("state = 'offered'"),
            sqlite_where=text("state = 'offered'"),
        ),
        Index(
            "uq_standing_requests_idem",
            "requester_operator_id",
            "idempotency_key",
            unique=True,
        ),
    )


class Lease(Base):
    """A named lease held by one process at a time (single-flight jobs on both databases)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyMark(Base):
    """The fingerprint of a key every process must share (``capacity/episode.py``): the first
    process to start records it, each compares its own (``/health/ready``, ``abri check``),
    ``abri episode-key adopt`` records a deliberate change. A fingerprint, never the key."""

    __tablename__ = "key_marks"
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Event(Base):
    """Things that happened, for live streams (SSE) across processes: readers poll by id."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    facility_id: Mapped[int | None] = mapped_column(Integer, index=True)
    operator_id: Mapped[int | None] = mapped_column(Integer, index=True)  # requester side
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class WebhookEndpoint(Base):
    """Where a requester operator's own system is told what happened to its holds."""

    __tablename__ = "webhook_endpoints"
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """Webhook deliveries, written in the same transaction as the change (survives a crash)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    operator_id: Mapped[int] = mapped_column(Integer, index=True)
    event: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))


class UnmetDemand(Base):
    """A search that found no place: anonymous, coarse, counted once per episode."""

    __tablename__ = "unmet_demand"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    requester_kind: Mapped[str] = mapped_column(String(32))
    need: Mapped[str] = mapped_column(String(32))
    arrondissement_nis: Mapped[str | None] = mapped_column(String(5))
    province_nis: Mapped[str | None] = mapped_column(String(5))
    region_nis: Mapped[str | None] = mapped_column(String(5))
    household_shape: Mapped[str] = mapped_column(String(32))  # e.g. "1A+2C", "2A+4C+"
    segments: Mapped[dict[str, Any]] = mapped_column(JSON)  # undocumented, children, no income
    top_reasons: Mapped[list[str]] = mapped_column(JSON)
    episode_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("episode_hash", name="uq_unmet_demand_episode"),)


FEED_CIRCUITS = ("closed", "open", "half_open")


class Feed(Base):
    """An operator's own system that Abri polls for availability (hotel inventory, CPAS sheet).

    ``mapping`` is a list of ``{"feedId", "poolId", "countsHoldsAsOccupied"}``: the feed's own
    identifiers to Abri pools of the feed's operator. Credentials are encrypted at rest and
    never returned. The health columns are what ``GET /admin/feeds`` shows.
    """

    __tablename__ = "feeds"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    name: Mapped[str] = mapped_column(String(27), unique=True)  # source = "feed:<name>"
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(32))
    mapping: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=300)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=10)
    max_retries: Mapped[int] = mapped_column(Integer, default=2)
    failure_threshold: Mapped[int] = mapped_column(Integer, default=5)
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=900)
    credentials_ciphertext: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(200))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # Whether the last document applied gave its figures' own times (``generatedAt``...): a
    # ``304 Not Modified`` then means those figures are still as old as they said, not fresh.
    document_timed: Mapped[bool | None] = mapped_column(Boolean)
    # The mapped identifiers the last document applied did not mention (their pools were left
    # as they were and go stale on schedule): a warning on the feed, not a failure.
    missing_feed_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # Polls in a row whose document applied nothing because every entry was stamped older than
    # its pool's last update (a stuck export job, a clock off): a warning from ALL_OLDER_WARN.
    polls_all_older: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The partner's server said when to come back (``Retry-After`` on a failed poll, at most
    # RETRY_AFTER_MAX_S): no scheduled poll before then. Cleared by a successful poll.
    retry_after_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # ``[[epoch seconds, 1 if failed else 0], ...]`` of the polls within the alert window
    # (clients.feeds.service.recent_polls): a success does not hide the failures around it.
    recent_polls: Mapped[list[list[int]] | None] = mapped_column(JSON)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit: Mapped[str] = mapped_column(String(16), default="closed")
    circuit_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("interval_seconds >= 10", name="interval_min"),
        CheckConstraint("consecutive_failures >= 0", name="failures_nonneg"),
    )


class StaffLink(Base):
    """A signed one-time link a coordinator gives a night worker: one facility, expiring,
    revocable. Only a hash of its secret is kept (like tokens); opening it once starts a web
    session limited to that facility's counts."""

    __tablename__ = "staff_links"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    created_by_operator_id: Mapped[int | None] = mapped_column(Integer)
    created_by_token_id: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The staff page's form carries a random nonce: the same form sent twice (a reload of the
    # page that showed the link) is refused instead of issuing a second live link.
    form_nonce: Mapped[str | None] = mapped_column(String(32), unique=True)


class EndedWebSession(Base):
    """A web session signed out before its cookie expired. Cookies are signed, not stored, so
    signing out must be remembered to be final: a copy of the cookie (a shared computer at a
    police station, a browser restored) is refused until ``until``, when it would have
    expired anyway and the row may go. Only the session's random id is kept."""

    __tablename__ = "web_sessions_ended"
    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AreaHealthCondition(Base):
    """An admission condition switched on for every place in an area (an epidemic: "a negative
    test" across a province), on top of each place's own. Shown to requesters as a condition
    to meet, never a silent exclusion (R16). ``area_nis``: "BE", a region, province,
    arrondissement or municipality code."""

    __tablename__ = "area_health_conditions"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    area_nis: Mapped[str] = mapped_column(String(5))
    condition: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by_operator_id: Mapped[int | None] = mapped_column(Integer)
    # When the measure ends by itself (the ``health_condition_lapse`` job switches it off
    # within a minute); None: until an admin switches it off.
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("area_nis", "condition", name="uq_area_health_conditions_area"),
    )


class SaturationRun(Base):
    """One saturation snapshot (its instant; kept or thinned out by the downsampling)."""

    __tablename__ = "saturation_runs"
    at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    k: Mapped[int] = mapped_column(Integer)
    cells: Mapped[int] = mapped_column(Integer)


class SaturationSnapshot(Base):
    """One non-empty cell of a snapshot, in places; figures NULL when the cell is suppressed."""

    __tablename__ = "saturation_snapshots"
    id: Mapped[int] = mapped_column(PK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    level: Mapped[str] = mapped_column(String(16))
    nis: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    segment: Mapped[str] = mapped_column(String(32))
    suppressed: Mapped[bool] = mapped_column(Boolean)
    facilities: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    occupied: Mapped[int | None] = mapped_column(Integer)
    held: Mapped[int | None] = mapped_column(Integer)
    free: Mapped[int | None] = mapped_column(Integer)
    fresh: Mapped[int | None] = mapped_column(Integer)
    stale: Mapped[int | None] = mapped_column(Integer)
    closed: Mapped[int | None] = mapped_column(Integer)
    blocked: Mapped[int | None] = mapped_column(Integer)
    surge_24h: Mapped[int | None] = mapped_column(Integer)
    surge_72h: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_saturation_snapshots_series", "level", "kind", "segment", "at"),
        Index("ix_saturation_snapshots_at", "at"),
    )
