"""Holds benchmark (issue 4): ``POST /holds`` + ``POST /holds/{ref}/release`` under contention.

    python -m ops.bench.holds                         # 64 clients, 20 s, PostgreSQL
    python -m ops.bench.holds --clients 32 --duration 10 --skip-pgbench

On a scratch PostgreSQL database: a few HOT pools (few units, every client fights for them)
and many COLD ones. N closed-loop clients, each on its own keep-alive connection to a real
uvicorn process, reserve (a new ``Idempotency-Key`` each time) and release: a granted hold on
a hot pool is released at once (so its units cycle and the fight goes on), one on a cold pool
with probability ``--cold-release``. Afterwards the database is checked: no pool overbooked,
``units_held`` equal to the sum of active holds (``holds_service.counters_agree``), one hold
row per 201. The same mix is then run in-process (``holds_service.reserve``/``transition``
directly, no HTTP) and PostgreSQL's own ceiling is measured with ``pgbench -N -c 8 -j 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, select, text

from capacity.audit import Actor
from capacity.db import Database
from capacity.errors import AbriError
from capacity.models import Hold, Pool
from ops.bench import _harness as h
from ops.bench import _wrk
from placement import holds_service
from placement.errors import NoLongerFree
from placement.household import Household
from placement.policy import AccessPolicy
from placement.snapshot import FacilitySnapshot, PoolSnapshot

POLICY = AccessPolicy(accepts_undocumented=True, languages=["fr", "nl"])
ONE = {"adults": [{"gender": "female", "ageBand": "25-64"}], "residenceStatus": "unknown"}
TWO = {
    "adults": [{"gender": "female", "ageBand": "25-64"}],
    "children": [{"age": 6, "gender": "male"}],
    "residenceStatus": "undocumented",
    "income": "no",
}


def build_world(hot: int, hot_units: int, cold: int, cold_units: int, now: datetime) -> Any:
    """HOT facilities with one small bed pool each; COLD facilities with two bed pools each."""
    facs = []
    pool_id = 1
    for i in range(hot + cold):
        is_hot = i < hot
        ref = f"{'hot' if is_hot else 'cold'}-{i:05d}"
        pools = []
        for k in range(1 if is_hot else 2):
            pools.append(
                PoolSnapshot(
                    id=pool_id,
                    ref=f"{ref}-p{k + 1}",
                    unit_kind="bed",
                    places_per_unit=1,
                    units_total=hot_units if is_hot else cold_units,
                    units_occupied=0,
                    units_held=0,
                    reported_at=now,
                )
            )
            pool_id += 1
        facs.append(
            FacilitySnapshot(
                id=i + 1,
                ref=ref,
                alias=f"Bench shelter {ref}",
                kind="night_shelter",
                operator_id=1 + i % 8,
                municipality_nis="21004",
                policy=POLICY,
                intake_phone="+32 2 000 00 00",
                handover_protocol="Call first.",
                pools=pools,
            )
        )
    hot_refs = [p.ref for f in facs[:hot] for p in f.pools]
    cold_refs = [p.ref for f in facs[hot:] for p in f.pools]
    return facs, hot_refs, cold_refs


@dataclass
class Mix:
    hot_refs: list[str]
    cold_refs: list[str]
    hot_share: float
    cold_release: float
    family_share: float
    seed: int
    totals: dict[str, int] = field(default_factory=dict)

    def rng(self, worker: int) -> random.Random:
        return random.Random(self.seed * 1000 + worker)

    def pick(self, rng: random.Random) -> tuple[str, bool, dict[str, Any]]:
        hot = rng.random() < self.hot_share
        ref = rng.choice(self.hot_refs if hot else self.cold_refs)
        return ref, hot, TWO if rng.random() < self.family_share else ONE

    def released(self, rng: random.Random, hot: bool) -> bool:
        return hot or rng.random() < self.cold_release

    def bump(self, key: str) -> None:
        self.totals[key] = self.totals.get(key, 0) + 1


# --------------------------------------------------------------------------- HTTP


async def run_http(
    port: int, token: str, mix: Mix, *, clients: int, duration: float, warmup: float
) -> h.Recorder:
    rngs = {w: mix.rng(w) for w in range(clients)}
    seq = [0]

    async def step(conn: h.Conn, w: int, rec: h.Recorder) -> None:
        rng = rngs[w]
        ref, hot, household = mix.pick(rng)
        seq[0] += 1
        key = f"bench-{w}-{seq[0]}-{secrets.token_hex(4)}"
        body = msgspec.json.encode({"poolRef": ref, "need": "ipv", "household": household})
        t0 = time.perf_counter()
        st, data = await conn.request("POST", "/holds", body, f"Idempotency-Key: {key}\r\n")
        rec.add("hold", t0, time.perf_counter(), st)
        mix.bump(f"hold {st}")
        if st == 201 and mix.released(rng, hot):
            hold_ref = json.loads(data)["ref"]
            t0 = time.perf_counter()
            st, _ = await conn.request("POST", f"/holds/{hold_ref}/release")
            rec.add("release", t0, time.perf_counter(), st)
            mix.bump(f"release {st}")

    return await h.closed_loop(
        "127.0.0.1",
        port,
        concurrency=clients,
        duration=duration,
        warmup=warmup,
        step=step,
        headers={"Authorization": f"Bearer {token}"},
    )


async def run_live(port: int, token: str, *, clients: int, duration: float) -> h.Recorder:
    """The same server's trivial endpoint, same clients: what HTTP alone allows here."""

    async def step(conn: h.Conn, _w: int, rec: h.Recorder) -> None:
        t0 = time.perf_counter()
        st, _ = await conn.request("GET", "/health/live")
        rec.add("live", t0, time.perf_counter(), st)

    return await h.closed_loop(
        "127.0.0.1",
        port,
        concurrency=clients,
        duration=duration,
        warmup=1.0,
        step=step,
        headers={"Authorization": f"Bearer {token}"},
    )


