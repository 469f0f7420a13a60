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
