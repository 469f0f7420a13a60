"""Every setting Abri reads, with its default. Read once, from the environment.

The environment reference in the README lists these; keep both in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./abri.db"

#: Minutes after which a pool's data is stale, per facility kind. A crisis hotel
#: fed by a system is expected to report often; a refuge updated by hand, less so.
DEFAULT_STALE_MINUTES: dict[str, int] = {
    "refuge": 12 * 60,
    "safe_house": 12 * 60,
    "crisis_hotel": 6 * 60,
    "cpas_place": 24 * 60,
    "night_shelter": 6 * 60,
    "other": 12 * 60,
}


def database_url(raw: str | None) -> str:
    """``ABRI_DATABASE_URL`` with Abri's async drivers filled in: ``postgresql://`` and
    ``postgres://`` (what libpq, ``pg_dump`` and hosting panels give) mean asyncpg, a bare
    ``sqlite://`` means aiosqlite. Other drivers are not installed and would fail later with
    a missing module."""
    url = (raw or "").strip() or DEFAULT_DATABASE_URL
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    driver = {
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "postgresql+psycopg": "postgresql+asyncpg",
        "postgresql+psycopg2": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+pysqlite": "sqlite+aiosqlite",
    }.get(scheme.lower())
    if driver is None:
        return url
    url = f"{driver}://{rest}"
    if driver == "postgresql+asyncpg" and "sslmode=" in rest:
        # libpq's sslmode (in every managed PostgreSQL's connection string) is asyncpg's ssl,
        # with the same values; asyncpg refuses a keyword it does not know
        from sqlalchemy.engine import make_url

        u = make_url(url)
        query = dict(u.query)
        mode = query.pop("sslmode")
        query.setdefault("ssl", mode)
        url = u.set(query=query).render_as_string(hide_password=False)
    return url


def _int(name: str, default: int, minimum: int | None = None) -> int:
    """A whole number, at least ``minimum`` if given: SQLAlchemy reads a pool of 0 connections
    or an overflow of -1 as "no limit", which no one setting a number means."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {raw!r}")
    return value


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")
SWITCH_OFF = _NO


