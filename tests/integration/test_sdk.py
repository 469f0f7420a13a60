"""The SDK end to end against a REAL Abri on loopback: uvicorn in a thread on a free port, a
SQLite file seeded through the World builder; no mocks. A small TCP proxy drops a response to
show that ``hold`` retries with the same Idempotency-Key and never makes two holds."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select

from api.app import create_app
from capacity.clock import FrozenClock
from capacity.commands import PoolCreate
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.models import Hold as HoldRow
from capacity.settings import Settings
from clients import (
    AbriClient,
    AsyncAbriClient,
    Conflict,
    Forbidden,
    Hold,
    Invalid,
    NoLongerFree,
    NotFound,
    Pool,
    SearchResult,
    StaffHold,
    VersionMismatch,
)
from placement.household import Adult, AvoidAreas, Child, Household, SearchRequest
from placement.refcode import check_symbol
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY, World
from tests.servers import serving

STREET = "Rue Canari SDK 77"
HOUSEHOLD = Household(adults=[Adult(gender="female")], children=[Child(age=5)], languages=["fr"])
SEARCH = SearchRequest(household=HOUSEHOLD, need="ipv", preferred_municipality_nis="21004")


@dataclass
class Abri:
    url: str
    db: Database
    line: str
    staff: str
    pool_id: int
    pool_ref: str
    small_ref: str


@pytest.fixture
async def abri(tmp_path: Path, sqlite_template: Path, cipher: AddressCipher) -> AsyncIterator[Abri]:
    target = tmp_path / "sdk.db"
    shutil.copy(sqlite_template, target)
    url = f"sqlite+aiosqlite:///{target}"
    db = Database(url)
    world = World(db, FrozenClock(datetime.now(UTC)), cipher)
    await world.operator("Refuges Bruxelles", "shelter_operator")
    await world.operator("Ligne 1712", "helpline")
    fac = await world.facility(
        "Refuges Bruxelles",
        "Maison A",
        address=Address(street=STREET, postal_code="1000", city="Bruxelles"),
        pools=[PoolCreate(label="Beds", units_total=6), PoolCreate(label="Small", units_total=2)],
    )
    line = await world.token("Ligne 1712", "helpline")
    staff = await world.token("Refuges Bruxelles", "staff")
    settings = Settings(
        database_url=url,
        address_key=TEST_KEY,
        episode_key=TEST_EPISODE_KEY,
        run_jobs=False,
        matcher_cache_seconds=0,
        auto_migrate=False,
    )
    try:
        with serving(create_app(settings)) as base:
            yield Abri(
                url=base,
                db=db,
                line=line,
                staff=staff,
                pool_id=fac.pools[0].id,
                pool_ref=fac.pools[0].ref,
                small_ref=fac.pools[1].ref,
            )
    finally:
        await db.dispose()


async def hold_count(db: Database) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(HoldRow)) or 0)


def test_imports_are_typed_structs() -> None:
    assert issubclass(Hold, msgspec.Struct) and issubclass(NoLongerFree, Exception)


def test_the_user_agent_tells_an_sdk_that_reads_do_not_go_from_the_one_before() -> None:
    """The SDK before ``doNotGo`` (``abri-python-sdk/0.1``) cannot decode a hold whose
    ``intakePhone`` is null; the operator finds the partners still running it by its
    User-Agent in the proxy's access log (RUNBOOK), so this SDK must not send the same one."""
    hold_fields = {f.name: f for f in msgspec.structs.fields(Hold)}
    assert hold_fields["intake_phone"].type == str | None
    with AbriClient("http://abri.invalid", token="t") as client:
        assert client._headers["User-Agent"].startswith("abri-python-sdk/")
        assert client._headers["User-Agent"] != "abri-python-sdk/0.1"


