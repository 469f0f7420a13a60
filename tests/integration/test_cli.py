"""The `abri` command, run as a user would (a subprocess on a real database file)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY


def abri(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABRI_DATABASE_URL": url, "ABRI_ADDRESS_KEY": TEST_KEY}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def cli_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return request.getfixturevalue("db_url")  # migrated, truncated by the db fixture


def test_operator_token_facility_import_flow(
    cli_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if "postgresql" in cli_url:
        request.getfixturevalue("db")  # truncate before and after
    root = Path(__file__).resolve().parents[2]
    r = abri(cli_url, "db", "upgrade", cwd=root)
    assert r.returncode == 0, r.stderr
    r = abri(cli_url, "operator", "create", "Refuges Liège", "--kind", "shelter_operator", cwd=root)
    assert r.returncode == 0, r.stderr
    r = abri(
        cli_url, "operator", "create", "Zone Liège", "--kind", "police", "--home", "62063", cwd=root
    )
    assert r.returncode == 0, r.stderr
    r = abri(
        cli_url, "operator", "create", "Zone X", "--kind", "police", "--home", "99999", cwd=root
    )
    assert r.returncode == 2 and "99999" in r.stderr
    r = abri(cli_url, "token", "create", "--operator", "Refuges Liège", "--role", "staff", cwd=root)
    assert r.returncode == 0, r.stderr
    token = r.stdout
    assert token.startswith("abri_") and token.count("\n") == 1 and " " not in token.strip()
    r = abri(
        cli_url, "token", "create", "--operator", "Refuges Liège", "--role", "police", cwd=root
    )
    assert r.returncode == 2 and "cannot be given" in r.stderr and r.stdout == ""
    csv = tmp_path / "places.csv"
    csv.write_text(
        "operator,alias,municipality,template,intake_phone\n"
        "Refuges Liège,Refuge L-1,62063,ipv_refuge,+32 4 555 00 00\n"
        "Refuges Liège,Refuge L-2,00000,ipv_refuge,+32 4 555 00 01\n"
    )
    r = abri(cli_url, "facilities", "import", str(csv), cwd=root)
    assert r.returncode == 2
    assert "row 3" in r.stderr
    csv.write_text(
        "operator,alias,municipality,template,intake_phone\n"
        "Refuges Liège,Refuge L-1,62063,ipv_refuge,+32 4 555 00 00\n"
    )
    r = abri(cli_url, "facilities", "import", str(csv), cwd=root)
    assert r.returncode == 0, r.stderr
    # a secret refuge whose intake number is a landline: its area code tells where it is
    assert "warning: facility 1 (Refuge L-1)" in r.stderr and "area code 04 " in r.stderr
    r = abri(
        cli_url,
        "facilities",
        "create",
        "--operator",
        "Refuges Liège",
        "--alias",
        "Hotel 1",
        "--municipality",
        "63023",
        "--template",
        "requisitioned_crisis_hotel",
        "--intake-phone",
        "+32 87 55 00 00",
        "--pool",
        "Rooms:room:2:12",
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "area code 087 " in r.stderr
    # the pool's id, which `abri feeds add --map` asks for, is printed with it
    m = re.search(r"^  pool (\d+): Rooms \(12 room × 2 place\(s\)\)$", r.stderr, re.M)
    assert m, r.stderr
    hotel = r.stdout.strip()
    r = abri(cli_url, "facilities", "pools", hotel, cwd=root)
    assert r.returncode == 0
    assert r.stdout == f"{m.group(1)}\t{hotel}\tHotel 1\tRooms (12 room × 2 place(s))\n"
    r = abri(cli_url, "facilities", "pools", "999999", cwd=root)
    assert r.returncode == 2 and "no facility 999999" in r.stderr
    r = abri(
        cli_url,
        "facilities",
        "create",
        "--operator",
        "Refuges Liège",
        "--alias",
        "Youth hostel 2",
        "--municipality",
        "62063",
        "--template",
        "requisitioned_other",
        "--intake-phone",
        "+32 4 555 00 09",
        "--pool",
        "Rooms:room:4:10",
        "--valid-from",
        "2026-12-01T00:00:00+01:00",
        "--planned-end",
        "2027-03-31T23:59:00+02:00",
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    r = abri(cli_url, "facilities", "list", cwd=root)
    lines = r.stdout.strip().splitlines()
    assert [ln.split("\t")[-1] for ln in lines] == ["Refuge L-1", "Hotel 1", "Youth hostel 2"]
    # `abri check` lists them as advice; its exit status stays the counters'
    r = abri(cli_url, "check", cwd=root)
    assert r.returncode == 0 and "counters agree" in r.stderr, r.stderr
    assert r.stderr.count("warning: facility") == 3, r.stderr
    r = abri(
        cli_url,
        "facilities",
        "create",
        "--operator",
        "Refuges Liège",
        "--alias",
        "Bad dates",
        "--municipality",
        "62063",
        "--template",
        "requisitioned_other",
        "--intake-phone",
        "+32 4 555 00 10",
        "--planned-end",
        "next spring",
        cwd=root,
    )
    assert r.returncode == 2 and "plannedEnd" in r.stderr, r.stderr


def test_token_list_tells_an_organisations_tokens_apart(tmp_path: Path) -> None:
    """RUNBOOK, rotating a token: create the new one, then `abri token revoke ID`, with ids
    from `abri token list`. An organisation with an office and a night-phone token got two
    lines differing only by a random prefix: which one to revoke was a guess. The label
    given at creation, and the creation date, are now listed."""
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    root = Path(__file__).resolve().parents[2]
    assert abri(url, "db", "upgrade", cwd=root).returncode == 0
    assert abri(url, "operator", "create", "CAW", "--kind", "caw", cwd=root).returncode == 0
    for label in ("office", "night phone"):
        r = abri(
            url, "token", "create", "--operator", "CAW", "--role", "staff", "--label", label,
            cwd=root,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    assert abri(url, "token", "create", "--operator", "CAW", "--role", "staff", cwd=root)
    rows = [ln.split("\t") for ln in abri(url, "token", "list", cwd=root).stdout.splitlines()]
    assert [r[0] for r in rows] == ["1", "2", "3"]  # the id stays first (scripts cut -f1)
    assert [r[-1] for r in rows] == ["office", "night phone", "-"]
    assert all(r[4] == "active" for r in rows)
    assert all(len(r[5]) == 10 and r[5][4] == "-" for r in rows)  # created, a date


def test_feeds_list_does_not_call_a_feed_never_polled_unhealthy(tmp_path: Path) -> None:
    """Right after `abri feeds add`, `abri feeds list` said "unhealthy" with no error: the
    runbook's "Feed unhealthy" procedure then had nothing to go on."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    root = Path(__file__).resolve().parents[2]
    assert abri(url, "db", "upgrade", cwd=root).returncode == 0
    assert abri(url, "operator", "create", "Hotels", "--kind", "hotel_partner", cwd=root)
    r = abri(
        url, "facilities", "create", "--operator", "Hotels", "--alias", "Ibis",
        "--municipality", "21004", "--template", "requisitioned_crisis_hotel",
        "--intake-phone", "+32 2 555 00 00", "--pool", "Rooms:room:2:10", cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = abri(
        url, "feeds", "add", "--name", "ibis", "--operator", "Hotels", "--format",
        "json_inventory", "--map", "DBL=1", "https://pms.example.invalid/inventory", cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = abri(url, "feeds", "list", cwd=root).stdout.strip()
    assert "\tnot polled yet\t" in line and "unhealthy" not in line, line
    assert line.endswith("\twarnings=-\talerting=no"), line


def test_a_control_or_bidi_character_in_a_text_argument_is_refused(
    cli_url: str, request: pytest.FixtureRequest
) -> None:
    """An operator name, an alias or a status reason pasted into the shell with a bidi
    override (U+202E) or an escape (U+001B): stored as typed, then shown to every reader.
    The command now refuses what the API refuses (``capacity.text``), naming the argument and
    the character, and writes nothing; a handover protocol keeps its line breaks."""
    if "postgresql" in cli_url:
        request.getfixturevalue("db")  # truncate before and after
    root = Path(__file__).resolve().parents[2]
    assert abri(cli_url, "db", "upgrade", cwd=root).returncode == 0
    r = abri(cli_url, "operator", "create", "Refuges \u202eLiège", "--kind", "cpas", cwd=root)
    assert r.returncode == 2 and "name:" in r.stderr and "U+202E" in r.stderr, r.stderr
    assert "Refuges" not in abri(cli_url, "operator", "list", cwd=root).stdout
    assert (
        abri(cli_url, "operator", "create", "Refuges", "--kind", "cpas", cwd=root).returncode == 0
    )
    create = (
        "facilities", "create", "--operator", "Refuges", "--municipality", "62063",
        "--template", "ipv_refuge", "--intake-phone", "+32 470 55 00 00",
    )  # fmt: skip
    r = abri(cli_url, *create, "--alias", "Refuge\x1b[31m L-1", cwd=root)
    assert r.returncode == 2 and "alias:" in r.stderr and "U+001B" in r.stderr, r.stderr
    assert "Refuge" not in abri(cli_url, "facilities", "list", cwd=root).stdout
    r = abri(cli_url, *create, "--alias", "Refuge L-1", "--handover", "Call.\nThen come.", cwd=root)
    assert r.returncode == 0, r.stderr
    r = abri(cli_url, "facilities", "status", "1", "reduced", "--reason", "Water\x07", cwd=root)
    assert r.returncode == 2 and "reason:" in r.stderr and "U+0007" in r.stderr, r.stderr
    assert "\treduced" not in abri(cli_url, "facilities", "list", cwd=root).stdout
