"""Where one search's time goes: per-step timers and SQL statements, in-process (no socket).

    python -m ops.bench.breakdown --backend postgres --facilities 1000

The real app (``create_app``) on a scratch database, its search cache started as the app's
lifespan does (held re-check connection), called straight through ASGI (no HTTP parsing, no
client library: what is measured is the server's work), sequential searches. The steps are
timed by wrapping the product functions in this process only (``authenticate``,
``MatcherIndex.rank``, ``Ranking.result``, ``SnapshotCache.live_free``, ``record_unmet``):
wall-clock time, which for the database steps includes waiting for the database, and the
thread's CPU time. "rest" is everything else the app does for the request: litestar
(routing, authentication middleware, guards, body decoding, response encoding), the
request-id/logging middleware and the controller. SQL statements and connection checkouts
are counted with SQLAlchemy events; the re-check on the held connection goes straight to the
driver, so it is not among them (one statement per search).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import secrets
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from cryptography.fernet import Fernet
from sqlalchemy import event

import api.auth
import placement.matcher as pm
import placement.search_service as ss
from capacity.db import Database
from capacity.settings import Settings
from ops.bench import _harness as h
from ops.bench.search import requests_for
from placement.synthetic import synthetic_facilities

SPENT: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # wall, CPU


def _timed(mod: Any, name: str, label: str, *, is_async: bool = True) -> None:
    fn: Callable[..., Any] = getattr(mod, name)

    if is_async:

        async def wrapper(*a: Any, **k: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return await fn(*a, **k)
            finally:
                SPENT[label][0] += time.perf_counter() - t0
                SPENT[label][1] += time.thread_time() - c0
    else:

        def wrapper(*a: Any, **k: Any) -> Any:  # type: ignore[misc]
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                SPENT[label][0] += time.perf_counter() - t0
                SPENT[label][1] += time.thread_time() - c0

    setattr(mod, name, wrapper)


async def asgi_call(
    app: Any, method: str, path: str, body: bytes = b"", token: str = ""
) -> tuple[int, bytes]:
    """One request straight through the ASGI interface (what uvicorn hands the app)."""
    headers = [(b"host", b"bench")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if body:
        headers += [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    status, chunks = 0, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def run(url: str, backend: str, n: int, searches: int, profile: Path | None = None) -> None:
    now = datetime.now(UTC)
    await h.migrate_db(url)
    db = Database(url)
    try:
        await h.bulk_load(db, synthetic_facilities(n, 7, now=now), now)
        token, *_ = await h.requester_token(db, now)
        stmts: Counter[str] = Counter()
        checkouts = [0]
        for eng in {db.write_engine, db.read_engine}:

            @event.listens_for(eng.sync_engine, "before_cursor_execute")
            def _stmt(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                stmts[statement.split()[0].upper()] += 1

            @event.listens_for(eng.sync_engine, "connect" if db.sqlite else "checkout")
            def _checkout(*_a: Any) -> None:
                checkouts[0] += 1

        settings = Settings(
            database_url=url,
            address_key=Fernet.generate_key().decode(),
            episode_key=secrets.token_urlsafe(32),  # required on PostgreSQL
            run_jobs=False,
            log_level="WARNING",
            matcher_cache_seconds=3600,  # no background refresh inside the measurement
            rate_search_per_minute=0,
        )
        from api.app import create_app

        app = create_app(settings, db=db)
        await app.state.search_cache.start()  # as the app's lifespan does
        bodies = [msgspec.json.encode(b) for b in requests_for(searches + 20, 9)]
        for b in bodies[:20]:  # warm up, build the index
            st, out = await asgi_call(app, "POST", "/placements/search", b, token)
            assert st == 200, out
        SPENT.clear()
        stmts.clear()
        checkouts[0] = 0
        unmet = 0
        prof = cProfile.Profile() if profile else None
        c0, t0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        for b in bodies[20:]:
            st, out = await asgi_call(app, "POST", "/placements/search", b, token)
            assert st == 200, out
            unmet += b'"unmetRecorded":true' in out
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(searches):
            await asgi_call(app, "GET", "/health/live")
        live, live_cpu = time.perf_counter() - t0, time.process_time() - c0
        await app.state.search_cache.aclose()
    finally:
        await db.dispose()
    k = searches / 1000
    h.say(f"{backend}, {n} facilities, {searches} sequential searches in-process ({h.machine()})")

    def line(label: str, wall: float, cpu: float) -> None:
        h.say(f"  {label:40} {wall / k:6.3f} ms wall, {cpu / k:6.3f} ms CPU")

    line("total (process CPU)", total, total_cpu)
    for label, (wall, cpu) in sorted(SPENT.items(), key=lambda kv: -kv[1][1]):
        line(label, wall, cpu)
    line(
        "rest (litestar, middleware, controller)",
        total - sum(v[0] for v in SPENT.values()),
        total_cpu - sum(v[1] for v in SPENT.values()),
    )
    line("(GET /health/live, for comparison)", live, live_cpu)
    per = ", ".join(f"{s} {c / searches:.1f}" for s, c in stmts.most_common()) or "none"
    h.say(f"  SQL statements per search: {per}; connection checkouts {checkouts[0] / searches:.1f}")
    h.say(f"  searches that recorded unmet demand: {unmet} of {searches}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.breakdown", description=__doc__)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--facilities", type=int, default=1000)
    p.add_argument("--searches", type=int, default=1000)
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL)
    p.add_argument(
        "--profile", type=Path, help="write a cProfile of the searches here (slower; timings off)"
    )
    args = p.parse_args(argv)
    _timed(api.auth, "authenticate", "token authentication (read txn)")
    _timed(ss.SnapshotCache, "live_free", "live re-check of candidates (1 query)")
    _timed(ss, "record_unmet", "unmet demand (write txn)")
    _timed(pm.MatcherIndex, "rank", "matcher: rules and ranking", is_async=False)
    _timed(pm.Ranking, "result", "matcher: building options", is_async=False)

    async def go() -> None:
        if args.backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="abri-bench-") as tmp:
                await run(
                    f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
                    "sqlite",
                    args.facilities,
                    args.searches,
                    args.profile,
                )
            return
        async with h.scratch_pg(args.pg_url) as name:
            await run(
                h.asyncpg_url(args.pg_url, name),
                "postgres",
                args.facilities,
                args.searches,
                args.profile,
            )

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