async def test_sync_client_end_to_end(abri: Abri) -> None:
    with AbriClient(abri.url, abri.line) as line, AbriClient(abri.url, abri.staff) as staff:
        found = line.search(SEARCH)
        assert isinstance(found, SearchResult) and found.options
        assert found.options[0].pool_ref in (abri.pool_ref, abri.small_ref)
        hold = line.hold(abri.pool_ref, HOUSEHOLD, "ipv", callback="1712, desk 3")
        assert isinstance(hold, Hold) and hold.state == "held"
        assert isinstance(hold.deadline, datetime) and hold.intake_phone
        assert line.get_hold(hold.ref) == hold
        assert [h.ref for h in line.list_holds(states=["held"])] == [hold.ref]
        # Staff: incoming holds, the pool with its version, arrivals.
        incoming = staff.list_incoming_holds()
        assert [h.ref for h in incoming] == [hold.ref] and isinstance(incoming[0], StaffHold)
        assert staff.mark_arrived(hold.ref).state == "arrived"
        pool = staff.get_pool(abri.pool_id)
        assert isinstance(pool, Pool)
        updated = staff.update_availability(
            abri.pool_id, if_match=pool.version, units_total=6, units_occupied=3
        )
        assert updated.version == pool.version + 1 and updated.units_occupied == 3
        with pytest.raises(VersionMismatch) as stale:
            staff.update_availability(
                abri.pool_id, if_match=pool.version, units_total=6, units_occupied=4
            )
        assert stale.value.status == 412 and stale.value.version == updated.version
        assert stale.value.current and stale.value.current["unitsOccupied"] == 3
        # Release, decline, and the typed errors with their problem details.
        h2 = line.hold(abri.small_ref, HOUSEHOLD, "ipv")
        assert h2.closed_at is None and h2.close_code is None  # open
        released = line.release(h2.ref)
        assert released.state == "released" and isinstance(released.closed_at, datetime)
        assert line.get_hold(h2.ref).closed_at == released.closed_at
        assert released.close_code == line.get_hold(h2.ref).close_code == "released"
        h3 = line.hold(abri.small_ref, HOUSEHOLD, "ipv")
        with pytest.raises(NoLongerFree) as taken:
            line.hold(abri.small_ref, HOUSEHOLD, "ipv")  # 2 beds, 2 people held
        assert taken.value.code == "no-longer-free" and taken.value.request_id
        assert staff.decline(h3.ref, "no room for a boy of 5 tonight").state == "declined"
        assert line.get_hold(h3.ref).close_code == "declined"  # the code, not the words
        body = "KM4T9RC"
        with pytest.raises(NotFound):
            line.get_hold(body + check_symbol(body))  # well-formed, unknown
        with pytest.raises(Forbidden):
            line.list_incoming_holds()
        with pytest.raises(Invalid) as bad:
            line.hold(abri.pool_ref, {"adults": []}, "ipv")
        assert bad.value.status == 422 and bad.value.field
        blob = repr([found, hold, incoming, pool])
        assert STREET not in blob and "Rue Canari" not in blob


async def test_async_client_standing_requests_and_no_show(abri: Abri) -> None:
    async with (
        AsyncAbriClient(abri.url, abri.line) as line,
        AsyncAbriClient(abri.url, abri.staff) as staff,
    ):
        found = await line.search(SEARCH)
        hold = await line.hold(found.options[0].pool_ref, HOUSEHOLD, "ipv")
        assert (await line.get_hold(hold.ref)).ref == hold.ref
        assert (await staff.mark_no_show(hold.ref)).state == "no_show"
        req = await line.create_standing_request(SEARCH, minutes=120, callback="1712 night")
        assert req.state == "offered" and req.hold is not None and req.previous_hold is None
        assert (await line.get_standing_request(req.ref)).ref == req.ref
        # The place declines it after all: back in line, the ended hold saying why.
        assert (await staff.decline(req.hold.ref, "Full after all")).state == "declined"
        back = await line.get_standing_request(req.ref)
        assert back.state == "waiting" and back.hold is None and back.created_at == req.created_at
        assert back.previous_hold is not None and back.previous_hold.ref == req.hold.ref
        assert back.previous_hold.close_code == "declined"
        assert (await line.cancel_standing_request(req.ref)).state == "cancelled"
        pool = await staff.get_pool(abri.pool_id)
        with pytest.raises(VersionMismatch):
            await staff.update_availability(
                abri.pool_id, if_match=pool.version + 5, units_total=6, units_occupied=0
            )
        with pytest.raises(Forbidden):
            await staff.search(SEARCH)


# --------------------------------------------------------------------------- retries


