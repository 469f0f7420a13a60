"""Shared benchmark plumbing: scratch databases, bulk loading, a real server, a load generator.

Nothing here is used by the product. The load generator is a minimal HTTP/1.1 keep-alive
client on asyncio streams (one connection per simulated client, closed loop): much cheaper per
request than httpx, so more of the 2 shared cores go to the server under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from capacity import migrate, registry
from capacity.audit import CLI
from capacity.db import Database
from capacity.models import Facility, Operator, Pool
from placement.policy import policy_to_json
from placement.snapshot import FacilitySnapshot

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = os.environ.get(
    "ABRI_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --------------------------------------------------------------------------- figures


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``samples`` (nearest-rank, no interpolation)."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    ms = [x * 1000 for x in samples_s]
    return {
        "n": len(ms),
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    """Write figures as JSON under ops/bench/results/ (git-ignored)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def machine() -> str:
    """Cores and load average: the figures only mean something next to these."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.1f} (1 min) {five:.1f} (5 min)"


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- databases


def _admin_dsn(base_url: str) -> str:
    return make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)


def asyncpg_url(base_url: str, database: str) -> str:
    u = make_url(base_url).set(drivername="postgresql+asyncpg", database=database)
    return u.render_as_string(hide_password=False)


def libpq_args(base_url: str) -> list[str]:
    """``-h/-p/-U`` for pgbench from a URL."""
    u = make_url(base_url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432)]
    if u.username:
        args += ["-U", u.username]
    return args


async def pg_admin(base_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn(base_url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_pg(base_url: str, prefix: str = "abri_bench") -> Any:
    """A fresh PostgreSQL database (``<prefix>_<random>``), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    await pg_admin(base_url, f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate_db(url: str) -> None:
    """``abri db upgrade`` (alembic runs its own event loop, hence the thread)."""
    await asyncio.to_thread(migrate.upgrade, url)


async def bulk_load(db: Database, facilities: list[FacilitySnapshot], now: datetime) -> None:
    """Insert operators, facilities and pools straight into the real tables (Core executemany).

    Facility/pool ids and refs are the snapshots' own; ``operator_id`` k becomes operator k
    ("Bench operator k", a shelter operator). Run on an empty, migrated database, before any
    other operator is created (PostgreSQL sequences are moved past the inserted ids).
    """
    n_ops = max((f.operator_id for f in facilities), default=1)
    ops = [
        {"id": i, "name": f"Bench operator {i}", "kind": "shelter_operator", "created_at": now}
        for i in range(1, n_ops + 1)
    ]
    facs: list[dict[str, Any]] = []
    pools: list[dict[str, Any]] = []
    for f in facilities:
        facs.append(
            {
                "id": f.id,
                "ref": f.ref,
                "operator_id": f.operator_id,
                "alias": f.alias,
                "kind": f.kind,
                "municipality_nis": f.municipality_nis,
                "policy": policy_to_json(f.policy),
                "intake_phone": f.intake_phone,
                "handover_protocol": f.handover_protocol,
                "secret_address": f.secret_address,
                "status": f.status,
                "status_reason": None,
                "status_until": f.status_until,
                "valid_from": f.valid_from,
                "planned_end": f.planned_end,
                "stale_after_minutes": f.stale_after_minutes,
                "created_at": now,
                "updated_at": now,
            }
        )
        for k, p in enumerate(f.pools, start=1):
            pools.append(
                {
                    "id": p.id,
                    "ref": p.ref,
                    "facility_id": f.id,
                    "label": f"{p.unit_kind} {k}",
                    "unit_kind": p.unit_kind,
                    "places_per_unit": p.places_per_unit,
                    "units_total": p.units_total,
                    "units_blocked": p.units_blocked,
                    "units_occupied": p.units_occupied,
                    "units_held": p.units_held,
                    "surge_24h": 0,
                    "surge_72h": 0,
                    "version": 1,
                    "reported_at": p.reported_at,
                    "confirmed_at": p.confirmed_at,
                    "created_at": now,
                }
            )
    chunk = 2000
    async with db.write(lock_timeout_ms=60_000) as s:
        for table, rows in ((Operator, ops), (Facility, facs), (Pool, pools)):
            for i in range(0, len(rows), chunk):
                await s.execute(insert(table), rows[i : i + chunk])
        if not db.sqlite:
            for t in ("operators", "facilities", "pools"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                        f"(SELECT max(id) FROM {t}))"
                    )
                )
    if not db.sqlite:
        async with db.write() as s:
            await s.execute(text("ANALYZE"))


