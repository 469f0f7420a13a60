"""Settings that would make the worker spin, two workers lead at once, or the retention purge
empty closed holds as they close are refused at start, with the variable named."""

from __future__ import annotations

import pytest

from capacity.settings import Settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ABRI_WORKER_POLL_SECONDS": "0"}, "ABRI_WORKER_POLL_SECONDS must be at least 0.1"),
        ({"ABRI_WORKER_POLL_SECONDS": "nan"}, "ABRI_WORKER_POLL_SECONDS must be at least 0.1"),
        ({"ABRI_WORKER_POLL_SECONDS": "soon"}, "ABRI_WORKER_POLL_SECONDS must be a number"),
        ({"ABRI_RETENTION_DAYS": "0"}, "ABRI_RETENTION_DAYS must be at least 1"),
        # SQLAlchemy reads these as "no limit"
        ({"ABRI_PG_POOL_SIZE": "0"}, "ABRI_PG_POOL_SIZE must be at least 1"),
        ({"ABRI_PG_MAX_OVERFLOW": "-1"}, "ABRI_PG_MAX_OVERFLOW must be at least 0"),
        ({"ABRI_RATE_HOLD_PER_MINUTE": "-5"}, "ABRI_RATE_HOLD_PER_MINUTE must be at least 0"),
        ({"ABRI_STALE_MINUTES_REFUGE": "0"}, "ABRI_STALE_MINUTES_REFUGE must be at least 1"),
        (
            {"ABRI_WORKER_POLL_SECONDS": "10", "ABRI_WORKER_LEASE_SECONDS": "15"},
            "must be more than twice ABRI_WORKER_POLL_SECONDS",
        ),
    ],
)
def test_out_of_range_settings_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        Settings.from_env()


def test_the_lease_follows_a_longer_poll_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABRI_WORKER_POLL_SECONDS", "20")
    monkeypatch.delenv("ABRI_WORKER_LEASE_SECONDS", raising=False)
    s = Settings.from_env()
    assert (s.worker_poll_seconds, s.worker_lease_seconds) == (20, 60)
    monkeypatch.setenv("ABRI_WORKER_POLL_SECONDS", "0.3")
    monkeypatch.setenv("ABRI_WORKER_LEASE_SECONDS", "2")
    monkeypatch.setenv("ABRI_RETENTION_DAYS", "30")
    s = Settings.from_env()
    assert (s.worker_poll_seconds, s.worker_lease_seconds, s.retention_days) == (0.3, 2, 30)


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("ABRI_RUN_JOBS", "false", "run_jobs", False),
        ("ABRI_RUN_JOBS", "False", "run_jobs", False),
        ("ABRI_RUN_JOBS", "off", "run_jobs", False),
        ("ABRI_AUTO_MIGRATE", "NO", "auto_migrate", False),
        ("ABRI_AUTO_MIGRATE", "Off", "auto_migrate", False),
        ("ABRI_GC_FREEZE", "off", "gc_freeze", False),
        ("ABRI_RUN_JOBS", "on", "run_jobs", True),
        ("ABRI_RUN_JOBS", "TRUE", "run_jobs", True),
        ("ABRI_LOG_FORMAT", "JSON", "log_format", "json"),
        ("ABRI_LOG_LEVEL", "warn", "log_level", "WARNING"),
    ],
)
def test_switches_are_read_the_way_people_write_them(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str, expected: object
) -> None:
    """`ABRI_RUN_JOBS=False` or `=off` left the jobs on, `ABRI_AUTO_MIGRATE=Off` migrated,
    `ABRI_LOG_FORMAT=JSON` logged for humans: only lower-case 0/false/no and json counted."""
    monkeypatch.setenv(name, value)
    assert getattr(Settings.from_env(), field) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ABRI_RUN_JOBS", "nope"),
        ("ABRI_AUTO_MIGRATE", "2"),
        ("ABRI_LOG_FORMAT", "jsonl"),
        ("ABRI_LOG_LEVEL", "verbose"),
        ("ABRI_MATCHER_CACHE_SECONDS", "two"),
        ("ABRI_AUTH_CACHE_SECONDS", "-1"),
    ],
)
def test_a_value_that_means_nothing_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        Settings.from_env()