#: What nginx (ops/deploy/nginx-abri.conf) answers while the API behind it restarts.
_NGINX_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Type: text/html\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_NGINX_PAGE)
) + _NGINX_PAGE


class DropOnceProxy:
    """Forwards HTTP/1.1 requests to Abri; for the first ``drops`` requests it lets Abri do
    the work and then closes the connection without relaying the answer."""

    def __init__(self, target_port: int, drops: int, answers: list[bytes] | None = None) -> None:
        self.target_port = target_port
        self.drops = drops
        self.answers = list(answers or [])  # sent instead of Abri's, before forwarding again
        self.keys: list[str | None] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            key = None
            kept = []
            for line in lines:
                name = line.split(":", 1)[0].strip().lower()
                if name == "content-length":
                    length = int(line.split(":", 1)[1])
                if name == "idempotency-key":
                    key = line.split(":", 1)[1].strip()
                if name != "connection":
                    kept.append(line)
            while len(body) < length:
                body += conn.recv(65536)
            self.keys.append(key)
            if self.answers:
                conn.sendall(self.answers.pop(0))
                return
            request = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
            with socket.create_connection(("127.0.0.1", self.target_port)) as up:
                up.sendall(request + body)
                response = b""
                while chunk := up.recv(65536):
                    response += chunk
            if self.drops > 0:
                self.drops -= 1
                return  # the work is done, the answer is lost
            conn.sendall(response)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy(abri: Abri) -> Iterator[DropOnceProxy]:
    p = DropOnceProxy(int(abri.url.rsplit(":", 1)[1]), drops=1)
    try:
        yield p
    finally:
        p.close()


async def test_hold_retries_with_the_same_idempotency_key(abri: Abri, proxy: DropOnceProxy) -> None:
    before = await hold_count(abri.db)
    with AbriClient(f"http://127.0.0.1:{proxy.port}", abri.line, backoff=0.01) as line:
        hold = line.hold(abri.pool_ref, HOUSEHOLD, "ipv")
    assert len(proxy.keys) == 2 and proxy.keys[0] == proxy.keys[1] and proxy.keys[0]
    assert await hold_count(abri.db) == before + 1  # the lost answer did not make a 2nd hold
    async with AsyncAbriClient(abri.url, abri.line) as line:
        assert (await line.get_hold(hold.ref)).state == "held"


async def test_release_is_not_blindly_retried(abri: Abri, proxy: DropOnceProxy) -> None:
    from clients import Unavailable

    async with AsyncAbriClient(abri.url, abri.line) as direct:
        hold = await direct.hold(abri.pool_ref, HOUSEHOLD, "ipv")
    with (
        AbriClient(f"http://127.0.0.1:{proxy.port}", abri.line, backoff=0.01) as line,
        pytest.raises(Unavailable) as lost,
    ):
        line.release(hold.ref)  # processed, answer lost: reported, not repeated
    assert lost.value.status == 0 and len(proxy.keys) == 1
    async with AsyncAbriClient(abri.url, abri.line) as direct:
        assert (await direct.get_hold(hold.ref)).state == "released"


async def test_a_hold_through_the_sdk_carries_the_households_episode_token(abri: Abri) -> None:
    """R33: the API takes the household's ``episodeToken`` on a hold as on its searches, so a
    household moved from one place to another counts once in the task force's hold demand.
    A dispatch system using the SDK must be able to send it too."""
    with AbriClient(abri.url, abri.line) as line:
        episode = "dispatch-episode-0117"
        found = line.search(SearchRequest(household=HOUSEHOLD, need="ipv", episode_token=episode))
        assert found.options
        hold = line.hold(abri.small_ref, HOUSEHOLD, "ipv", episode_token=episode)
        again = line.hold(abri.pool_ref, HOUSEHOLD, "ipv", episode_token=episode)  # moved
    async with abri.db.read() as s:
        hashes = (
            await s.scalars(
                select(HoldRow.episode_hash).where(HoldRow.ref.in_([hold.ref, again.ref]))
            )
        ).all()
    assert len(hashes) == 2 and hashes[0] is not None and hashes[0] == hashes[1]