async def requester_token(
    db: Database, now: datetime, *, name: str = "Bench police"
) -> tuple[str, int, int]:
    """A police operator and a police token: (clear token, operator id, token id)."""
    await registry.create_operator(db, name=name, kind="police", actor=CLI, now=now)
    clear, tok = await registry.create_token(
        db, operator=name, role="police", actor=CLI, now=now, label="bench"
    )
    return clear, tok.operator_id, tok.id


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``uvicorn --factory api.app:create_app`` in its own process (what ``abri serve`` runs,
    without its migrate step: the benchmark migrates first). Scheduled jobs and per-token rate
    limits are off so that the figures measure requests only; logs go to results/."""

    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    profile: Path | None = None  # write a cProfile of the whole server run here
    workers: int = 1  # API processes (uvicorn --workers; what `abri serve --workers N` runs)
    factory: str = "api.app:create_app"  # another only for a benchmark-only route

    def start(self) -> Server:
        from cryptography.fernet import Fernet

        self.port = self.port or free_port()
        env = {
            **os.environ,
            "ABRI_DATABASE_URL": self.database_url,
            "ABRI_RUN_JOBS": "0",
            "ABRI_AUTO_MIGRATE": "0",
            "ABRI_LOG_FORMAT": "json",
            "ABRI_LOG_LEVEL": "WARNING",
            "ABRI_ADDRESS_KEY": Fernet.generate_key().decode(),
            # on PostgreSQL a process refuses to start without it (capacity/episode.py)
            "ABRI_EPISODE_KEY": secrets.token_urlsafe(32),
            # one token drives the whole load: per-token rate limits (issue 8) would answer
            # 429 and measure the limiter, not the service
            "ABRI_RATE_SEARCH_PER_MINUTE": "0",
            "ABRI_RATE_HOLD_PER_MINUTE": "0",
            **self.env,
        }
        RESULTS.mkdir(exist_ok=True)
        self.log_path = RESULTS / f"server-{self.port}.log"
        log = self.log_path.open("wb")
        if self.profile:
            cmd = [sys.executable, "-m", "ops.bench._profiled_server", str(self.port)]
            cmd.append(str(self.profile))
        else:
            cmd = [sys.executable, "-m", "uvicorn", "--factory", self.factory]
            cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
            cmd += ["--log-level", "warning", "--no-access-log"]
            if self.workers > 1:
                cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            if _answers_live(self.port):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not answer /health/live within 60 s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far: robust
        against other load on a shared machine, unlike wall-clock throughput."""
        assert self.proc is not None
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def pids(self) -> list[int]:
        """The server process and, with several workers, its worker processes."""
        assert self.proc is not None
        return [self.proc.pid, *children_of(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.log_path is not None and self.log_path.exists():
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()  # keep only logs that say something
            else:
                say(f"  (server log: {self.log_path.relative_to(REPO)})")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (uvicorn's worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _answers_live(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- load generator


class Conn:
    """One HTTP/1.1 keep-alive connection. Only what the benchmarks need."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.base = f"Host: {host}:{port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in (headers or {}).items()
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = self.reader = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """Send one request; ``headers`` are extra raw ``Name: value\\r\\n`` lines."""
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\n{self.base}{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = b""
        if hdrs.get("connection", "").lower() == "close":
            await self.close()
        return status, data


@dataclass
class Recorder:
    """Latencies and status counts per operation, recorded only inside the measuring window."""

    start: float = 0.0
    end: float = 0.0
    lat: dict[str, list[float]] = field(default_factory=dict)
    status: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    total: int = 0  # every completed request, warm-up included

    def add(self, op: str, t0: float, t1: float, status: int) -> None:
        self.total += 1
        if self.start <= t0 and t1 <= self.end:
            self.lat.setdefault(op, []).append(t1 - t0)
            self.status[(op, status)] += 1

    def count(self, op: str) -> int:
        return len(self.lat.get(op, []))

    def per_second(self, op: str) -> float:
        return self.count(op) / (self.end - self.start)

    def statuses(self, op: str) -> dict[int, int]:
        return {st: n for (o, st), n in sorted(self.status.items()) if o == op}


Step = Callable[[Conn, int, Recorder], Awaitable[None]]


async def closed_loop(
    host: str,
    port: int,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    step: Step,
    headers: dict[str, str] | None = None,
) -> Recorder:
    """``concurrency`` clients, each on its own connection, calling ``step`` back to back for
    ``warmup + duration`` seconds; only requests that start and end inside the last
    ``duration`` seconds are recorded."""
    rec = Recorder()
    t0 = time.perf_counter()
    rec.start = t0 + warmup
    rec.end = rec.start + duration

    async def client(w: int) -> None:
        conn = Conn(host, port, headers)
        try:
            while time.perf_counter() < rec.end:
                try:
                    await step(conn, w, rec)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    rec.errors[type(exc).__name__] += 1
                    await conn.close()
        finally:
            await conn.close()

    await asyncio.gather(*(client(w) for w in range(concurrency)))
    return rec


def fmt_ms(s: dict[str, float]) -> str:
    return f"p50 {s['p50']:7.2f}  p95 {s['p95']:7.2f}  p99 {s['p99']:7.2f}  max {s['max']:7.1f} ms"


@contextlib.contextmanager
def timer() -> Iterator[Callable[[], float]]:
    t0 = time.perf_counter()
    done: list[float] = []
    yield lambda: (done[0] if done else time.perf_counter()) - t0
    done.append(time.perf_counter())