def _flag(name: str, default: bool) -> bool:
    """On/off, written any usual way (``False``, ``off``...): ``ABRI_RUN_JOBS=False`` used to
    leave the jobs on, since only lower-case 0/false/no counted."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _YES:
        return True
    if raw in _NO:
        return False
    raise SystemExit(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def _log_level() -> str:
    level = _choice(
        "ABRI_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")
    )
    return "WARNING" if level == "WARN" else level


def _at_least(name: str, default: float, minimum: float) -> float:
    """A number of seconds or days that must not fall below ``minimum`` (a worker polling
    every 0 s would spin; a retention of 0 days would purge closed holds as they close)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc
    if not value >= minimum:  # also refuses nan
        raise SystemExit(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _lease_seconds(poll: float) -> float:
    """A leader renews its lease every ``poll``: a lease no longer than two polls would lapse
    between renewals, and two workers would both lead. Unset: 30 s, or three polls if more."""
    lease = _at_least("ABRI_WORKER_LEASE_SECONDS", max(30.0, 3 * poll), 1.0)
    if lease <= 2 * poll:
        raise SystemExit(
            f"ABRI_WORKER_LEASE_SECONDS ({lease:g}) must be more than twice "
            f"ABRI_WORKER_POLL_SECONDS ({poll:g})"
        )
    return lease


def _suppression_k() -> int:
    from capacity.saturation import MAX_K

    k = _int("ABRI_SUPPRESSION_K", 3)
    if not 2 <= k <= MAX_K:
        raise SystemExit(
            f"ABRI_SUPPRESSION_K must be from 2 to {MAX_K} (the exact disclosure audit checks "
            f"every group of up to k - 1 secret facilities), got {k}"
        )
    return k


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    log_format: str = "console"  # "console" (readable) or "json"
    log_level: str = "INFO"
    address_key: str | None = None  # Fernet key(s), comma-separated, newest first
    address_key_file: str = "./abri-address.key"
    episode_key: str | None = None  # HMAC key for episode tokens (capacity/episode.py)
    episode_key_file: str = "./abri-episode.key"
    stale_minutes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_STALE_MINUTES))
    auto_migrate: bool = True
    run_jobs: bool = True  # run scheduled jobs inside `abri serve`
    suppression_k: int = 3
    # The same 20 connections at most as 10 + 10 overflow did, but kept: overflow connections
    # are closed on return, and under a fluctuating load they were opened and closed all the
    # time (asyncpg's connect, with its TLS attempt, was ~5 % of a hold's server CPU).
    pg_pool_size: int = 20
    pg_max_overflow: int = 0
    matcher_cache_seconds: float = 2.0  # 0: reload the matcher index on every search
    worker_poll_seconds: float = 5.0  # how often a worker checks or seeks leadership
    worker_lease_seconds: float = 30.0  # SQLite: a dead leader's lease runs out after this
    # `abri worker` serves its job metrics at http://HOST:PORT/metrics ("" = not served): its
    # job runs and the expiries it makes are counted in its own process, not in the API's.
    worker_metrics: str = ""
    rate_search_per_minute: int = 120  # per token and API process; 0: no limit
    rate_hold_per_minute: int = 30
    # live streams (server-sent events) open at once per token (per one-time link) and API
    # process; each polls the database every second. 0: no limit
    streams_per_token: int = 20
    auth_cache_seconds: float = 5.0  # a revocation from the CLI takes effect within this
    retention_days: int = 90  # personal data in closed holds and audit detail, then statistics
    # Move what exists once the app has started (modules, routes, the OpenAPI schema, the
    # areas) out of the cyclic garbage collector's sight: its full collections then no longer
    # walk them (~4 % of an API process's CPU under load). On for `abri serve` (from_env); off
    # by default for apps built in code, e.g. one per test.
    gc_freeze: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        stale = dict(DEFAULT_STALE_MINUTES)
        for kind in stale:
            stale[kind] = _int(f"ABRI_STALE_MINUTES_{kind.upper()}", stale[kind], 1)
        poll = _at_least("ABRI_WORKER_POLL_SECONDS", 5.0, 0.1)
        _flag("ABRI_WEB_SECURE_COOKIES", False)  # checked here, read per request (web/session)
        return cls(
            database_url=database_url(os.environ.get("ABRI_DATABASE_URL")),
            log_format=_choice("ABRI_LOG_FORMAT", "console", ("console", "json")),
            log_level=_log_level(),
            address_key=os.environ.get("ABRI_ADDRESS_KEY") or None,
            address_key_file=os.environ.get("ABRI_ADDRESS_KEY_FILE", "./abri-address.key"),
            episode_key=os.environ.get("ABRI_EPISODE_KEY") or None,
            episode_key_file=os.environ.get("ABRI_EPISODE_KEY_FILE", "./abri-episode.key"),
            stale_minutes=stale,
            auto_migrate=_flag("ABRI_AUTO_MIGRATE", True),
            run_jobs=_flag("ABRI_RUN_JOBS", True),
            suppression_k=_suppression_k(),
            pg_pool_size=_int("ABRI_PG_POOL_SIZE", 20, 1),
            pg_max_overflow=_int("ABRI_PG_MAX_OVERFLOW", 0, 0),
            matcher_cache_seconds=_at_least("ABRI_MATCHER_CACHE_SECONDS", 2.0, 0.0),
            worker_poll_seconds=poll,
            worker_lease_seconds=_lease_seconds(poll),
            worker_metrics=os.environ.get("ABRI_WORKER_METRICS", "").strip(),
            rate_search_per_minute=_int("ABRI_RATE_SEARCH_PER_MINUTE", 120, 0),
            rate_hold_per_minute=_int("ABRI_RATE_HOLD_PER_MINUTE", 30, 0),
            streams_per_token=_int("ABRI_STREAMS_PER_TOKEN", 20, 0),
            auth_cache_seconds=_at_least("ABRI_AUTH_CACHE_SECONDS", 5.0, 0.0),
            retention_days=int(_at_least("ABRI_RETENTION_DAYS", 90, 1)),
            gc_freeze=_flag("ABRI_GC_FREEZE", True),
        )
