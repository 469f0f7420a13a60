"""PostgreSQL goes away for a few seconds (a restart by the hosting provider, a failover, an
idle-connection killer) while the installation keeps serving: what is open must come back on
its own. The outage is real: the app talks to the real server through a TCP relay that the test
cuts (every connection through it closed, new ones refused) and restores."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.holds.controllers import hold_event_stream
from capacity.audit import Actor
from capacity.commands import PoolCreate
from capacity.db import Database
from placement import holds_service
from placement.household import Adult, Household
from tests.conftest import World


class PgRelay:
    """A TCP relay in front of the real PostgreSQL. ``cut()``: every connection through it is
    closed and nobody listens on its port (the server is down); ``restore()``: it listens again
    on the same port (the server is back)."""

    def __init__(self, target_url: str) -> None:
        url = make_url(target_url)
        self.target_url = url
        self.host, self.target_port = url.host or "127.0.0.1", url.port or 5432
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._passing = asyncio.Event()  # cleared: the network is silent
        self._passing.set()

    @property
    def url(self) -> str:
        return self.target_url.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )

    async def start(self) -> PgRelay:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._open):
            w.transport.abort()  # the app's side sees its connection reset
        self._open.clear()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    def go_silent(self) -> None:
        """Nothing passes any more, yet no connection is closed: what an idle-connection killer
        or a firewall that drops packets leaves behind (no reset ever reaches the app)."""
        self._passing.clear()

    def speak(self) -> None:
        self._passing.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_w))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    await self._passing.wait()
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._open.discard(writer)
        self._open.discard(up_w)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: the outage is of a database server."""
    return str(request.param)


async def _operator_id(world: World, name: str) -> int:
    from sqlalchemy import select

    from capacity.models import Operator

    async with world.db.read() as s:
        return int(await s.scalar(select(Operator.id).where(Operator.name == name)))


async def test_an_open_hold_stream_outlives_a_database_restart(world: World) -> None:
    """The shelter's staff page is open at night; PostgreSQL restarts (a few seconds). The
    stream's next poll failed, the generator raised and the response was cut; the browser's
    EventSource reconnected 3 s later into a database still starting up, got a 503 — and an
    EventSource that gets an error status gives up for good: the page said "live updates are
    off" and a hold made after the restart never showed until someone reloaded. The stream must
    ride out the outage (keep-alive comments meanwhile) and send what happens once it is back."""
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    fac = await world.facility(
        "Refuges A", "Refuge A-1", pools=[PoolCreate(label="Beds", units_total=3)]
    )
    staff = Actor(operator_id=fac.facility.operator_id, role="staff")
    police = Actor(
        operator_id=await _operator_id(world, "Zone Nord"), role="police", operator_kind="police"
    )
    relay = await PgRelay(world.db.url).start()
    through = Database(relay.url, pool_size=5, max_overflow=0)
    got: list[Any] = []
    failed: list[BaseException] = []

    async def pull() -> None:
        try:
            async for m in hold_event_stream(through, staff, world.clock, None, 30):
                got.append(m)
        except Exception as exc:  # what cut the response
            failed.append(exc)

    task = asyncio.create_task(pull())
    try:
        for _ in range(50):  # connected: the stream told its position
            if any(getattr(m, "id", None) is not None for m in got):
                break
            await asyncio.sleep(0.1)
        await relay.cut()
        await asyncio.sleep(2.5)  # the stream polls into the outage several times
        await relay.restore()
        held = await holds_service.reserve(
            world.db,
            pool_ref=fac.pools[0].ref,
            household=Household(adults=[Adult(gender="female")]),
            need="ipv",
            minutes=None,
            callback=None,
            idempotency_key="after-the-restart",
            actor=police,
            now=world.clock.now(),
        )
        for _ in range(80):
            if failed or any(held.view.ref in str(getattr(m, "data", "")) for m in got):
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await through.dispose()
        if relay._server is not None:
            relay._server.close()
    assert not failed, repr(failed)
    created = [m for m in got if getattr(m, "event", None) == "hold.created"]
    assert created and held.view.ref in str(created[0].data)


async def test_a_leader_whose_lock_connection_goes_silent_steps_down(world: World) -> None:
    """The scheduler's leader holds its advisory lock on a connection of its own. An idle-
    connection killer on the network drops that connection silently (no reset): the leader's
    check ("do I still hold the lock?") waited for an answer that never came — for the kernel's
    retransmission timeout, about 15 minutes — and meanwhile its scheduler kept running jobs,
    while the server, once it noticed the dead session, handed the lock to another worker: two
    leaders. A check that gets no answer within a few seconds must count as leadership lost."""
    from ops.worker import LEADER_CHECK_SECONDS, PgAdvisoryLeadership

    relay = await PgRelay(world.db.url).start()
    lead = PgAdvisoryLeadership(relay.url)
    try:
        assert await lead.try_acquire()
        assert await lead.still_held()
        relay.go_silent()
        t0 = asyncio.get_running_loop().time()
        held = await asyncio.wait_for(lead.still_held(), LEADER_CHECK_SECONDS + 10)
        took = asyncio.get_running_loop().time() - t0
        assert held is False
        assert took < LEADER_CHECK_SECONDS + 4, took  # (+ 2 s: SQLAlchemy tries a clean close)
        # nor does seeking it again, or letting it go at shutdown, hang on a silent network
        again = await asyncio.wait_for(lead.try_acquire(), 2 * LEADER_CHECK_SECONDS + 10)
        assert again is False
        await asyncio.wait_for(lead.release(), 2 * LEADER_CHECK_SECONDS + 10)
    finally:
        relay.speak()
        await relay.cut()
        await lead.release()


async def test_connections_keep_themselves_alive_and_dead_ones_are_noticed(world: World) -> None:
    """Idle-connection killers (a cloud NAT after 350 s, a load balancer after 4 min) drop a
    quiet connection without telling either end. A pooled connection so dropped hangs the next
    request that takes it, and the leader's advisory lock outlives a leader whose session died
    that way until the server's default keepalive notices, two hours later: no worker can take
    over, and holds' expiry notices and webhooks wait. Every connection Abri makes asks the
    server for TCP keepalives often enough to keep such killers away, and for the server to
    notice a vanished client (and free its lock) within a couple of minutes."""
    from ops.worker import PgAdvisoryLeadership

    sql = "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_count')"
    async with world.db.read() as s:
        pooled = tuple((await s.execute(text(sql))).one())
    async with world.db.raw_write() as tx:
        raw = tuple(await tx.one(sql) or ())
    lead = PgAdvisoryLeadership(world.db.url)
    try:
        assert await lead.try_acquire()
        assert lead._conn is not None
        leader = tuple((await lead._conn.execute(text(sql))).one())
    finally:
        await lead.release()
    for idle, count in (pooled, raw, leader):
        assert 0 < int(idle) <= 120 and 0 < int(count) <= 5, (pooled, raw, leader)
