"""Backup and restore, for both databases (``abri backup FILE`` / ``abri restore FILE``).

* SQLite: the online backup API (``sqlite3.Connection.backup``): a consistent copy while the
  service keeps running, WAL included. Restore copies the file back the same way.
* PostgreSQL: ``pg_dump --format=custom`` (consistent snapshot, compressed) and ``pg_restore``
  into an **empty** database (``--no-owner --exit-on-error``, single transaction), so a
  failed restore leaves nothing half-done. The client tools must be at least the server's
  major version.

Addresses stay encrypted in the backup: keep ``ABRI_ADDRESS_KEY`` out of backups, and you
need it to read addresses after a restore.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from capacity.db import is_sqlite


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("backup needs an SQLite file, not an in-memory database")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL for the PostgreSQL tools, with the password passed in the environment."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    plain = u.set(drivername="postgresql", password=None)
    if "ssl" in u.query:  # asyncpg's name (settings.database_url) for libpq's sslmode
        query = dict(u.query)
        query.setdefault("sslmode", query.pop("ssl"))
        plain = plain.set(query=query)
    return plain.render_as_string(hide_password=False), env


class BackupFailed(RuntimeError):
    """A backup or restore that did not happen, with the reason to show the operator."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(f"{name} is not installed (Debian: postgresql-client)")
    return found


def _run_tool(args: list[str], env: dict[str, str]) -> None:
    """Run pg_dump / pg_restore; on failure, raise with what the tool said (its stderr names
    the reason: a version mismatch, a database that does not exist or is not empty...)."""
    try:
        subprocess.run(args, check=True, env=env, capture_output=True)
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode("utf-8", "replace").strip()
        lines = said.splitlines()
        if len(lines) > 20:
            lines = [*lines[:20], "…"]
        name = Path(args[0]).name
        raise BackupFailed(
            f"{name} failed (exit status {exc.returncode})"
            + (":\n" + "\n".join(lines) if lines else "")
        ) from None


def _owner_only(target: Path) -> None:
    """Create (or truncate) ``target`` readable by its owner only, before the tool writes it:
    a backup is the whole database but the addresses (secret refuges' aliases, municipalities
    and intake phones, holds' callbacks, the audit log), and a umask of 022 made it
    world-readable. pg_dump and SQLite write into the existing file, keeping its mode."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file from an earlier backup keeps its old mode otherwise
    finally:
        os.close(fd)


def backup(url: str, target: Path) -> Path:
    """Write a consistent backup of the database at ``url`` to ``target`` (mode 0600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(url):
        source = _sqlite_path(url)
        if not source.is_file():  # connecting would create an empty database, and back it up
            raise BackupFailed(f"{source}: no such database file (check ABRI_DATABASE_URL)")
        _owner_only(target)
        try:
            with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
                src.backup(dst)
        except sqlite3.Error as exc:
            raise BackupFailed(
                f"cannot read {source} ({exc}); if its disk went read-only, stop Abri and copy "
                "the file (with its -wal file, if any) instead"
            ) from None
        return target
    conninfo, env = _libpq(url)
    dump = _tool("pg_dump")
    _owner_only(target)
    _run_tool([dump, "--format=custom", "--no-owner", f"--file={target}", conninfo], env)
    return target


def _must_be_empty(conninfo: str, env: dict[str, str]) -> None:
    """Say so before pg_restore stumbles on its first clash (a function or table that exists
    already), which is what pointing it at the live database, or at a new one an `abri serve`
    has migrated meanwhile, used to answer."""
    try:
        out = subprocess.run(
            [
                _tool("psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                f"--dbname={conninfo}",
                "--command=SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or "").strip().splitlines()
        raise BackupFailed("psql failed" + (f": {said[0]}" if said else "")) from None
    if out and out != "0":
        database = conninfo.rsplit("/", 1)[-1].split("?")[0]
        raise BackupFailed(
            f"the database {database} is not empty ({out} objects in its public schema): "
            "restore into a new one (createdb), as the runbook says"
        )


def restore(source: Path, url: str) -> None:
    """Restore ``source`` into the (empty) database at ``url``."""
    if not source.is_file():
        raise BackupFailed(f"{source}: no such file")
    if is_sqlite(url):
        path = _sqlite_path(url)
        if path.exists() and path.stat().st_size > 0:
            raise BackupFailed(
                f"{path} exists and is not empty; restore into a new file (or move it away first)"
            )
        try:
            with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
        except sqlite3.DatabaseError as exc:
            path.unlink(missing_ok=True)  # nothing half-restored left behind
            raise BackupFailed(f"{source} is not an SQLite backup ({exc})") from None
        return
    conninfo, env = _libpq(url)
    _must_be_empty(conninfo, env)
    _run_tool(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={conninfo}",
            str(source),
        ],
        env,
    )