# --------------------------------------------------------------------------- in-process


async def run_inprocess(
    db: Database, actor: Actor, mix: Mix, *, clients: int, duration: float, warmup: float
) -> h.Recorder:
    rec = h.Recorder()
    t_start = time.perf_counter()
    rec.start = t_start + warmup
    rec.end = rec.start + duration
    households = {id(x): msgspec.convert(x, Household) for x in (ONE, TWO)}

    async def client(w: int) -> None:
        rng = mix.rng(10_000 + w)
        i = 0
        while time.perf_counter() < rec.end:
            ref, hot, household = mix.pick(rng)
            i += 1
            t0 = time.perf_counter()
            try:
                res = await holds_service.reserve(
                    db,
                    pool_ref=ref,
                    household=households[id(household)],
                    need="ipv",
                    minutes=None,
                    callback=None,
                    idempotency_key=f"inproc-{w}-{i}-{secrets.token_hex(4)}",
                    actor=actor,
                    now=datetime.now(UTC),
                )
                st = 201
            except NoLongerFree:
                st, res = 409, None
            except AbriError as exc:
                st, res = getattr(exc, "status", 599), None
                rec.errors[type(exc).__name__] += 1
            rec.add("hold", t0, time.perf_counter(), st)
            mix.bump(f"inproc hold {st}")
            if res is not None and mix.released(rng, hot):
                t0 = time.perf_counter()
                try:
                    await holds_service.transition(
                        db, res.view.ref, "released", actor=actor, now=datetime.now(UTC)
                    )
                    st = 200
                except AbriError as exc:
                    st = getattr(exc, "status", 599)
                    rec.errors[type(exc).__name__] += 1
                rec.add("release", t0, time.perf_counter(), st)
                mix.bump(f"inproc release {st}")

    await asyncio.gather(*(client(w) for w in range(clients)))
    return rec


# --------------------------------------------------------------------------- checks


HISTORY_PREFIX = "hist-"  # not a reference code's alphabet: no clash with the run's holds
_HISTORY = (
    "WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM pools)"
    " INSERT INTO holds (ref, pool_id, facility_id, requester_operator_id, requester_token_id,"
    " requester_kind, units, state, household, segments, need, idempotency_key, request_hash,"
    " created_at, deadline, extensions, closed_at)"
    " SELECT $4::text || i, p.id, p.facility_id, $1::bigint, $2::int, 'police', 1,"
    " (ARRAY['released', 'arrived', 'expired', 'no_show'])[1 + i % 4], '{}', '[]', 'ipv',"
    " $4::text || i, 'history', $3::timestamp - make_interval(mins => i),"
    " $3::timestamp - make_interval(mins => i) + interval '90 minutes', 0,"
    " $3::timestamp - make_interval(mins => i) + interval '1 hour'"
    " FROM generate_series(1, $5::int) AS i, ids"
    " JOIN pools p ON true WHERE p.id = ids.a[1 + i % array_length(ids.a, 1)]"
)


