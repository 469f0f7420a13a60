"""Where one search's time goes: per-step timers and SQL statements, in-process (no socket).

    python -m ops.bench.breakdown --backend postgres --facilities 1000

The real app (``create_app``) on a scratch database, driven through httpx's ASGI transport,
sequential searches. The steps are timed by wrapping the product functions in this process
only (``authenticate``, ``search_service._recheck``, ``record_unmet``, ``match``); SQL
statements and connection checkouts are counted with SQLAlchemy events.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import event

import api.auth
import placement.search_service as ss
from capacity.db import Database
from capacity.settings import Settings
from ops.bench import _harness as h
from ops.bench.search import requests_for
from placement.synthetic import synthetic_facilities

SPENT: defaultdict[str, float] = defaultdict(float)


def _timed(mod: Any, name: str, label: str, *, is_async: bool = True) -> None:
    fn: Callable[..., Any] = getattr(mod, name)

    if is_async:

        async def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                SPENT[label] += time.perf_counter() - t0
    else:

        def wrapper(*a: Any, **k: Any) -> Any:  # type: ignore[misc]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                SPENT[label] += time.perf_counter() - t0

    setattr(mod, name, wrapper)


async def run(url: str, backend: str, n: int, searches: int) -> None:
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
            run_jobs=False,
            log_level="WARNING",
            matcher_cache_seconds=3600,  # no background refresh inside the measurement
            **(
                {"rate_search_per_minute": 0}
                if "rate_search_per_minute" in Settings.__dataclass_fields__
                else {}
            ),
        )
        from api.app import create_app

        app = create_app(settings, db=db)
        bodies = requests_for(searches + 20, 9)
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers=headers
        ) as c:
            for b in bodies[:20]:  # warm up, build the index
                await c.post("/placements/search", json=b)
            SPENT.clear()
            stmts.clear()
            checkouts[0] = 0
            unmet = 0
            t0 = time.perf_counter()
            for b in bodies[20:]:
                r = await c.post("/placements/search", json=b)
                r.raise_for_status()
                unmet += bool(r.json()["unmetRecorded"])
            total = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(searches):
                await c.get("/health/live")
            live = time.perf_counter() - t0
    finally:
        await db.dispose()
    k = searches
    h.say(f"{backend}, {n} facilities, {k} sequential searches in-process ({h.machine()})")
    h.say(f"  total {total / k * 1000:6.2f} ms/search  (GET /health/live {live / k * 1000:.2f} ms)")
    for label, v in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        h.say(f"  {label:36} {v / k * 1000:6.2f} ms/search")
    rest = (total - sum(SPENT.values())) / k * 1000
    h.say(f"  {'rest (litestar, msgspec, middleware)':36} {rest:6.2f} ms/search")
    per = ", ".join(f"{s} {c / k:.1f}" for s, c in stmts.most_common())
    h.say(f"  SQL statements per search: {per}; connection checkouts {checkouts[0] / k:.1f}")
    h.say(f"  searches that recorded unmet demand: {unmet} of {k}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.breakdown", description=__doc__)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--facilities", type=int, default=1000)
    p.add_argument("--searches", type=int, default=200)
    p.add_argument("--pg-url", default=h.DEFAULT_PG_URL)
    args = p.parse_args(argv)
    _timed(api.auth, "authenticate", "token authentication (read txn)")
    _timed(ss, "_recheck", "re-check of options (read txn)")
    _timed(ss, "record_unmet", "unmet demand (write txn)")
    _timed(ss, "match", "matcher", is_async=False)

    async def go() -> None:
        if args.backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="abri-bench-") as tmp:
                await run(
                    f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
                    "sqlite",
                    args.facilities,
                    args.searches,
                )
            return
        async with h.scratch_pg(args.pg_url) as name:
            await run(h.asyncpg_url(args.pg_url, name), "postgres", args.facilities, args.searches)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
