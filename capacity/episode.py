"""The key that pseudonymises requesters' episode tokens (HMAC-SHA256).

A police officer's episode token is often the PV (procès-verbal) or case number: few enough
values that a plain hash of ``operator:token`` in a database dump or backup is reversed by
trying them all. What is stored instead is ``HMAC-SHA256(key, "operator:token")``, with a key
kept out of the database and its backups, like the address key (``capacity/crypto.py``).

Its own key, not the address key's: it has another purpose (linking a household's searches and
holds, not opening secrets) and another rotation (a new address key re-encrypts what is stored;
a new episode key only stops the dedupe of episodes that span the change, since a keyed hash
cannot be re-keyed without the token, which is never stored).

Keys come from ``ABRI_EPISODE_KEY``. Without it, a key file is created beside the database on
first use (mode 0600) so a fresh laptop and the demo work; on PostgreSQL, where several
processes share the data and must share the key, a process without it refuses to start.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from capacity.errors import AbriError
from capacity.settings import Settings

if TYPE_CHECKING:
    from capacity.db import Database

MIN_LENGTH = 32

log = structlog.get_logger("abri.keys")

MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class EpisodeKeyError(AbriError):
    code = "episode-key"
    status = 500
    title = "Episode key unavailable"


class EpisodeKey:
    def __init__(self, secret: bytes, *, source: str) -> None:
        if len(secret) < MIN_LENGTH:
            raise EpisodeKeyError(
                f"{source}: the episode key must be at least {MIN_LENGTH} characters "
                f"(a random secret, not a word). Make one with: {MAKE_KEY}"
            )
        self._secret = secret
        self.source = source

    def digest(self, operator_id: int | None, token: str) -> str:
        """What is kept of ``token``: with its operator, so two operators' tokens never meet."""
        return hmac.new(self._secret, f"{operator_id}:{token}".encode(), hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Tells two processes' keys apart without showing either (``abri check``)."""
        return hmac.new(self._secret, b"abri episode key fingerprint", hashlib.sha256).hexdigest()[
            :12
        ]

    @classmethod
    def configured(cls, settings: Settings) -> EpisodeKey:
        """The key ``settings`` name (see :meth:`from_settings`); read once per process."""
        return _configured(settings.episode_key, settings.episode_key_file, settings.database_url)

    @classmethod
    def from_settings(
        cls, key_env: str | None, key_file: str, *, database_url: str | None = None
    ) -> EpisodeKey:
        """``ABRI_EPISODE_KEY``, else the key file, made on first use for the embedded SQLite
        database only: on PostgreSQL a key made by one process would not dedupe with another's."""
        if key_env and key_env.strip():
            return cls(key_env.strip().encode(), source="ABRI_EPISODE_KEY")
        path = Path(key_file)
        if not path.exists() and database_url and not _sqlite(database_url):
            raise EpisodeKeyError(
                f"ABRI_EPISODE_KEY is not set (and there is no key file {path}): on PostgreSQL "
                "every process needs the same key, else the same household's searches and holds "
                "are counted apart. Put it in the environment file; make it ONCE with: "
                f"{MAKE_KEY}"
            )
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process on this laptop made it first: its key, then
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(32))
        return cls(path.read_bytes().strip(), source=f"the key file {path} (ABRI_EPISODE_KEY_FILE)")


def episode_hash(key: EpisodeKey | None, operator_id: int | None, token: str) -> str:
    """What is kept of a requester's episode token (searches and holds alike): a keyed hash
    with its operator, so two operators' tokens never meet, the token itself is never stored,
    and a dump or backup without the key cannot be searched for a case number."""
    if key is None:
        raise EpisodeKeyError("An episode token was given without the episode key.")
    return key.digest(operator_id, token)


#: ``key_marks.purpose`` of the episode key's fingerprint
MARK = "episode"
#: the fingerprint is recorded (``record_mark``) or compared (``compare_mark``): it matches,
#: another key's is recorded, or none is yet (or the table is not there: an older schema)
MarkState = Literal["ok", "wrong", "none"]
WRONG_KEY = (
    "wrong: this process's ABRI_EPISODE_KEY is not the deployment's (fingerprint {mine}, "
    "recorded {theirs}): its searches and holds would not recognise a household's earlier "
    "ones. Give every process the same key (compare `abri check`), or, after changing it on "
    "every host on purpose, record the new one with `abri episode-key adopt`."
)


async def compare_mark(db: Database, key: EpisodeKey) -> tuple[MarkState, str | None]:
    """Whether ``key`` is the one recorded (read only), and the recorded fingerprint."""
    from capacity.models import KeyMark

    async with db.read() as s:
        theirs = await s.scalar(select(KeyMark.fingerprint).where(KeyMark.purpose == MARK))
    if theirs is None:
        return "none", None
    return ("ok" if hmac.compare_digest(theirs, key.fingerprint) else "wrong"), theirs


async def record_mark(
    db: Database, key: EpisodeKey, now: datetime, *, replace: bool = False
) -> tuple[MarkState, str | None]:
    """Record ``key``'s fingerprint if none is (the first process to start), or in place of
    the recorded one with ``replace`` (``abri episode-key adopt``); then compare."""
    from capacity.models import KeyMark

    state, theirs = await compare_mark(db, key)
    if state == "ok" or (state == "wrong" and not replace):
        return state, theirs
    try:
        async with db.write() as s:
            if state == "wrong":
                await s.execute(delete(KeyMark).where(KeyMark.purpose == MARK))
            s.add(KeyMark(purpose=MARK, fingerprint=key.fingerprint, recorded_at=now))
    except IntegrityError:
        pass  # another process recorded its own first: compared below
    return await compare_mark(db, key)


async def announce_mark(db: Database, key: EpisodeKey, now: datetime) -> MarkState | None:
    """At a process's start: record the fingerprint if none is, and say in the log (an ERROR)
    when another key's is recorded. None: the database could not say (down, or its schema
    older than ``key_marks``): readiness records or compares later."""
    try:
        state, theirs = await record_mark(db, key, now)
    except Exception:
        return None
    if state == "wrong":
        log.error("episode_key_mismatch", mine=key.fingerprint, recorded=theirs)
    return state


def previous_episode_hash(operator_id: int | None, token: str) -> str:
    """What the release before this key kept of ``token`` (a plain SHA-256 with its operator).
    Compared with rows that release stored, never stored again: a household whose hold spans
    the upgrade keeps it, and its requester's retries replay it (until those rows close)."""
    return hashlib.sha256(f"{operator_id}:{token}".encode()).hexdigest()


@functools.lru_cache(maxsize=8)
def _configured(key_env: str | None, key_file: str, database_url: str) -> EpisodeKey:
    return EpisodeKey.from_settings(key_env, key_file, database_url=database_url)


def _sqlite(url: str) -> bool:
    from capacity.db import is_sqlite

    return is_sqlite(url)