async def seed_history(db: Database, actor: Actor, now: datetime, n: int) -> None:
    """A live database is not empty and has statistics: ``n`` closed holds of the past (spread
    over all pools), then ANALYZE, as autovacuum does on a running system. Without it the run
    starts on empty tables: PostgreSQL then plans the prepared hold statements for a tiny
    ``holds`` table (sequential scans) and keeps those plans for the whole short run. (With
    it, before migration 0007, the statistics saw no active hold and every release read the
    index entries of all active holds: ``tests/integration/test_hold_plans.py``.)"""
    async with db.raw_write() as tx:
        await tx.run(_HISTORY, actor.operator_id, actor.token_id, tx.ts(now), HISTORY_PREFIX, n)
    async with db.raw_write(transaction=False) as tx:
        await tx.run("ANALYZE")


async def verify(db: Database) -> dict[str, Any]:
    """Overbooking and counter agreement, read from the database itself."""
    async with db.read() as s:
        ours = Hold.ref.not_like(f"{HISTORY_PREFIX}%")  # the run's holds, not the history
        touched = select(Hold.pool_id).where(ours).distinct().subquery()
        over = (
            await s.execute(
                select(Pool.id, Pool.units_total, Pool.units_occupied, Pool.units_held)
                .join(touched, touched.c.pool_id == Pool.id)
                .where(Pool.units_occupied + Pool.units_held > Pool.units_total)
            )
        ).all()
        pools_touched = await s.scalar(select(func.count()).select_from(touched))
        by_state = dict(
            (
                await s.execute(select(Hold.state, func.count()).where(ours).group_by(Hold.state))
            ).all()
        )
        scans = dict(
            (
                await s.execute(
                    text(
                        "SELECT relname, seq_scan FROM pg_stat_user_tables"
                        " WHERE relname IN ('holds', 'pools', 'facilities')"
                    )
                )
            ).all()
        )
    disagree = await holds_service.counters_agree(db)
    return {
        "seq_scans_so_far": {k: int(v) for k, v in scans.items()},
        "pools_with_holds": int(pools_touched or 0),
        "overbooked_pools": [tuple(r) for r in over],
        "counter_mismatches": disagree,
        "holds_by_state": {k: int(v) for k, v in by_state.items()},
    }


def say_check(
    label: str, v: dict[str, Any], granted: int, released: int, in_flight: int = 0
) -> bool:
    """``in_flight``: requests a client may have left unanswered when it stopped (wrk stops
    at its deadline without reading the answers under way, one per connection at most): so
    many holds or releases may have happened without their 201 or 200 being counted."""
    rows = sum(v["holds_by_state"].values())
    active = v["holds_by_state"].get("held", 0)
    ok = (
        not v["overbooked_pools"]
        and not v["counter_mismatches"]
        and granted <= rows <= granted + in_flight
        and abs(active - (granted - released)) <= in_flight
    )
    slack = f" ± {in_flight} answers under way when the client stopped" if in_flight else ""
    h.say(
        f"  check {label}: {v['pools_with_holds']} pools touched; overbooked pools "
        f"{len(v['overbooked_pools'])}; units_held != active holds in "
        f"{len(v['counter_mismatches'])} pools; hold rows {rows} (201s: {granted}), "
        f"active {active} (expected {granted - released}{slack}) -> {'OK' if ok else 'FAILED'}"
    )
    h.say(f"  sequential scans so far (plans gone wrong show here): {v['seq_scans_so_far']}")
    return ok


