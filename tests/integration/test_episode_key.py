"""Episode tokens (often a PV or case number) are kept as an HMAC under ABRI_EPISODE_KEY: a
database dump or backup cannot be searched for a case number by hashing every candidate."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from api.app import create_app
from capacity.clock import FrozenClock
from capacity.db import Database
from capacity.episode import EpisodeKey, EpisodeKeyError
from capacity.models import Hold, Operator, StandingRequest, UnmetDemand
from capacity.settings import Settings
from placement.holds_service import counters_agree, household_key, request_hash
from placement.household import SearchRequest
from placement.policy import AccessPolicy
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World, bearer

ROOT = Path(__file__).resolve().parents[2]
PV = "PV 2026/004217"
WOMAN = {"adults": [{"gender": "female"}]}


@pytest.fixture
async def setup(world: World) -> dict[str, Any]:
    await world.operator("Refuges", "shelter_operator")
    await world.operator("Zone Nord", "police")
    # takes no undocumented household: the search below finds nothing (unmet demand)
    free = await world.facility("Refuges", "Open", policy=AccessPolicy())
    return {"beds": free.pools[0].ref, "police": await world.token("Zone Nord", "police")}


def hold(pool_ref: str) -> dict[str, Any]:
    return {"poolRef": pool_ref, "need": "ipv", "household": WOMAN, "episodeToken": PV}


UNMET = {"household": {**WOMAN, "residenceStatus": "undocumented"}, "need": "ipv"}


@asynccontextmanager
async def instance(settings: Settings, clock: FrozenClock, key: str) -> AsyncIterator[AsyncClient]:
    """One API process: its own database connections, its own key."""
    db = Database(settings.database_url)
    app = create_app(Settings(**{**settings.__dict__, "episode_key": key}), db=db, clock=clock)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await db.dispose()


async def test_a_process_with_another_key_is_not_ready_until_the_key_is_adopted(
    settings: Settings, clock: FrozenClock, world: World
) -> None:
    """A second host started with another ABRI_EPISODE_KEY (a typo in its environment file)
    answered ready, and counted one household as several. The first process to answer records
    its key's fingerprint; one with another key is not ready (and says why, never the key)
    until a deliberate change is recorded with `abri keys adopt-episode`."""
    from capacity.episode import record_mark

    other = "another-deployment-key-0123456789abcdefgh"
    async with (
        instance(settings, clock, TEST_EPISODE_KEY) as first,
        instance(settings, clock, other) as second,
    ):
        r = await first.get("/health/ready")
        assert r.status_code == 200, r.text
        r = await second.get("/health/ready")
        assert r.status_code == 503 and "episodeKey" in r.json(), r.text
        said = r.json()["episodeKey"]
        mine = EpisodeKey(other.encode(), source="t").fingerprint
        assert said.startswith("wrong") and mine in said and other not in said, said
        assert (await first.get("/health/ready")).status_code == 200
        # the key changed on every host on purpose: the new one recorded, the old is wrong
        await record_mark(
            world.db, EpisodeKey(other.encode(), source="t"), clock.now(), replace=True
        )
        assert (await second.get("/health/ready")).status_code == 200
        assert (await first.get("/health/ready")).status_code == 503


async def unmet(c: AsyncClient, token: str) -> bool:
    body = {**UNMET, "episodeToken": PV}
    r = await c.post("/placements/search", json=body, headers=bearer(token))
    assert r.status_code == 200 and r.json()["options"] == [], r.text
    return bool(r.json()["unmetRecorded"])


async def test_the_stored_hashes_are_not_the_plain_sha256_of_operator_and_token(
    client: AsyncClient, world: World, setup: dict[str, Any]
) -> None:
    police = bearer(setup["police"])
    assert await unmet(client, setup["police"])
    r = await client.post(
        "/holds", headers={**police, "Idempotency-Key": "episode-1"}, json=hold(setup["beds"])
    )
    assert r.status_code == 201, r.text
    async with world.db.read() as s:
        op = await s.scalar(select(Operator.id).where(Operator.name == "Zone Nord"))
        searched = await s.scalar(select(UnmetDemand.episode_hash))
        held = (await s.execute(select(Hold.episode_hash, Hold.household_key))).one()
    plain = hashlib.sha256(f"{op}:{PV}".encode()).hexdigest()
    keyed = hmac.new(TEST_EPISODE_KEY.encode(), f"{op}:{PV}".encode(), hashlib.sha256).hexdigest()
    assert searched == held.episode_hash == keyed != plain
    assert held.household_key != household_key(plain, "ipv", WOMAN)


async def test_two_processes_with_one_key_dedupe_an_episode_and_another_key_does_not(
    settings: Settings, clock: FrozenClock, world: World, setup: dict[str, Any]
) -> None:
    police = bearer(setup["police"])
    body = hold(setup["beds"])
    async with (
        instance(settings, clock, TEST_EPISODE_KEY) as a,
        instance(settings, clock, TEST_EPISODE_KEY) as b,
    ):
        first = await a.post(
            "/holds", headers={**police, "Idempotency-Key": "episode-1"}, json=body
        )
        assert first.status_code == 201, first.text
        again = await b.post(
            "/holds", headers={**police, "Idempotency-Key": "episode-2"}, json=body
        )
        assert again.status_code == 200 and again.json()["ref"] == first.json()["ref"]
        assert await unmet(a, setup["police"]) is True
        assert await unmet(b, setup["police"]) is False
    # a rotated key (or a process with another one): the episode is not recognised — counted
    # again, held again — but nothing fails and no invariant breaks
    async with instance(settings, clock, "another-episode-key-" + "x" * 20) as c:
        other = await c.post(
            "/holds", headers={**police, "Idempotency-Key": "episode-3"}, json=body
        )
        assert other.status_code == 201 and other.json()["ref"] != first.json()["ref"]
        assert await unmet(c, setup["police"]) is True
    async with world.db.read() as s:
        n = await s.scalar(select(func.count()).select_from(Hold).where(Hold.state == "held"))
    assert n == 2
    assert await counters_agree(world.db) == []


def test_a_missing_key_on_postgresql_refuses_clearly_and_sqlite_makes_one(
    tmp_path: Path,
) -> None:
    pg = "postgresql+asyncpg://abri@db.internal/abri"
    with pytest.raises(EpisodeKeyError, match="ABRI_EPISODE_KEY is not set"):
        EpisodeKey.from_settings(None, str(tmp_path / "none.key"), database_url=pg)
    assert not (tmp_path / "none.key").exists()
    with pytest.raises(EpisodeKeyError, match="ABRI_EPISODE_KEY"):
        create_app(
            Settings(
                database_url=pg,
                address_key=TEST_KEY,
                episode_key_file=str(tmp_path / "none.key"),
            )
        )
    # the environment file example's placeholder is not a key
    with pytest.raises(EpisodeKeyError, match="at least 32"):
        EpisodeKey.from_settings("CHANGE-ME", "unused", database_url=pg)
    # a laptop (and the demo) needs no configuration: a key file, made once, 0600
    lite, made = f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", tmp_path / "laptop.key"
    one = EpisodeKey.from_settings(None, str(made), database_url=lite)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    two = EpisodeKey.from_settings(None, str(made), database_url=lite)
    assert one.digest(1, PV) == two.digest(1, PV)


@pytest.mark.postgres
def test_serve_worker_and_check_stop_without_the_key_on_postgresql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("pg_database")
    base = {**os.environ, "ABRI_DATABASE_URL": url, "ABRI_ADDRESS_KEY": TEST_KEY}
    base["ABRI_AUTO_MIGRATE"] = "0"
    base["ABRI_EPISODE_KEY_FILE"] = str(tmp_path / "episode.key")

    def abri(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            capture_output=True,
            text=True,
            env={**base, **env},
            cwd=ROOT,
            timeout=120,
        )

    for args in (["serve", "--port", "1"], ["worker"], ["check"]):
        r = abri(*args, ABRI_EPISODE_KEY="")
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "ABRI_EPISODE_KEY" in r.stderr, r.stderr
    assert not (tmp_path / "episode.key").exists()
    # the migrations need no episode key
    assert abri("db", "current", ABRI_EPISODE_KEY="").returncode == 0
    # with it, `abri check` names where it came from and its fingerprint (same in every process)
    r = abri("check", ABRI_EPISODE_KEY=TEST_EPISODE_KEY)
    fingerprint = EpisodeKey(TEST_EPISODE_KEY.encode(), source="t").fingerprint
    assert f"episode key from ABRI_EPISODE_KEY, fingerprint {fingerprint}" in r.stderr, r.stderr
    assert r.returncode == 0 and "no fingerprint recorded yet" in r.stderr, r.stderr
    # recorded (as the first API process or worker does), then compared by `abri check`
    r = abri("keys", "adopt-episode", ABRI_EPISODE_KEY=TEST_EPISODE_KEY)
    assert r.returncode == 0 and fingerprint in r.stderr, r.stderr
    r = abri("check", ABRI_EPISODE_KEY=TEST_EPISODE_KEY)
    assert r.returncode == 0 and "is the deployment's" in r.stderr, r.stderr
    other = "another-deployment-key-0123456789abcdefgh"
    r = abri("check", ABRI_EPISODE_KEY=other)
    assert r.returncode == 1 and "episode key: wrong" in r.stderr, r.stderr
    assert other not in r.stderr, r.stderr


async def test_the_request_hashes_do_not_reveal_the_token_either(
    client: AsyncClient, world: World, setup: dict[str, Any]
) -> None:
    """A hold's and a standing request's request_hash (kept to recognise an Idempotency-Key's
    replay) hashed the request with its episodeToken in clear: with the household, need and
    callback stored beside it, a dump gave the PV number back by trying them all."""
    police = {**bearer(setup["police"]), "Idempotency-Key": "episode-7"}
    body = hold(setup["beds"])
    first = await client.post("/holds", headers=police, json=body)
    assert first.status_code == 201, first.text
    wanted = {"search": {**UNMET, "episodeToken": PV}, "minutes": 60}
    standing = await client.post("/standing-requests", headers=police, json=wanted)
    assert standing.status_code == 201, standing.text
    async with world.db.read() as s:
        row = (await s.execute(select(Hold.request_hash, Hold.household, Hold.callback))).one()
        waiting = await s.scalar(select(StandingRequest.request_hash))
    guess = {"poolRef": setup["beds"], "household": row.household, "need": "ipv"}
    guess |= {"minutes": None, "callback": row.callback, "episodeToken": PV}
    assert request_hash(guess) != row.request_hash
    search = msgspec.to_builtins(msgspec.convert(wanted["search"], SearchRequest))
    assert request_hash({"search": search, "minutes": 60, "callback": None}) != waiting
    # the key still replays its request, and still refuses it for another episode
    again = await client.post("/holds", headers=police, json=body)
    assert again.status_code == 200 and again.json()["ref"] == first.json()["ref"]
    other = await client.post("/holds", headers=police, json={**body, "episodeToken": "PV 2"})
    assert other.status_code == 422, other.text
    again = await client.post("/standing-requests", headers=police, json=wanted)
    assert again.status_code == 200 and again.json()["ref"] == standing.json()["ref"], again.text


async def _as_the_previous_release_kept_it(world: World, body: dict[str, Any]) -> None:
    """Rewrite the hold and the standing request as release 1cec1cf stored them: a plain
    SHA-256 of operator and token, and request hashes over the token in clear."""
    async with world.db.write() as s:
        operator_id = await s.scalar(select(Operator.id).where(Operator.name == "Zone Nord"))
        plain = hashlib.sha256(f"{operator_id}:{PV}".encode()).hexdigest()
        row = (await s.execute(select(Hold.id, Hold.household, Hold.callback))).one()
        old = {"poolRef": body["poolRef"], "household": row.household, "need": "ipv"}
        old |= {"minutes": None, "callback": row.callback, "episodeToken": PV}
        await s.execute(
            Hold.__table__.update()
            .where(Hold.id == row.id)
            .values(
                request_hash=request_hash(old),
                episode_hash=plain,
                household_key=household_key(plain, "ipv", row.household),
            )
        )
        search = msgspec.to_builtins(msgspec.convert({**UNMET, "episodeToken": PV}, SearchRequest))
        await s.execute(
            StandingRequest.__table__.update().values(
                request_hash=request_hash({"search": search, "minutes": 60, "callback": None})
            )
        )


async def test_a_retry_across_the_upgrade_replays_the_hold_made_before_it(
    client: AsyncClient, world: World, setup: dict[str, Any]
) -> None:
    """The SDK retries a hold with the same Idempotency-Key through the proxy's 502s while the
    API restarts: a hold made by the previous release (request hash over the token in clear)
    is its answer, not a 422 `idempotency-key-reused` that makes the requester's system try
    a new key and hold a second unit for the same household."""
    police = {**bearer(setup["police"]), "Idempotency-Key": "episode-upgrade"}
    body = hold(setup["beds"])
    first = await client.post("/holds", headers=police, json=body)
    assert first.status_code == 201, first.text
    wanted = {"search": {**UNMET, "episodeToken": PV}, "minutes": 60}
    standing = await client.post("/standing-requests", headers=police, json=wanted)
    assert standing.status_code == 201, standing.text
    await _as_the_previous_release_kept_it(world, body)

    again = await client.post("/holds", headers=police, json=body)
    assert again.status_code == 200 and again.json()["ref"] == first.json()["ref"], again.text
    again = await client.post("/standing-requests", headers=police, json=wanted)
    assert again.status_code == 200 and again.json()["ref"] == standing.json()["ref"], again.text
    # the key is still refused for another episode
    other = await client.post("/holds", headers=police, json={**body, "episodeToken": "PV 2"})
    assert other.status_code == 422, other.text
    # and the same household asking again with a new key gets its hold, not a second one
    fresh = {**bearer(setup["police"]), "Idempotency-Key": "episode-upgrade-2"}
    twice = await client.post("/holds", headers=fresh, json=body)
    assert twice.status_code == 200 and twice.json()["ref"] == first.json()["ref"], twice.text
    async with world.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Hold)) == 1
