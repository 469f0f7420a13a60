"""What an administrator following the runbook meets when a command is mistyped or the
environment is wrong: a one-line error naming what to fix and exit status 2, never a Python
traceback, and never a silent success that did nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]


def abri(*args: str, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ABRI_DATABASE_URL": url, "ABRI_ADDRESS_KEY": TEST_KEY, **env}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        timeout=120,
    )


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr


def test_downgrade_needs_a_revision_and_says_where_the_database_is(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    assert abri("db", "upgrade", url=url).returncode == 0
    head = abri("db", "current", url=url).stdout.strip()

    # `abri db downgrade` without a revision used to "downgrade" to head: nothing, exit 0.
    r = abri("db", "downgrade", url=url)
    assert r.returncode == 2, r.stderr
    assert "revision" in r.stderr
    no_traceback(r)

    r = abri("db", "downgrade", "-1", url=url)
    assert r.returncode == 0, r.stderr
    before = abri("db", "current", url=url).stdout.strip()
    assert before != head
    assert f"database at {before}" in r.stderr

    # A revision that does not exist: one line, exit 2.
    r = abri("db", "downgrade", "16", url=url)
    assert r.returncode == 2
    assert "16" in r.stderr
    no_traceback(r)
    assert abri("db", "current", url=url).stdout.strip() == before

    r = abri("db", "upgrade", url=url)
    assert r.returncode == 0 and f"database at {head}" in r.stderr