def say_rec(label: str, rec: h.Recorder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in ("hold", "release"):
        s = h.summary_ms(rec.lat.get(op, []))
        st = rec.statuses(op)
        out[op] = {**s, "per_s": rec.per_second(op), "status": st}
        h.say(f"  {label} {op:<7} {rec.per_second(op):7.1f}/s  {h.fmt_ms(s)}  status {st}")
    granted = rec.status[("hold", 201)] / (rec.end - rec.start)
    out["granted_per_s"] = granted
    out["client_errors"] = dict(rec.errors)
    errors = f"  errors {dict(rec.errors)}" if rec.errors else ""
    h.say(f"  {label} granted {granted:7.1f} holds/s{errors}")
    return out


# --------------------------------------------------------------------------- pgbench


def postgres_cpu_seconds() -> float | None:
    """CPU used so far by the local PostgreSQL server: its live processes, plus what its
    exited backends used (the postmaster's reaped children). None if it is not local."""
    total, postmaster = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        if raw[raw.index("(") + 1 : raw.rindex(")")] != "postgres":
            continue
        f = raw.rsplit(")", 1)[1].split()  # state ppid ... utime(11) stime(12) cutime cstime
        total += int(f[11]) + int(f[12])
        if f[1] == "1":  # the postmaster
            total += int(f[13]) + int(f[14])
            postmaster = True
    return total / os.sysconf("SC_CLK_TCK") if postmaster else None


async def pgbench(base_url: str, seconds: int) -> dict[str, Any]:
    conn = h.libpq_args(base_url)
    async with h.scratch_pg(base_url, prefix="abri_pgbench") as name:
        await asyncio.to_thread(
            subprocess.run,
            ["pgbench", "-i", "-q", *conn, name],
            check=True,
            capture_output=True,
        )
        cmd = ["pgbench", "-N", "-c", "8", "-j", "2", "-T", str(seconds), *conn, name]
        pg0 = postgres_cpu_seconds()
        res = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True)
        pg1 = postgres_cpu_seconds()
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", res.stdout)
    lat = re.search(r"latency average = ([0-9.]+) ms", res.stdout)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"pgbench failed: {res.stderr.strip()[-500:]}")
    tps = float(m.group(1))
    return {
        "command": " ".join(cmd[:9]) + " <scratch db>",
        "tps": tps,
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        # includes connection set-up: slightly pessimistic for pgbench
        "postgres_cpu_ms_per_tx": None
        if pg0 is None or pg1 is None
        else (pg1 - pg0) * 1000 / max(1.0, tps * seconds),
    }