async def test_the_sdk_gives_the_sentences_that_explain_exclusions(abri: Abri) -> None:
    """R15: every exclusion is explained. The API answers a search with ``exclusions``, a
    sentence per reason ("2 place(s) have no free unit that fits the household"), for
    requesters' systems to show as such; the SDK dropped them, leaving only the codes."""
    big = Household(adults=[Adult(gender="female")], children=[Child(age=3)] * 9)
    with AbriClient(abri.url, abri.line) as line:
        found = line.search(SearchRequest(household=big, need="ipv"))
    assert not found.options and found.excluded
    texts = {e.code: e.text for e in found.exclusions}
    assert set(texts) == set(found.excluded) and all(texts.values())


async def test_the_sdk_gives_the_searchs_notices_and_score_parts(abri: Abri) -> None:
    """The API answers a search whose preferred area lies in an area to avoid with the notice
    ``preferred_area_avoided`` (most likely a form left with the zone's home area: the console
    shows it above the results), and each option with its ``scoreParts``. The SDK dropped both,
    so a dispatch system could not warn its operator that the ranking is off."""
    avoided = SearchRequest(
        household=HOUSEHOLD,
        need="ipv",
        preferred_municipality_nis="21004",
        avoid=AvoidAreas(municipalities=["21004"]),
    )
    with AbriClient(abri.url, abri.line) as line:
        found = line.search(avoided)
        plain = line.search(SEARCH)
    assert [n.code for n in found.notices] == ["preferred_area_avoided"]
    assert all(n.message for n in found.notices)
    assert plain.notices == []
    assert plain.options and plain.options[0].score_parts
    assert sum(plain.options[0].score_parts.values()) == pytest.approx(plain.options[0].score)


async def test_a_restart_behind_the_tls_proxy_is_retried_like_a_dropped_connection(
    abri: Abri,
) -> None:
    """Deployed as the README says (behind nginx), a restart of the API does not drop the
    client's connection: nginx answers ``502 Bad Gateway`` (``504`` when the API hangs). The
    SDK retried only a ``503`` or a connection error, so a hold during a restart raised
    ``ServerError`` at once, where the same restart without the proxy was retried with the
    same Idempotency-Key. A call that is not safe to repeat still reports it, as unavailable."""
    from clients import Unavailable

    port = int(abri.url.rsplit(":", 1)[1])
    gateway = DropOnceProxy(port, drops=0, answers=[BAD_GATEWAY, BAD_GATEWAY])
    try:
        before = await hold_count(abri.db)
        with AbriClient(f"http://127.0.0.1:{gateway.port}", abri.line, backoff=0.01) as line:
            hold = line.hold(abri.pool_ref, HOUSEHOLD, "ipv")
            assert len(gateway.keys) == 3 and len(set(gateway.keys)) == 1
            assert await hold_count(abri.db) == before + 1
            gateway.answers.append(BAD_GATEWAY)
            with pytest.raises(Unavailable) as lost:
                line.release(hold.ref)  # not safe to repeat: reported, not retried
            assert lost.value.status == 502 and len(gateway.keys) == 4
    finally:
        gateway.close()


IN_FLIGHT_BODY = (
    b'{"type":"urn:abri:problem:idempotency-in-flight","title":"The same request is still being'
    b' processed","status":409,"code":"idempotency-in-flight","detail":"The same hold request is'
    b' still being processed; retry shortly.","retryAfter":1}'
)
IN_FLIGHT = (
    b"HTTP/1.1 409 Conflict\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(IN_FLIGHT_BODY)
) + IN_FLIGHT_BODY


