"""Load and fault harness (issue 8): a mixed workload against several API processes + the worker
on PostgreSQL, SIGKILL of an API process and of the worker mid-run, then checks from the database.

    python -m ops.bench.load                          # ~2-3 min: 2 API processes, 60 s of load
    python -m ops.bench.load --duration 30 --fault-at 10 --pgbench-seconds 5

On a scratch PostgreSQL database (migrated, bulk-loaded into the real tables): 300 facilities
(4 HOT pools of 3 beds every hold client fights for; COLD hold pools of 20 beds; STAFF pools that
only staff updates touch; a few EXPIRY pools that nothing else touches), tokens for staff (one
per shelter operator), police, helpline and task force.

Processes: ``abri serve --workers N`` (uvicorn's own multi-process supervisor, one shared port,
``ABRI_RUN_JOBS=0``) and one ``abri worker`` (the scheduler leader). Closed-loop clients, one
keep-alive connection each, by role: staff (GET pool for its ETag, PUT availability with
If-Match: 412 is normal), searches (helpline and police), holds (police, a fresh
Idempotency-Key; every 201 is an *acknowledged hold*; a hold whose answer was lost to a
connection error is retried once with the same key), releases (hot holds at once, cold ones
half of the time) and task-force reads (GET /taskforce/saturation).

Faults at ``--fault-at`` s into the measured window: SIGKILL of one uvicorn worker child (the
supervisor starts a new one by itself: the harness measures how long that takes) and SIGKILL of
``abri worker``; while the worker is dead, a few holds are created that are already due (through
``holds_service.reserve`` with ``now`` 3 h in the past); ``--restart-after`` s later the worker
is started again and must expire them within 2 poll intervals (+ its start-up time).

Checks (PASS/FAIL; exit status 1 if any fails): every acknowledged hold exists with its ref and
the state its answers imply; no hold pool over-booked; ``abri check`` (counters agree); the
expiries caught up. Ceilings in the same run: ``GET /health/live`` of the same processes, and
``pgbench -N -c 8 -j 2`` (after the load, on its own scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, select

from capacity import registry
from capacity.audit import CLI, Actor
from capacity.db import Database
from capacity.models import Hold, Pool
from ops.bench import _harness as h
from ops.bench.holds import ONE, TWO, build_world, pgbench
from ops.bench.search import requests_for
from placement import holds_service
from placement.household import Household

ABRI = str(Path(sys.executable).parent / "abri")
STAMP = time.strftime("%Y%m%d-%H%M%S")
OPS = ("staff get", "staff put", "search", "hold", "release", "taskforce", "live")


# --------------------------------------------------------------------------- world


@dataclass
class World:
    hot: list[str]
    cold: list[str]
    expiry: list[tuple[int, str]]  # (pool id, ref)
    staff_pools: dict[int, list[int]]  # operator id -> pool ids only staff updates touch
    staff_tokens: dict[int, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> clear token
    police_actor: Actor | None = None


def make_world(args: argparse.Namespace, now: datetime) -> tuple[list[Any], World]:
    cold_facs = args.facilities - args.hot_pools
    facs, hot, _ = build_world(args.hot_pools, 3, cold_facs, 20, now)
    expiry: list[tuple[int, str]] = []
    cold: list[str] = []
    staff: dict[int, list[int]] = {}
    for i, f in enumerate(facs[args.hot_pools :]):
        if i < args.expiry_pools:
            expiry.append((f.pools[0].id, f.pools[0].ref))
        elif i % 2 == 0:
            cold += [p.ref for p in f.pools]
        else:
            staff.setdefault(f.operator_id, []).extend(p.id for p in f.pools)
    return facs, World(hot=hot, cold=cold, expiry=expiry, staff_pools=staff)


async def make_tokens(db: Database, world: World, now: datetime) -> None:
    for op_id in world.staff_pools:
        clear, _ = await registry.create_token(
            db, operator=f"Bench operator {op_id}", role="staff", actor=CLI, now=now
        )
        world.staff_tokens[op_id] = clear
    clear, op_id, tok_id = await h.requester_token(db, now)
    world.tokens["police"] = clear
    world.police_actor = Actor(
        operator_id=op_id, role="police", token_id=tok_id, operator_kind="police"
    )
    for role, kind in (("helpline", "helpline"), ("taskforce", "taskforce")):
        name = f"Bench {role}"
        await registry.create_operator(db, name=name, kind=kind, actor=CLI, now=now)
        clear, _ = await registry.create_token(db, operator=name, role=role, actor=CLI, now=now)
        world.tokens[role] = clear


# --------------------------------------------------------------------------- processes


#: one episode key for the run's processes (on PostgreSQL each refuses to start without one)
EPISODE_KEY = secrets.token_urlsafe(32)


def proc_env(url: str, key: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "ABRI_DATABASE_URL": url,
        "ABRI_AUTO_MIGRATE": "0",
        "ABRI_ADDRESS_KEY": key,
        "ABRI_EPISODE_KEY": EPISODE_KEY,  # the same in every process, as in production
        "ABRI_LOG_FORMAT": "json",
        "ABRI_LOG_LEVEL": "WARNING",
        "ABRI_RATE_SEARCH_PER_MINUTE": "0",
        "ABRI_RATE_HOLD_PER_MINUTE": "0",
        **extra,
    }


def spawn(cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    h.RESULTS.mkdir(exist_ok=True)
    with (h.RESULTS / log_name).open("ab") as log:
        return subprocess.Popen(
            cmd, cwd=h.REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def children(pid: int) -> list[int]:
    """Uvicorn worker processes of the supervisor ``pid`` (not multiprocessing's tracker)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for c in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                        out.append(int(c))
    return sorted(out)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def wait_live(port: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(h._answers_live, port):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"API did not answer /health/live on {port} within {seconds:.0f} s")


# --------------------------------------------------------------------------- load


@dataclass
class Rec:
    """Per operation: latencies (measuring window), status counts, connection errors."""

    start: float
    end: float
    lat: dict[str, list[float]] = field(default_factory=dict)
    status: dict[str, Counter[int]] = field(default_factory=dict)
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    error_times: list[float] = field(default_factory=list)
    acked: dict[str, bool] = field(default_factory=dict)  # hold ref -> release acknowledged
    replays: int = 0
    retries: int = 0
    release_unknown: set[str] = field(default_factory=set)

    timeline: Counter[int] = field(default_factory=Counter)  # answers per 5 s of the window

    def add(self, op: str, t0: float, t1: float, st: int) -> None:
        if self.start <= t0 and t1 <= self.end:
            self.timeline[int((t1 - self.start) // 5)] += 1
            self.lat.setdefault(op, []).append(t1 - t0)
            self.status.setdefault(op, Counter())[st] += 1

    def error(self, op: str, exc: BaseException) -> None:
        t = time.perf_counter()
        if self.start <= t <= self.end:
            self.errors.setdefault(op, Counter())[type(exc).__name__] += 1
            self.error_times.append(t - self.start)


CONN_ERRORS = (OSError, asyncio.IncompleteReadError, ValueError, asyncio.TimeoutError)


async def call(
    conn: h.Conn, rec: Rec, op: str, method: str, path: str, body: bytes = b"", hdrs: str = ""
) -> tuple[int, bytes] | None:
    t0 = time.perf_counter()
    try:
        st, data = await asyncio.wait_for(conn.request(method, path, body, hdrs), 30)
    except CONN_ERRORS as exc:
        rec.error(op, exc)
        await conn.close()
        await asyncio.sleep(0.05)  # the server may be down: do not spin
        return None
    rec.add(op, t0, time.perf_counter(), st)
    return st, data


async def run_clients(
    port: int, world: World, args: argparse.Namespace, rec: Rec, stop_at: float
) -> None:
    searches = [msgspec.json.encode(b) for b in requests_for(300, args.seed)]
    auth = {role: f"Bearer {tok}" for role, tok in world.tokens.items()}

    async def loop(role: str, w: int) -> None:
        rng = random.Random(args.seed * 1000 + w)
        token = auth.get(role)
        op_id = 0
        if role == "staff":
            # two clients per operator on a few of its pools: they race, and some get 412
            ops = sorted(world.staff_pools)
            op_id = ops[(w // 2) % len(ops)]
            token = f"Bearer {world.staff_tokens[op_id]}"
        elif role == "search":
            token = auth["helpline" if w % 2 else "police"]
        elif role == "hold":
            token = auth["police"]
        conn = h.Conn("127.0.0.1", port, {"Authorization": str(token)})
        pending: tuple[str, bytes, bool] | None = None  # hold to retry with the same key
        try:
            while time.perf_counter() < stop_at:
                if role == "staff":
                    pid = rng.choice(world.staff_pools[op_id][: args.staff_pools_each])
                    r = await call(conn, rec, "staff get", "GET", f"/staff/pools/{pid}")
                    if r is None or r[0] != 200:
                        continue
                    pool = json.loads(r[1])
                    total = int(pool["unitsTotal"])
                    # sometimes above the total: emergency mattresses are allowed
                    occ = rng.randint(0, total + 2)
                    await asyncio.sleep(rng.uniform(0, 0.05))  # staff think; others race
                    body = msgspec.json.encode({"unitsTotal": total, "unitsOccupied": occ})
                    etag = f'If-Match: "{pool["version"]}"\r\n'  # = the ETag of the GET
                    await call(
                        conn,
                        rec,
                        "staff put",
                        "PUT",
                        f"/staff/pools/{pid}/availability",
                        body,
                        etag,
                    )
                elif role == "search":
                    await call(
                        conn, rec, "search", "POST", "/placements/search", rng.choice(searches)
                    )
                elif role == "taskforce":
                    await call(conn, rec, "taskforce", "GET", "/taskforce/saturation")
                else:
                    if pending is not None:
                        key, body, hot = pending
                        rec.retries += 1
                    else:
                        hot = rng.random() < args.hot_share
                        ref = rng.choice(world.hot if hot else world.cold)
                        household = TWO if rng.random() < 0.2 else ONE
                        key = f"load-{w}-{secrets.token_hex(6)}"
                        body = msgspec.json.encode(
                            {"poolRef": ref, "need": "ipv", "household": household}
                        )
                    r = await call(
                        conn, rec, "hold", "POST", "/holds", body, f"Idempotency-Key: {key}\r\n"
                    )
                    pending = (key, body, hot) if r is None and pending is None else None
                    if r is None or r[0] not in (200, 201):
                        continue
                    ref = json.loads(r[1])["ref"]
                    if r[0] == 200:
                        rec.replays += 1
                    rec.acked[ref] = False
                    if hot or rng.random() < 0.5:
                        r = await call(conn, rec, "release", "POST", f"/holds/{ref}/release")
                        if r is None:
                            rec.release_unknown.add(ref)
                        elif r[0] == 200:
                            rec.acked[ref] = True
        finally:
            await conn.close()

    roles = (
        ["staff"] * args.staff_clients
        + ["search"] * args.search_clients
        + ["hold"] * args.hold_clients
        + ["taskforce"] * args.taskforce_clients
    )
    await asyncio.gather(*(loop(role, w) for w, role in enumerate(roles)))


async def live_ceiling(port: int, clients: int, seconds: float) -> Rec:
    rec = Rec(start=time.perf_counter() + 1.0, end=0.0)
    rec.end = rec.start + seconds

    async def loop() -> None:
        conn = h.Conn("127.0.0.1", port)
        try:
            while time.perf_counter() < rec.end:
                await call(conn, rec, "live", "GET", "/health/live")
        finally:
            await conn.close()

    await asyncio.gather(*(loop() for _ in range(clients)))
    return rec


# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    log: list[str] = field(default_factory=list)
    killed_api_pid: int = 0
    api_back_after: float | None = None
    worker_restarted_at: float = 0.0  # monotonic
    expiry_refs: list[str] = field(default_factory=list)
    expiry_units_before: dict[int, int] = field(default_factory=dict)
    expired_after: float | None = None
    expiry_error: str | None = None

    def note(self, t0: float, msg: str) -> None:
        line = f"  [t={time.perf_counter() - t0:5.1f}s] {msg}"
        self.log.append(line)
        h.say(line)


async def create_due_holds(db: Database, world: World, per_pool: int) -> list[str]:
    """Holds that are already due: reserved 'three hours ago' (police: 90 min by default)."""
    assert world.police_actor is not None
    past = datetime.now(UTC) - timedelta(hours=3)
    refs = []
    household = msgspec.convert(ONE, Household)
    for _, ref in world.expiry:
        for _ in range(per_pool):
            res = await holds_service.reserve(
                db,
                pool_ref=ref,
                household=household,
                need="ipv",
                minutes=None,
                callback=None,
                idempotency_key=f"due-{secrets.token_hex(6)}",
                actor=world.police_actor,
                now=past,
            )
            refs.append(res.view.ref)
    return refs


async def expiry_state(db: Database, refs: list[str], pool_ids: list[int]) -> tuple[int, dict]:
    async with db.read() as s:
        n = await s.scalar(select(func.count()).where(Hold.ref.in_(refs), Hold.state == "expired"))
        held = dict(
            (await s.execute(select(Pool.id, Pool.units_held).where(Pool.id.in_(pool_ids)))).all()
        )
    return int(n or 0), held


@dataclass
class Procs:
    serve: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_env: dict[str, str] = field(default_factory=dict)


async def inject_faults(
    procs: Procs, db: Database, world: World, args: argparse.Namespace, f: Faults, t0: float
) -> None:
    await asyncio.sleep(max(0.0, t0 + args.fault_at - time.perf_counter()))
    assert procs.serve is not None and procs.worker is not None
    before = children(procs.serve.pid)
    if before:
        f.killed_api_pid = before[0]
        os.kill(before[0], signal.SIGKILL)
        f.note(t0, f"SIGKILL API process {before[0]} (of {len(before)}: {before})")
    else:
        f.note(t0, "no API child process found to kill")
    procs.worker.send_signal(signal.SIGKILL)
    await asyncio.to_thread(procs.worker.wait)
    f.note(t0, f"SIGKILL worker {procs.worker.pid}")
    k0 = time.perf_counter()
    try:
        f.expiry_refs = await create_due_holds(db, world, args.expiry_holds)
        _, f.expiry_units_before = await expiry_state(
            db, f.expiry_refs, [p for p, _ in world.expiry]
        )
        f.note(t0, f"created {len(f.expiry_refs)} holds already due (worker is dead)")
    except Exception as exc:  # report it, keep the run going
        f.expiry_error = f"{type(exc).__name__}: {exc}"
        f.note(t0, f"could not create due holds: {f.expiry_error}")
    # the uvicorn supervisor replaces its dead child by itself; measure how long that takes
    back_task = asyncio.create_task(api_back(procs, before, f, k0, t0))
    await asyncio.sleep(max(0.0, k0 + args.restart_after - time.perf_counter()))
    procs.worker = spawn([ABRI, "worker"], procs.worker_env, f"load-{STAMP}-worker.log")
    f.worker_restarted_at = time.perf_counter()
    f.note(t0, f"restarted worker (pid {procs.worker.pid})")
    limit = 2 * args.worker_poll + args.worker_startup
    pool_ids = [p for p, _ in world.expiry]
    while f.expiry_refs and time.perf_counter() - f.worker_restarted_at < limit + 30:
        n, _ = await expiry_state(db, f.expiry_refs, pool_ids)
        if n == len(f.expiry_refs):
            f.expired_after = time.perf_counter() - f.worker_restarted_at
            f.note(t0, f"all {n} due holds expired {f.expired_after:.1f} s after the restart")
            break
        await asyncio.sleep(0.5)
    await back_task


async def api_back(procs: Procs, before: list[int], f: Faults, k0: float, t0: float) -> None:
    assert procs.serve is not None
    while time.perf_counter() - k0 < 60:
        now = children(procs.serve.pid)
        if len(now) >= len(before) and f.killed_api_pid not in now:
            f.api_back_after = time.perf_counter() - k0
            f.note(t0, f"supervisor started API process {sorted(set(now) - set(before))}")
            return
        await asyncio.sleep(0.2)
    f.note(t0, "the killed API process was NOT replaced within 60 s")


# --------------------------------------------------------------------------- checks


async def check_holds(db: Database, rec: Rec) -> tuple[bool, str]:
    refs = list(rec.acked)
    found: dict[str, str] = {}
    async with db.read() as s:
        for i in range(0, len(refs), 1000):
            rows = await s.execute(
                select(Hold.ref, Hold.state).where(Hold.ref.in_(refs[i : i + 1000]))
            )
            found.update(dict(rows.all()))
        total = await s.scalar(
            select(func.count()).select_from(Hold).where(Hold.idempotency_key.like("load-%"))
        )
    missing = [r for r in refs if r not in found]
    wrong = []
    for ref, released in rec.acked.items():
        st = found.get(ref)
        if st is None:
            continue
        ok = (
            {"released"}
            if released
            else {"held", "released"}
            if ref in rec.release_unknown
            else {"held"}
        )
        if st not in ok:
            wrong.append((ref, st))
    msg = (
        f"{len(refs)} acknowledged holds ({rec.replays} of them replays after a lost answer): "
        f"{len(missing)} missing, {len(wrong)} in a state their answers contradict; "
        f"{int(total or 0) - len(refs)} unacknowledged hold rows (answer lost, not retried)"
    )
    return bool(refs) and not missing and not wrong, msg


async def check_overbooking(db: Database) -> tuple[bool, str]:
    async with db.read() as s:
        touched = select(Hold.pool_id).distinct().subquery()
        over = (
            await s.execute(
                select(Pool.id)
                .join(touched, touched.c.pool_id == Pool.id)
                .where(Pool.units_held > func.greatest(0, Pool.units_total - Pool.units_occupied))
            )
        ).all()
        n = await s.scalar(select(func.count()).select_from(touched))
    return (
        not over,
        f"{len(over)} of {n} pools with holds have units_held > max(0, total - occupied)",
    )


def abri_check(env: dict[str, str]) -> tuple[bool, str]:
    res = subprocess.run(
        [ABRI, "check"], cwd=h.REPO, env=env, capture_output=True, text=True, timeout=120
    )
    out = (res.stdout.strip().splitlines() or [res.stderr.strip()[-200:]])[-1]
    return res.returncode == 0, f"`abri check` exit {res.returncode}: {out}"


def check_expiry(
    f: Faults, world: World, after_held: dict[int, int], args: argparse.Namespace
) -> tuple[bool, str]:
    limit = 2 * args.worker_poll + args.worker_startup
    if f.expiry_error or not f.expiry_refs:
        return False, f"no due holds to expire ({f.expiry_error})"
    dec = all(after_held.get(p, 0) == 0 for p, _ in world.expiry) and all(
        v >= args.expiry_holds for v in f.expiry_units_before.values()
    )
    took = "never" if f.expired_after is None else f"{f.expired_after:.1f} s"
    ok = f.expired_after is not None and f.expired_after <= limit and dec
    return ok, (
        f"{len(f.expiry_refs)} due holds expired by the restarted worker after {took} "
        f"(limit 2 x {args.worker_poll:.0f} s poll + {args.worker_startup:.0f} s start-up); "
        f"units_held on their pools {sum(f.expiry_units_before.values())} -> "
        f"{sum(after_held.get(p, 0) for p, _ in world.expiry)}"
    )


# --------------------------------------------------------------------------- main


def report_ops(rec: Rec, secs: float) -> dict[str, Any]:
    out = {}
    for op in OPS:
        lat = rec.lat.get(op, [])
        if not lat and op not in rec.errors:
            continue
        s = h.summary_ms(lat)
        st = dict(sorted(rec.status.get(op, Counter()).items()))
        err = dict(rec.errors.get(op, Counter()))
        out[op] = {**s, "per_s": len(lat) / secs, "status": st, "conn_errors": err}
        h.say(
            f"  {op:<10} {len(lat) / secs:7.1f}/s  p50 {s['p50']:8.1f}  p99 {s['p99']:8.1f} ms"
            f"  status {st}" + (f"  conn errors {err}" if err else "")
        )
    return out


async def bench(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from cryptography.fernet import Fernet

    now = datetime.now(UTC)
    facs, world = make_world(args, now)
    out: dict[str, Any] = {
        "world": {
            "facilities": len(facs),
            "hot_pools": len(world.hot),
            "cold_hold_pools": len(world.cold),
            "staff_pools": sum(len(v) for v in world.staff_pools.values()),
            "expiry_pools": len(world.expiry),
        }
    }
    h.say(f"== load: world {out['world']} ==")
    checks: list[tuple[str, bool, str]] = []
    procs = Procs()
    async with h.scratch_pg(args.pg_url) as name:
        url = h.asyncpg_url(args.pg_url, name)
        await h.migrate_db(url)
        db = Database(url)
        try:
            await h.bulk_load(db, facs, now)
            await make_tokens(db, world, now)
            key = Fernet.generate_key().decode()
            port = h.free_port()
            serve_env = proc_env(url, key, {"ABRI_RUN_JOBS": "0"})
            procs.worker_env = proc_env(
                url,
                key,
                {"ABRI_LOG_LEVEL": "INFO", "ABRI_WORKER_POLL_SECONDS": str(args.worker_poll)},
            )
            cmd = [ABRI, "serve", "--workers", str(args.api), "--port", str(port)]
            procs.serve = spawn(cmd, serve_env, f"load-{STAMP}-serve.log")
            procs.worker = spawn([ABRI, "worker"], procs.worker_env, f"load-{STAMP}-worker.log")
            await wait_live(port)
            await asyncio.sleep(1.0)
            kids = children(procs.serve.pid)
            h.say(
                f"-- `{' '.join(cmd[1:])}` (pid {procs.serve.pid}, API processes {kids}), "
                f"`abri worker` (pid {procs.worker.pid}), PostgreSQL {name} --"
            )
            h.say(
                f"-- ceiling: GET /health/live, {args.live_clients} clients, "
                f"{args.live_seconds:.0f} s --"
            )
            lrec = await live_ceiling(port, args.live_clients, args.live_seconds)
            out["live"] = report_ops(lrec, args.live_seconds)["live"]

            n_clients = args.staff_clients + args.search_clients + args.hold_clients
            n_clients += args.taskforce_clients
            h.say(
                f"-- mixed load: {n_clients} clients (staff {args.staff_clients}, search "
                f"{args.search_clients}, holds {args.hold_clients}, task force "
                f"{args.taskforce_clients}), {args.duration:.0f} s after {args.warmup:.0f} s "
                f"warm-up; faults at t={args.fault_at:.0f}s --"
            )
            t0 = time.perf_counter()
            rec = Rec(start=t0 + args.warmup, end=t0 + args.warmup + args.duration)
            faults = Faults()
            fault_task = asyncio.create_task(
                inject_faults(procs, db, world, args, faults, rec.start)
            )
            await run_clients(port, world, args, rec, rec.end)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fault_task), 60)
            if not fault_task.done():
                fault_task.cancel()
            h.say("-- mixed load, per operation (measured window, faults included) --")
            out["mixed"] = report_ops(rec, args.duration)
            tl = [rec.timeline.get(i, 0) / 5 for i in range(int(args.duration // 5))]
            h.say("  answers/s per 5 s: " + " ".join(f"{x:.0f}" for x in tl))
            out["timeline_per_s"] = tl
            errs = sorted(rec.error_times)
            if errs:
                h.say(
                    f"  connection errors: {len(errs)} between t={errs[0]:.1f}s and "
                    f"t={errs[-1]:.1f}s; holds retried with the same key: {rec.retries}"
                )
            out["faults"] = {
                "log": faults.log,
                "api_back_after_s": faults.api_back_after,
                "expired_after_s": faults.expired_after,
                "conn_errors": len(errs),
                "hold_retries": rec.retries,
            }
            # checks from the database, with the worker still running
            _, after_held = await expiry_state(db, faults.expiry_refs, [p for p, _ in world.expiry])
            ok, msg = await check_holds(db, rec)
            checks.append(("no acknowledged hold lost", ok, msg))
            ok, msg = await check_overbooking(db)
            checks.append(("no over-booking by holds", ok, msg))
            ok, msg = await asyncio.to_thread(abri_check, serve_env)
            checks.append(("counters agree", ok, msg))
            ok, msg = check_expiry(faults, world, after_held, args)
            checks.append(("expiries caught up", ok, msg))
            ok = faults.api_back_after is not None
            checks.append(
                (
                    "killed API process replaced",
                    ok,
                    f"after {faults.api_back_after:.1f} s" if ok else "not within 60 s",
                )
            )
        finally:
            stop(procs.serve)
            stop(procs.worker)
            await db.dispose()

    if args.pgbench_seconds > 0:
        h.say(f"-- PostgreSQL ceiling: pgbench -N -c 8 -j 2 -T {args.pgbench_seconds} --")
        pg = await pgbench(args.pg_url, args.pgbench_seconds)
        out["pgbench"] = pg
        h.say(f"  pgbench tps {pg['tps']:.0f} (latency avg {pg['latency_avg_ms']} ms)")

    h.say("-- ratios --")
    live = out["live"]["per_s"]
    tps = out.get("pgbench", {}).get("tps")
    ratios = {}
    for op, r in out["mixed"].items():
        line = f"  {op:<10} ÷ live {r['per_s'] / live:6.1%}"
        ratios[op] = {"live": r["per_s"] / live}
        if tps:
            ratios[op]["pgbench"] = r["per_s"] / tps
            line += f"   ÷ pgbench tps {r['per_s'] / tps:6.2%}"
        h.say(line)
    total = sum(r["per_s"] for r in out["mixed"].values())
    h.say(f"  all requests {total:.1f}/s = {total / live:.1%} of live")
    out["ratios"] = ratios
    h.say("== checks ==")
    for label, ok, msg in checks:
        h.say(f"{'PASS' if ok else 'FAIL'} {label}: {msg}")
    out["checks"] = [{"check": c, "pass": ok, "detail": m} for c, ok, m in checks]
    return out, all(ok for _, ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.load", description=__doc__)
    p.add_argument("--api", type=int, default=2, help="API processes (abri serve --workers)")
    p.add_argument("--facilities", type=int, default=300)
    p.add_argument("--hot-pools", type=int, default=4, help="1 pool of 3 beds each")
    p.add_argument("--hot-share", type=float, default=0.5, help="share of holds on hot pools")
    p.add_argument("--expiry-pools", type=int, default=3)
    p.add_argument("--expiry-holds", type=int, default=2, help="due holds per expiry pool")
    p.add_argument("--staff-clients", type=int, default=8)
    p.add_argument("--staff-pools-each", type=int, default=3, help="pools each staff pair updates")
    p.add_argument("--search-clients", type=int, default=16)
    p.add_argument("--hold-clients", type=int, default=16)
    p.add_argument("--taskforce-clients", type=int, default=4)
    p.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--fault-at", type=float, default=20.0, help="s into the measured window")
    p.add_argument("--restart-after", type=float, default=5.0, help="s the worker stays dead")
    p.add_argument("--worker-poll", type=float, default=5.0, help="ABRI_WORKER_POLL_SECONDS")
    p.add_argument(
        "--worker-startup", type=float, default=15.0, help="allowed start-up time of the worker"
    )
    p.add_argument("--live-clients", type=int, default=16)
    p.add_argument("--live-seconds", type=float, default=5.0)
    p.add_argument("--pgbench-seconds", type=int, default=10, help="0 to skip")
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL)
    p.add_argument("--seed", type=int, default=8)
    args = p.parse_args(argv)
    if args.fault_at + args.restart_after + 2 * args.worker_poll >= args.duration:
        p.error("--duration must leave room after the faults (fault-at + restart + 2 polls)")
    started = datetime.now(UTC)
    load_before = h.machine()
    h.say(f"{started:%Y-%m-%d %H:%M} UTC; machine: {load_before}")
    out, ok = asyncio.run(bench(args))
    load_after = h.machine()
    h.say(f"machine at the end: {load_after}")
    meta = {"started": started, "machine": [load_before, load_after], "args": vars(args)}
    path = h.save("load", {**meta, **out})
    h.say(f"(figures saved to {path.relative_to(h.REPO)}; logs: ops/bench/results/load-*.log)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