# --------------------------------------------------------------------------- main


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    facs, hot_refs, cold_refs = build_world(
        args.hot_pools, args.hot_units, args.cold_facilities, args.cold_units, now
    )
    mix = Mix(hot_refs, cold_refs, args.hot_share, args.cold_release, args.family_share, args.seed)
    # unloaded latency: one client, cold pools only, every hold released (same totals: the
    # database checks count these holds too)
    probe = Mix(hot_refs, cold_refs, 0.0, 1.0, args.family_share, args.seed + 1, mix.totals)
    out: dict[str, Any] = {
        "world": {
            "hot_pools": len(hot_refs),
            "hot_units": args.hot_units,
            "cold_pools": len(cold_refs),
            "cold_units": args.cold_units,
        }
    }
    h.say(
        f"== holds: {args.clients} clients, {len(hot_refs)} hot pools x {args.hot_units} units "
        f"({args.hot_share:.0%} of requests), {len(cold_refs)} cold pools x {args.cold_units} "
        f"units; {args.family_share:.0%} families of 2 (2 beds) =="
    )
    async with h.scratch_pg(args.pg_url) as name:
        url = h.asyncpg_url(args.pg_url, name)
        await h.migrate_db(url)
        db = Database(url)
        try:
            await h.bulk_load(db, facs, now)
            token, op_id, tok_id = await h.requester_token(db, now)
            actor = Actor(operator_id=op_id, role="police", token_id=tok_id, operator_kind="police")
            if args.history > 0:
                await seed_history(db, actor, now, args.history)
                h.say(f"-- {args.history} closed holds of the past seeded, then ANALYZE --")

            if not args.skip_http:
                h.say(
                    f"-- HTTP (uvicorn, {args.workers} API process(es), PostgreSQL {name}),"
                    f" {args.duration:.0f} s --"
                )
                pool_env = {
                    "ABRI_PG_POOL_SIZE": str(args.pg_pool_size),
                    "ABRI_PG_MAX_OVERFLOW": str(args.pg_max_overflow),
                }
                with h.Server(url, env=pool_env, workers=args.workers) as srv:
                    if args.probe_seconds > 0:
                        rec = await run_http(
                            srv.port,
                            token,
                            probe,
                            clients=1,
                            duration=args.probe_seconds,
                            warmup=1.0,
                        )
                        out["http_c1"] = say_rec("http c=1", rec)
                    cpu0, pg0 = srv.cpu_seconds(), postgres_cpu_seconds()
                    gen0 = h.process_cpu_seconds(os.getpid())
                    rec = await run_http(
                        srv.port,
                        token,
                        mix,
                        clients=args.clients,
                        duration=args.duration,
                        warmup=args.warmup,
                    )
                    cpu = (srv.cpu_seconds() - cpu0) * 1000 / max(1, rec.total)
                    gen = (h.process_cpu_seconds(os.getpid()) - gen0) * 1000 / max(1, rec.total)
                    pg1 = postgres_cpu_seconds()
                    pg_cpu = None if pg0 is None or pg1 is None else (pg1 - pg0) * 1000 / rec.total
                    wrk_run = wrk_cpu = wrk_pg = None
                    if args.wrk:
                        cpu0, pg0 = srv.cpu_seconds(), postgres_cpu_seconds()
                        wrk_run = _wrk.run(
                            srv.port,
                            token,
                            hot_refs=hot_refs,
                            cold_refs=cold_refs,
                            hot_share=args.hot_share,
                            cold_release=args.cold_release,
                            family_share=args.family_share,
                            one=ONE,
                            two=TWO,
                            seed=args.seed + 7,
                            clients=args.clients,
                            duration=args.duration,
                        )
                        n = max(1, wrk_run.requests)
                        wrk_cpu = (srv.cpu_seconds() - cpu0) * 1000 / n
                        pg1 = postgres_cpu_seconds()
                        wrk_pg = None if pg0 is None or pg1 is None else (pg1 - pg0) * 1000 / n
                        mix.totals["hold 201"] = mix.totals.get("hold 201", 0) + wrk_run.holds_201
                        mix.totals["release 200"] = (
                            mix.totals.get("release 200", 0) + wrk_run.released
                        )
                    live = None
                    if args.live_seconds > 0:
                        cpu0 = srv.cpu_seconds()
                        live = await run_live(
                            srv.port, token, clients=args.clients, duration=args.live_seconds
                        )
                        live_cpu = (srv.cpu_seconds() - cpu0) * 1000 / max(1, live.total)
                out["http"] = say_rec("http", rec)
                out["http"]["server_cpu_ms_per_request"] = cpu
                out["http"]["loadgen_cpu_ms_per_request"] = gen
                out["http"]["postgres_cpu_ms_per_request"] = pg_cpu
                h.say(f"  http server CPU {cpu:.2f} ms per request (hold or release)")
                h.say(
                    "  http CPU of the others per request: PostgreSQL "
                    + ("n/a" if pg_cpu is None else f"{pg_cpu:.2f} ms")
                    + f", load generator {gen:.2f} ms (all share the same 2 cores)"
                )
                if live is not None:
                    holds_n = rec.count("hold")
                    per_hold = (holds_n + rec.count("release")) / max(1, holds_n)
                    out["live"] = {
                        "per_s": live.per_second("live"),
                        "server_cpu_ms_per_request": live_cpu,
                        "requests_per_hold": per_hold,
                    }
                    h.say(
                        f"  http GET /health/live {live.per_second('live'):7.1f}/s, server CPU "
                        f"{live_cpu:.2f} ms per request ({args.clients} clients, same server); "
                        f"a hold here takes {per_hold:.2f} requests (hold + release)"
                    )
                if wrk_run is not None:
                    w = wrk_run
                    out["http_wrk"] = {
                        "per_s": w.answered_per_s,
                        "granted_per_s": w.holds_201 / w.seconds,
                        "status": {"201": w.holds_201, "409": w.holds_409},
                        "released": w.released,
                        "unexpected": w.unexpected,
                        "socket_errors": w.socket_errors,
                        "p50_ms": w.p50_ms,
                        "p99_ms": w.p99_ms,
                        "server_cpu_ms_per_request": wrk_cpu,
                        "postgres_cpu_ms_per_request": wrk_pg,
                        "loadgen_cpu_ms_per_request": w.cpu_s * 1000 / max(1, w.requests),
                    }
                    h.say(
                        f"  wrk    hold    {w.answered_per_s:7.1f}/s  (201 {w.holds_201}, 409 "
                        f"{w.holds_409}; releases {w.released}; unexpected {w.unexpected}; "
                        f"socket errors {w.socket_errors}); holds and releases p50 "
                        f"{w.p50_ms:.2f} p99 {w.p99_ms:.2f} ms"
                    )
                    h.say(
                        f"  wrk    granted {w.holds_201 / w.seconds:7.1f} holds/s; CPU per "
                        f"request: server {wrk_cpu:.2f} ms, PostgreSQL "
                        + ("n/a" if wrk_pg is None else f"{wrk_pg:.2f} ms")
                        + f", wrk {out['http_wrk']['loadgen_cpu_ms_per_request']:.3f} ms"
                    )
                v = await verify(db)
                out["http"]["check"] = v
                out["http"]["check_ok"] = say_check(
                    "after HTTP",
                    v,
                    mix.totals.get("hold 201", 0),
                    mix.totals.get("release 200", 0),
                    in_flight=args.clients if wrk_run is not None else 0,
                )

            if args.inproc_duration > 0:
                h.say(
                    f"-- in-process (holds_service.reserve/transition, same pool sizes), "
                    f"{args.inproc_duration:.0f} s --"
                )
                ip = Database(url, pool_size=args.pg_pool_size, max_overflow=args.pg_max_overflow)
                try:
                    if args.probe_seconds > 0:
                        rec = await run_inprocess(
                            ip, actor, probe, clients=1, duration=args.probe_seconds, warmup=1.0
                        )
                        out["inprocess_c1"] = say_rec("in-proc c=1", rec)
                    cpu0 = h.process_cpu_seconds(os.getpid())
                    pg0 = postgres_cpu_seconds()
                    rec = await run_inprocess(
                        ip,
                        actor,
                        mix,
                        clients=args.clients,
                        duration=args.inproc_duration,
                        warmup=min(args.warmup, 2.0),
                    )
                    cpu = (h.process_cpu_seconds(os.getpid()) - cpu0) * 1000 / max(1, rec.total)
                    pg1 = postgres_cpu_seconds()
                finally:
                    await ip.dispose()
                out["inprocess"] = say_rec("in-proc", rec)
                out["inprocess"]["cpu_ms_per_call"] = cpu
                h.say(f"  in-proc CPU {cpu:.2f} ms per call (reserve or release)")
                if pg0 is not None and pg1 is not None:
                    # every call of the run, warm-up included, as for the process CPU
                    pg_ms = (pg1 - pg0) * 1000 / max(1, rec.total)
                    holds_n = rec.count("hold")
                    per_hold = (holds_n + rec.count("release")) / max(1, holds_n)
                    out["inprocess"]["postgres_cpu_ms_per_call"] = pg_ms
                    out["inprocess"]["calls_per_hold"] = per_hold
                    h.say(
                        f"  in-proc PostgreSQL server CPU {pg_ms:.2f} ms per call; "
                        f"{pg_ms * per_hold:.2f} ms per hold with its share of releases"
                    )
                v = await verify(db)
                out["inprocess"]["check"] = v
                granted = mix.totals.get("hold 201", 0) + mix.totals.get("inproc hold 201", 0)
                released = mix.totals.get("release 200", 0) + mix.totals.get(
                    "inproc release 200", 0
                )
                out["inprocess"]["check_ok"] = say_check(
                    "after in-process",
                    v,
                    granted,
                    released,
                    in_flight=args.clients if args.wrk and not args.skip_http else 0,
                )
        finally:
            await db.dispose()

    if not args.skip_pgbench:
        h.say(f"-- PostgreSQL ceiling: pgbench -N -c 8 -j 2 -T {args.pgbench_seconds} --")
        pg = await pgbench(args.pg_url, args.pgbench_seconds)
        out["pgbench"] = pg
        h.say(f"  pgbench tps {pg['tps']:.0f} (latency avg {pg['latency_avg_ms']} ms)")
        if pg.get("postgres_cpu_ms_per_tx") is not None:
            h.say(f"  pgbench: PostgreSQL server CPU {pg['postgres_cpu_ms_per_tx']:.3f} ms per tx")
    out["totals"] = mix.totals
    return out