async def test_hold_retries_while_the_same_request_is_still_in_flight(abri: Abri) -> None:
    """The README: ``409 idempotency-in-flight`` means the same hold request (same key) is
    still being processed: retry after ``Retry-After``. It is what a retry of ``hold`` after a
    timeout may meet while the first attempt is still at work; the SDK, which retries
    ``hold`` by itself with the same key, raised ``Conflict`` instead, leaving the dispatch
    system unsure whether it had a hold. (The answer is canned: the race that makes it needs
    the concurrency tests' pauses.)"""
    port = int(abri.url.rsplit(":", 1)[1])
    busy = DropOnceProxy(port, drops=0, answers=[IN_FLIGHT])
    try:
        before = await hold_count(abri.db)
        url = f"http://127.0.0.1:{busy.port}"
        with AbriClient(url, abri.line, backoff=0.01, max_backoff=0.01) as line:
            hold = line.hold(abri.pool_ref, HOUSEHOLD, "ipv")
        assert hold.state == "held" and await hold_count(abri.db) == before + 1
        assert len(busy.keys) == 2 and busy.keys[0] == busy.keys[1]
        busy.answers.append(IN_FLIGHT)
        with AbriClient(url, abri.line, retries=0) as line, pytest.raises(Conflict) as still:
            line.hold(abri.pool_ref, HOUSEHOLD, "ipv")
        assert still.value.code == "idempotency-in-flight" and still.value.retry_after == 1
    finally:
        busy.close()


async def test_the_sdk_lists_the_operators_standing_requests(abri: Abri) -> None:
    """``GET /standing-requests`` lists the operator's requests in line (``?state=``), as
    ``list_holds`` does its holds: what a dispatch system needs after its own restart to know
    which households still wait. The SDK could create, read and cancel one by its reference,
    but not list them."""
    nothing = SearchRequest(
        household=Household(adults=[Adult(gender="female")], children=[Child(age=3)] * 9),
        need="ipv",
    )
    with AbriClient(abri.url, abri.line) as line:
        waiting = line.create_standing_request(nothing, minutes=60)
        assert waiting.state == "waiting"
        assert [r.ref for r in line.list_standing_requests()] == [waiting.ref]
        line.cancel_standing_request(waiting.ref)
        assert line.list_standing_requests(states=["waiting"]) == []
    async with AsyncAbriClient(abri.url, abri.line) as line:
        listed = await line.list_standing_requests(states=["cancelled"])
        assert [(r.ref, r.state) for r in listed] == [(waiting.ref, "cancelled")]


async def test_the_sdk_pages_hold_lists_and_marks_a_departure(abri: Abri) -> None:
    """The lists stop at 200 holds unless told: a dispatch system or a shelter's system
    catching up after an outage had no way through the SDK to ask for the older ones (the
    API pages with ``limit`` and ``before``), and no call for a household that left."""
    one = Household(adults=[Adult(gender="female")])
    with AbriClient(abri.url, abri.line) as line, AbriClient(abri.url, abri.staff) as staff:
        made = [line.hold(abri.pool_ref, one, "ipv").ref for _ in range(3)]
        first = line.list_holds(limit=2)
        rest = line.list_holds(limit=2, before=first[-1].ref)
        assert [h.ref for h in first + rest] == made[::-1]
        page = staff.list_incoming_holds(limit=1, before=made[-1])
        assert [h.ref for h in page] == [made[1]]
        assert staff.mark_arrived(made[0]).state == "arrived"
    async with AsyncAbriClient(abri.url, abri.staff) as staff:
        inside = await staff.list_incoming_holds(states=["arrived"], limit=5)
        assert [h.ref for h in inside] == [made[0]]
        assert (await staff.mark_departed(made[0])).state == "departed"
    async with AsyncAbriClient(abri.url, abri.line) as line:
        older = await line.list_holds(limit=5, before=made[1])
        assert [(h.ref, h.state) for h in older] == [(made[0], "departed")]


def test_by_default_a_retried_call_waits_out_a_restart() -> None:
    """With retries=3 from 0.25 s a call gave up after about 2 s (1 s at the low end of the
    jitter): less than an API process takes to restart, so a dispatch system saw Unavailable
    for a blip. The default budget is now ~8 s, never under 3.5 s."""
    from clients.sdk import AbriClient

    client = AbriClient("http://127.0.0.1:9", "abri_x")
    try:
        client._rng.uniform = lambda a, b: a  # type: ignore[method-assign]  # the shortest
        shortest = sum(client._delay(n, None) for n in range(1, client.retries + 1))
        client._rng.uniform = lambda a, b: (a + b) / 2  # type: ignore[method-assign]
        typical = sum(client._delay(n, None) for n in range(1, client.retries + 1))
    finally:
        client.close()
    assert shortest >= 3.5 and 7 <= typical <= 10, (shortest, typical)