def verdict(out: dict[str, Any]) -> list[str]:
    lines = []
    tps = out.get("pgbench", {}).get("tps")
    for label in ("http", "inprocess"):
        r = out.get(label)
        if not r:
            continue
        lines.append(
            f"{label}: zero overbooking and counters agree: "
            + ("YES" if r["check_ok"] else "NO — see check above")
        )
        if tps:
            req = r["hold"]["per_s"] / tps
            granted = r["granted_per_s"] / tps
            lines.append(
                f"{label}: POST /holds answered/s ÷ pgbench tps = {req:.0%}, granted holds/s ÷ "
                f"pgbench tps = {granted:.0%} (target >= 30%): "
                + (
                    "MET"
                    if granted >= 0.3
                    else "MET on answered/s only"
                    if req >= 0.3
                    else "MISSED"
                )
            )
    w = out.get("http_wrk")
    if w and tps:
        req, granted = w["per_s"] / tps, w["granted_per_s"] / tps
        lines.append(
            f"http (wrk, a C client like pgbench): POST /holds answered/s ÷ pgbench tps = "
            f"{req:.0%}, granted holds/s ÷ pgbench tps = {granted:.0%} (target >= 30%): "
            + ("MET" if granted >= 0.3 else "MET on answered/s only" if req >= 0.3 else "MISSED")
        )
    ip, pg_tx = out.get("inprocess") or {}, out.get("pgbench", {}).get("postgres_cpu_ms_per_tx")
    if ip.get("postgres_cpu_ms_per_call") and pg_tx:
        per_hold = ip["postgres_cpu_ms_per_call"] * ip["calls_per_hold"]
        lines.append(
            f"database ceiling: PostgreSQL spends {per_hold:.2f} ms of CPU per hold (with its "
            f"share of releases) vs {pg_tx:.3f} ms per pgbench transaction: even with a free "
            f"application, holds/s ÷ pgbench tps could not pass about {pg_tx / per_hold:.0%} "
            "on this machine"
        )
    live = out.get("live")
    if tps and live:
        bound = live["per_s"] / live["requests_per_hold"] / tps
        lines.append(
            "http ceiling: if a hold cost no more than GET /health/live on this server, "
            f"POST /holds/s ÷ pgbench tps would be {bound:.0%} (the trivial endpoint's rate ÷ "
            "requests per hold ÷ pgbench tps, same machine, same run)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.holds", description=__doc__)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument(
        "--history",
        type=int,
        default=20_000,
        help="closed holds of the past seeded before the run, then ANALYZE (0: empty tables)",
    )
    p.add_argument("--workers", type=int, default=1, help="API processes (abri serve --workers N)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured over HTTP")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--inproc-duration", type=float, default=10.0, help="0 to skip in-process")
    p.add_argument(
        "--pg-pool-size",
        type=int,
        default=20,
        help="connections per process (ABRI_PG_POOL_SIZE; the product default is 20)",
    )
    p.add_argument("--pg-max-overflow", type=int, default=0, help="ABRI_PG_MAX_OVERFLOW")
    p.add_argument(
        "--live-seconds",
        type=float,
        default=5.0,
        help="GET /health/live on the same server afterwards (the HTTP ceiling); 0 to skip",
    )
    p.add_argument("--hot-pools", type=int, default=4)
    p.add_argument("--hot-units", type=int, default=3)
    p.add_argument("--hot-share", type=float, default=0.5, help="share of requests on hot pools")
    p.add_argument("--cold-facilities", type=int, default=500, help="2 pools each")
    p.add_argument("--cold-units", type=int, default=20)
    p.add_argument(
        "--cold-release", type=float, default=0.5, help="share of cold holds released at once"
    )
    p.add_argument("--family-share", type=float, default=0.2)
    p.add_argument(
        "--probe-seconds",
        type=float,
        default=5.0,
        help="one client alone first (unloaded latency), over HTTP and in-process; 0 to skip",
    )
    p.add_argument("--pgbench-seconds", type=int, default=20)
    p.add_argument("--skip-pgbench", action="store_true")
    p.add_argument("--skip-http", action="store_true")
    p.add_argument(
        "--wrk",
        action="store_true",
        help="after the Python client, the same load from wrk (a C client, like pgbench)",
    )
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    started = datetime.now(UTC)
    load_before = h.machine()
    h.say(f"{started:%Y-%m-%d %H:%M} UTC; machine: {load_before}")
    out = asyncio.run(bench(args))
    load_after = h.machine()
    h.say("")
    h.say(f"machine at the end: {load_after}")
    h.say("== targets ==")
    for line in verdict(out):
        h.say(line)
    meta = {"started": started, "machine": [load_before, load_after], "args": vars(args)}
    path = h.save("holds", {**meta, **out})
    h.say(f"(figures saved to {path.relative_to(h.REPO)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
