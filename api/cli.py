"""The ``abri`` command: serve, migrate, register operators, tokens and facilities.

``abri token create`` prints the token alone on stdout (once), so it can be captured:
``TOKEN=$(abri token create --operator "CAW Oost" --role staff)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import msgspec

from capacity import migrate, registry
from capacity.audit import CLI
from capacity.clock import SystemClock
from capacity.commands import FacilityCreate, FacilityStatus, PoolCreate, StatusChange
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.episode import WRONG_KEY, EpisodeKey, MarkState, compare_mark, record_mark
from capacity.errors import AbriError, InvalidInput
from capacity.models import OPERATOR_KINDS, ROLES
from capacity.phones import fixed_line_zone, tells_zone_message
from capacity.settings import Settings
from capacity.templates import TEMPLATES
from capacity.text import check_text

DEMO_DB = "./abri-demo.db"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _fail(exc: AbriError) -> int:
    _say(f"error: {exc.detail}")
    for e in exc.extra.get("errors") or []:
        where = f"row {e.row}" if getattr(e, "row", None) else "file"
        field = f" [{e.field}]" if getattr(e, "field", None) else ""
        _say(f"  {where}{field}: {e.message}")
    return 2


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_db(settings: Settings, fn: Any) -> Any:
    db = Database(settings.database_url)
    try:
        return await fn(db)
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- commands


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from alembic.util import CommandError

    if args.action == "current":
        print(_run(migrate.current_revision_async(settings.database_url)) or "(empty)")
        return 0
    if args.action == "downgrade" and args.revision is None:
        # Defaulting to "head" made `abri db downgrade` a silent no-op that exited 0.
        _say("error: give the revision to go back to, e.g. `abri db downgrade 0016` or `-1`")
        _say("(note `abri db current` before an upgrade: it is the revision to come back to)")
        return 2
    try:
        if args.action == "upgrade":
            migrate.upgrade(settings.database_url, args.revision or "head")
        else:
            migrate.downgrade(settings.database_url, args.revision)
    except CommandError as exc:
        _say(f"error: {exc}")
        at = _run(migrate.current_revision_async(settings.database_url))
        problem = migrate.schema_problem(at)
        if problem is not None and not problem[0]:
            _say(f"the database is {problem[1]}")
        return 2
    now_at = _run(migrate.current_revision_async(settings.database_url))
    _say(f"database at {now_at or '(empty)'}")
    return 0


def cmd_operator(args: argparse.Namespace, settings: Settings) -> int:
    now = SystemClock().now()
    if args.action == "create":
        op = _run(
            _with_db(
                settings,
                lambda db: registry.create_operator(
                    db,
                    name=args.name,
                    kind=args.kind,
                    actor=CLI,
                    now=now,
                    home_municipality_nis=args.home,
                ),
            )
        )
        _say(f"operator {op.name!r} ({op.kind}) created, id {op.id}")
    else:
        ops = _run(_with_db(settings, registry.list_operators))
        for op in ops:
            print(f"{op.id}\t{op.kind}\t{op.name}")
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    now = SystemClock().now()
    if args.action == "create":
        clear, _tok = _run(
            _with_db(
                settings,
                lambda db: registry.create_token(
                    db, operator=args.operator, role=args.role, actor=CLI, now=now, label=args.label
                ),
            )
        )
        print(clear)
    elif args.action == "revoke":
        _run(
            _with_db(
                settings, lambda db: registry.revoke_token(db, token_id=args.id, actor=CLI, now=now)
            )
        )
        _say(f"token {args.id} revoked")
    else:
        for tok, op in _run(_with_db(settings, registry.list_tokens)):
            if tok.revoked_at:
                state = "revoked"
            elif tok.expires_at is not None and tok.expires_at <= now:
                state = "expired"
            else:
                state = "active" + (
                    f" until {tok.expires_at:%Y-%m-%d %H:%M}Z" if tok.expires_at else ""
                )
            print(
                f"{tok.id}\t{tok.prefix}…\t{tok.role}\t{op.name}\t{state}\t"
                f"{tok.created_at:%Y-%m-%d}\t{tok.label or '-'}"
            )
    return 0


def cmd_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from clients import webhooks

    now = SystemClock().now()
    if args.action == "set":
        cipher = AddressCipher.configured(settings)
        view, secret = _run(
            _with_db(
                settings,
                lambda db: webhooks.set_endpoint(
                    db,
                    operator=args.operator,
                    url=args.url,
                    rotate_secret=args.rotate_secret,
                    actor=CLI,
                    now=now,
                    cipher=cipher,
                ),
            )
        )
        _say(f"webhook for {view.operator!r} set to {view.url}")
        if secret is not None:
            _say("signing secret (shown once; give it to the receiving system):")
            print(secret)
        else:
            _say("signing secret unchanged (use --rotate-secret for a new one)")
    elif args.action == "delete":
        n = _run(
            _with_db(
                settings,
                lambda db: webhooks.delete_endpoint(db, operator=args.operator, actor=CLI, now=now),
            )
        )
        _say(f"webhook removed; {n} undelivered message(s) marked failed")
    else:
        for v in _run(_with_db(settings, webhooks.list_endpoints)):
            print(
                f"{v.operator_id}\t{v.operator}\t{v.url}\t"
                f"pending={v.pending} delivered={v.delivered} failed={v.failed}"
            )
    return 0


def cmd_feeds(args: argparse.Namespace, settings: Settings) -> int:
    from clients.feeds import service as feeds

    if args.action == "add":
        if not args.map:
            _say("error: give at least one --map FEEDID=POOLID[:holds] (the pools the feed writes)")
            return 2
        try:
            mapping = [_parse_map(item) for item in args.map]
        except ValueError as exc:
            _say(f"error: {exc}")
            return 2
        creds = None
        if args.bearer_token_env:
            token = os.environ.get(args.bearer_token_env, "")
            if not token:
                _say(f"error: ${args.bearer_token_env} is empty")
                return 2
            creds = {"type": "bearer", "token": token}
        if args.query_key_env:
            name, eq, env = args.query_key_env.partition("=")
            key = os.environ.get(env, "") if eq else ""
            if not eq or not name or not env:
                _say("error: --query-key-env takes PARAM=ENVVAR, e.g. apikey=HOTEL_KEY")
                return 2
            if not key:
                _say(f"error: ${env} is empty")
                return 2
            if creds is not None:
                _say("error: give --bearer-token-env or --query-key-env, not both")
                return 2
            creds = {"type": "query", "name": name, "value": key}
        cmd = msgspec.convert(
            {
                "name": args.name,
                "operator": args.operator,
                "url": args.url,
                "format": args.format,
                "mapping": mapping,
                "intervalSeconds": args.interval,
                "credentials": creds,
            },
            feeds.FeedCreate,
        )
        cipher = AddressCipher.configured(settings)
        now = SystemClock().now()
        view = _run(
            _with_db(
                settings,
                lambda db: feeds.create_feed(db, cmd, actor=CLI, now=now, cipher=cipher),
            )
        )
        _say(f"feed {view.feed.name!r} registered for {view.operator!r} (id {view.feed.id})")
        print(view.feed.id)
    else:
        from api.feeds.schemas import feed_warnings

        now = SystemClock().now()
        for v in _run(_with_db(settings, feeds.list_feeds)):
            f = v.feed
            alerting = feeds.recent_polls(f, now=now).alerting
            warnings = ",".join(w.code for w in feed_warnings(f)) or "-"
            if f.last_attempt_at is None:
                state = "not polled yet"
            elif f.consecutive_failures == 0 and f.last_success_at:
                state = "healthy"
            else:
                state = "unhealthy"
            print(
                f"{f.id}\t{f.name}\t{v.operator}\t{f.format}\t{state}\tcircuit={f.circuit}\t"
                f"failures={f.consecutive_failures}\tlast_error={f.last_error or '-'}\t"
                f"warnings={warnings}\talerting={'yes' if alerting else 'no'}"
            )
    return 0


def cmd_facilities(args: argparse.Namespace, settings: Settings) -> int:
    from capacity.importer import import_csv

    cipher = AddressCipher.configured(settings)
    now = SystemClock().now()
    if args.action == "import":
        try:
            text = Path(args.file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            _say(f"error: cannot read {args.file}: {exc.strerror or exc}")
            return 2
        except UnicodeDecodeError:
            _say(
                f"error: {args.file} is not UTF-8. In Excel or LibreOffice, save it as "
                "'CSV UTF-8'; nothing was imported."
            )
            return 2

        async def _import(db: Database) -> tuple[list[int], list[tuple[int, str, str]]]:
            ids = await import_csv(db, text, actor=CLI, now=now, cipher=cipher)
            return ids, await registry.secret_landlines(db, ids)

        ids, landlines = _run(_with_db(settings, _import))
        _say(f"imported {len(ids)} facilities")
        _say_landlines(landlines)
    elif args.action == "create":
        pools = [msgspec.convert(_parse_pool(p), PoolCreate) for p in args.pool or []]
        cmd = msgspec.convert(
            {
                "operator": args.operator,
                "alias": args.alias,
                "municipalityNis": args.municipality,
                "template": args.template,
                "kind": args.kind,
                "intakePhone": args.intake_phone,
                "intakePhone24h": args.intake_phone_hours == "24/7",
                "handoverProtocol": args.handover or "",
                **({"secretAddress": args.secret == "yes"} if args.secret else {}),
                **(
                    {
                        "address": {
                            "street": args.street or "",
                            "postalCode": args.postal_code or "",
                            "city": args.city or "",
                        }
                    }
                    if args.street
                    else {}
                ),
                "pools": [msgspec.to_builtins(p) for p in pools],
                **({"validFrom": args.valid_from} if args.valid_from else {}),
                **({"plannedEnd": args.planned_end} if args.planned_end else {}),
            },
            FacilityCreate,
        )
        view = _run(
            _with_db(
                settings,
                lambda db: registry.create_facility(db, cmd, actor=CLI, now=now, cipher=cipher),
            )
        )
        _say(
            f"facility {view.facility.alias!r} created, id {view.facility.id}, "
            f"{len(view.pools)} pool(s)"
        )
        for pool in view.pools:  # their ids are what `abri feeds add --map` asks for
            _say(f"  pool {pool.id}: {_pool_line(pool)}")
        f = view.facility
        zone = fixed_line_zone(f.intake_phone) if f.secret_address else None
        if zone is not None:
            _say(f"warning: {tells_zone_message(zone)}")
        print(view.facility.id)
    elif args.action == "status":
        return _set_status(args, settings)
    elif args.action == "templates":
        for t in TEMPLATES.values():
            print(f"{t.name}\t{t.kind}\t{t.title}")
    elif args.action == "pools":
        views = _run(
            _with_db(settings, lambda db: registry.list_facilities(db, facility_id=args.facility))
        )
        if args.facility is not None and not views:
            _say(f"error: no facility {args.facility}")
            return 2
        for v in views:
            for pool in v.pools:
                print(f"{pool.id}\t{v.facility.id}\t{v.facility.alias}\t{_pool_line(pool)}")
    else:
        for v in _run(_with_db(settings, registry.list_facilities)):
            f = v.facility
            print(
                f"{f.id}\t{f.kind}\t{f.status}\t{f.municipality_nis}\t{v.operator.name}\t{f.alias}"
            )
    return 0


def _set_status(args: argparse.Namespace, settings: Settings) -> int:
    """``abri facility status ID|REF STATUS``: the admin route's path
    (``holds_service.set_facility_status``: a compromised location declines the holds on
    their way; an admin may lift it, with a reason, which acknowledges its alert), then the
    standing-request round a reopening starts, audited as the command line's."""
    from placement import holds_service, standing_service

    until = None
    if args.until is not None:
        try:
            until = datetime.fromisoformat(args.until.strip())
        except ValueError:
            until = None
        if until is None or until.tzinfo is None:
            _say(
                f"error: --until {args.until!r}: a date and time with its time zone, "
                "e.g. 2027-01-15T08:00+01:00; nothing was changed"
            )
            return 2
    cmd = msgspec.convert(
        {"status": args.status, "reason": args.reason, "until": until},
        StatusChange,
    )
    now = SystemClock().now()

    async def _set(db: Database) -> tuple[str, registry.FacilityView, int]:
        facility_id = await registry.facility_id_of(db, args.facility)
        before = (await registry.get_facility(db, facility_id)).facility.status
        view = await holds_service.set_facility_status(db, facility_id, cmd, actor=CLI, now=now)
        offered = await standing_service.run_round(db, settings, now=now)
        return before, view, offered

    before, view, offered = _run(_with_db(settings, _set))
    f = view.facility
    until = f" until {f.status_until:%Y-%m-%d %H:%M}Z" if f.status_until else ""
    _say(f"facility {f.id} ({f.alias}): {before} -> {f.status}{until}")
    if f.status == "location_compromised":
        _say("  no new placements; holds still held there declined, their requesters told")
    elif before == "location_compromised":
        _say("  its location_compromised alert acknowledged")
    if offered:
        _say(f"  {offered} request(s) in line offered a place")
    return 0


def _parse_map(spec: str) -> dict[str, Any]:
    """``FEEDID=POOLID[:holds]``; anything else is refused (a mistyped ``:holds`` would
    silently count every room Abri holds twice)."""
    feed_id, eq, rest = spec.partition("=")
    pool, colon, flag = rest.partition(":")
    if not (eq and feed_id.strip() and pool.strip().isdecimal() and flag in ("", "holds")):
        raise ValueError(
            f"--map {spec!r}: use FEEDID=POOLID[:holds], e.g. DBL=12:holds (the pool's id is "
            "a number; `:holds` when the partner counts rooms Abri holds as occupied)"
        )
    if colon and not flag:
        raise ValueError(f"--map {spec!r}: use FEEDID=POOLID[:holds] (nothing after the colon)")
    return {"feedId": feed_id, "poolId": int(pool), "countsHoldsAsOccupied": flag == "holds"}


def _pool_line(pool: Any) -> str:
    """A pool as the CLI shows it: label, units of which kind, places per unit."""
    return f"{pool.label} ({pool.units_total} {pool.unit_kind} × {pool.places_per_unit} place(s))"


def _parse_pool(spec: str) -> dict[str, Any]:
    bits = spec.split(":")
    usage = f"--pool {spec!r}: use label:unit_kind:places_per_unit:units_total"
    if len(bits) != 4:
        raise SystemExit(usage)
    try:
        places, total = int(bits[2]), int(bits[3])
    except ValueError:
        raise SystemExit(f"{usage} (places and units are whole numbers)") from None
    return {"label": bits[0], "unitKind": bits[1], "placesPerUnit": places, "unitsTotal": total}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    env_url = os.environ.get("ABRI_DATABASE_URL")
    if args.demo:
        # Fictional places and fresh tokens (an admin's) must never land in a real database,
        # SQLite or not: the demo has its own file, made afresh each time.
        if env_url:
            _say(
                f"--demo runs on its own SQLite file ({DEMO_DB}), never on the database "
                "ABRI_DATABASE_URL names; unset ABRI_DATABASE_URL to use it."
            )
            return 2
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DB + suffix).unlink(missing_ok=True)
        os.environ["ABRI_DATABASE_URL"] = f"sqlite+aiosqlite:///{DEMO_DB}"
        settings = Settings.from_env()
    # A wrong key is said here, once, rather than by every API process as it starts.
    AddressCipher.configured(settings)
    EpisodeKey.configured(settings)
    if settings.auto_migrate or args.demo:
        migrate.upgrade(settings.database_url)
    if args.demo:
        from ops.demo import load_demo

        tokens = _run(
            _with_db(
                settings,
                lambda db: load_demo(
                    db,
                    cipher=AddressCipher.configured(settings),
                ),
            )
        )
        base = f"http://{args.host}:{args.port}"
        _say("")
        _say(f"Abri demo on {base}  (database {settings.database_url})")
        _say(f"API documentation: {base}/schema/swagger")
        _say("Demo tokens (one per role):")
        for role, token in tokens.items():
            print(f"  {role:<10} {token}")
        _say(f'Try: curl -H "Authorization: Bearer <staff token>" {base}/staff/facilities')
        _say("")
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each process counts its own requests: without a shared directory a scrape shows the
        # share of whichever process answers it (counters jump back and forth).
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix=f"abri-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,
            log_level="warning",
        )
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from api.logging import configure_logging
    from ops.worker import run_worker

    configure_logging(settings.log_format, settings.log_level)
    AddressCipher.configured(settings)
    EpisodeKey.configured(settings)  # standing requests' holds keep the episode's hash
    if settings.auto_migrate:
        migrate.upgrade(settings.database_url)
    asyncio.run(run_worker(settings))
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from ops import backup

    try:
        target = backup.backup(settings.database_url, Path(args.file))
    except (backup.BackupFailed, ValueError, OSError) as exc:
        _say(f"error: {exc}")
        return 2
    _say(f"backup written to {target}")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from ops import backup

    try:
        backup.restore(Path(args.file), settings.database_url)
    except (backup.BackupFailed, ValueError, OSError) as exc:
        _say(f"error: {exc}")
        _say("nothing was restored")
        return 2
    _say(f"restored {args.file} into {settings.database_url.split('@')[-1]}")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from capacity.rekey import rotate_all

    if args.action == "adopt-episode":
        key = EpisodeKey.configured(settings)
        now = SystemClock().now()
        _run(_with_db(settings, lambda db: record_mark(db, key, now, replace=True)))
        _say(
            f"episode key {key.fingerprint} is now the deployment's: processes started with "
            "another one answer /health/ready 503 until they get this one"
        )
        return 0
    cipher = AddressCipher.configured(settings)
    now = SystemClock().now()
    n = _run(_with_db(settings, lambda db: rotate_all(db, cipher, actor=CLI, now=now)))
    _say(f"{n} secret(s) re-encrypted with the newest key; older keys may now be removed")
    return 0


def _say_landlines(landlines: list[tuple[int, str, str]]) -> None:
    for facility_id, alias, zone in landlines:
        _say(f"warning: facility {facility_id} ({alias}): {tells_zone_message(zone)}")


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from capacity.migrate import schema_problem, stored_revision
    from capacity.rekey import sealed_with_other_keys
    from placement.holds_service import counters_agree

    cipher = AddressCipher.configured(settings)
    episode_key = EpisodeKey.configured(settings)
    Found = tuple[
        list[tuple[int, int, int]],
        list[str],
        list[tuple[int, str, str]],
        tuple[MarkState, str | None],
    ]

    async def _check(db: Database) -> tuple[tuple[bool, str] | None, Found | None]:
        async with db.read() as s:
            problem = schema_problem(await stored_revision(s))
            if problem is not None and problem[0]:
                # as /health/ready: a schema behind this version (an upgrade whose migrations
                # did not run, a backup from before it restored) fails; the rest needs its tables
                return problem, None
            sealed = await sealed_with_other_keys(s, cipher)
        found = (await counters_agree(db), sealed, await registry.secret_landlines(db))
        return problem, (*found, await compare_mark(db, episode_key))

    problem, found = _run(_with_db(settings, _check))
    if problem is not None:
        _say(f"schema: {problem[1]}")
    if found is None:
        return 1
    wrong, sealed, landlines, (mark, recorded) = found
    for pool_id, counter, holds in wrong:
        _say(f"pool {pool_id}: units_held={counter} but active holds hold {holds}")
    _say("counters agree" if not wrong else f"{len(wrong)} pool(s) disagree")
    if sealed:
        shown = ", ".join(sealed[:10]) + (
            f" and {len(sealed) - 10} more" if len(sealed) > 10 else ""
        )
        _say(
            f"address key: no key in ABRI_ADDRESS_KEY opens {len(sealed)} stored secret(s) "
            f"({shown}); this process has another key than the one they were sealed with"
        )
    else:
        _say("address key opens every stored secret")
    # A keyed hash cannot tell which key made it: the fingerprint lets an operator compare
    # processes (each must show the same, or one household's searches and holds count apart).
    _say(f"episode key from {episode_key.source}, fingerprint {episode_key.fingerprint}")
    if mark == "wrong":
        _say(f"episode key: {WRONG_KEY.format(mine=episode_key.fingerprint, theirs=recorded)}")
    elif mark == "ok":
        _say("episode key is the deployment's (the fingerprint the first process recorded)")
    else:
        _say("episode key: no fingerprint recorded yet (the first API process or worker will)")
    # Advice, not a broken invariant: the exit status stays the counters' and the keys'.
    _say_landlines(landlines)
    return 1 if wrong or sealed or mark == "wrong" else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="abri", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the API")
    s.add_argument(
        "--demo",
        action="store_true",
        help="fresh SQLite demo database with ~60 Belgian facilities; prints tokens",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="API processes")
    s.set_defaults(fn=cmd_serve)

    w = sub.add_parser(
        "worker",
        help="run the scheduled jobs (hold expiry, standing requests, feeds, snapshots...); "
        "several may run, one is active",
    )
    w.set_defaults(fn=cmd_worker)

    c = sub.add_parser(
        "check",
        help="invariants: held counters agree with active holds; the address key opens "
        "what is stored",
    )
    c.set_defaults(fn=cmd_check)
    k = sub.add_parser("keys", help="encryption keys of addresses and other secrets")
    k.add_argument(
        "action",
        choices=["rotate", "adopt-episode"],
        help="rotate: re-encrypt everything with the newest address key; adopt-episode: record "
        "this ABRI_EPISODE_KEY as the deployment's, after changing it on every host on purpose",
    )
    k.set_defaults(fn=cmd_keys)
    b = sub.add_parser("backup", help="consistent backup of the database to FILE")
    b.add_argument("file")
    b.set_defaults(fn=cmd_backup)
    r = sub.add_parser("restore", help="restore FILE into an empty database (ABRI_DATABASE_URL)")
    r.add_argument("file")
    r.set_defaults(fn=cmd_restore)

    d = sub.add_parser("db", help="schema migrations")
    d.add_argument("action", choices=["upgrade", "downgrade", "current"])
    d.add_argument(
        "revision",
        nargs="?",
        help="upgrade: default head; downgrade: required (a revision such as 0016, or -1)",
    )
    d.set_defaults(fn=cmd_db)

    o = sub.add_parser("operator", help="operators (organisations)")
    osub = o.add_subparsers(dest="action", required=True)
    oc = osub.add_parser("create")
    oc.add_argument("name")
    oc.add_argument("--kind", required=True, choices=OPERATOR_KINDS)
    oc.add_argument(
        "--home", metavar="NIS", help="main municipality of a local requester (a police zone)"
    )
    osub.add_parser("list")
    o.set_defaults(fn=cmd_operator)

    t = sub.add_parser("token", help="bearer tokens")
    tsub = t.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create", help="prints the token alone on stdout, once")
    tc.add_argument("--operator", required=True)
    tc.add_argument("--role", required=True, choices=ROLES)
    tc.add_argument("--label")
    tr = tsub.add_parser("revoke")
    tr.add_argument("id", type=int)
    tsub.add_parser("list")
    t.set_defaults(fn=cmd_token)

    w = sub.add_parser("webhook", help="requester operators' webhooks")
    wsub = w.add_subparsers(dest="action", required=True)
    ws = wsub.add_parser("set", help="register or change; prints a new secret alone on stdout")
    ws.add_argument("--operator", required=True)
    ws.add_argument("url")
    ws.add_argument(
        "--rotate-secret", action="store_true", help="issue a new secret for an existing webhook"
    )
    wd = wsub.add_parser("delete")
    wd.add_argument("--operator", required=True)
    wsub.add_parser("list")
    w.set_defaults(fn=cmd_webhook)

    fe = sub.add_parser("feeds", aliases=["feed"], help="availability feeds Abri polls")
    fesub = fe.add_subparsers(dest="action", required=True)
    fa = fesub.add_parser("add", help="register a feed; prints its id")
    fa.add_argument("--name", required=True)
    fa.add_argument("--operator", required=True)
    fa.add_argument(
        "--format", required=True, choices=["json_inventory", "csv_export", "edxl_have"]
    )
    fa.add_argument("--map", action="append", help="FEEDID=POOLID[:holds] (repeatable)")
    fa.add_argument("--interval", type=int, default=300, help="seconds between polls")
    fa.add_argument(
        "--bearer-token-env", help="name of an environment variable holding the feed's token"
    )
    fa.add_argument(
        "--query-key-env",
        metavar="PARAM=ENVVAR",
        help="the feed wants a key in its URL's query (?PARAM=…): the environment variable "
        "holding it (kept encrypted, never shown)",
    )
    fa.add_argument("url")
    fesub.add_parser("list", help="feeds and their health")
    fe.set_defaults(fn=cmd_feeds)

    f = sub.add_parser("facilities", aliases=["facility"], help="facilities")
    fsub = f.add_subparsers(dest="action", required=True)
    fi = fsub.add_parser("import", help="bulk import a CSV file (all rows or none)")
    fi.add_argument("file")
    fc = fsub.add_parser("create", help="register one facility")
    fc.add_argument("--operator", required=True)
    fc.add_argument("--alias", required=True)
    fc.add_argument("--municipality", required=True, help="NIS code")
    fc.add_argument("--template", choices=sorted(TEMPLATES))
    fc.add_argument("--kind")
    fc.add_argument("--intake-phone", required=True)
    fc.add_argument(
        "--intake-phone-hours",
        choices=["24/7", "office"],
        default="24/7",
        help="whether the intake phone answers round the clock (default) or in office hours",
    )
    fc.add_argument("--handover")
    fc.add_argument("--secret", choices=["yes", "no"])
    fc.add_argument("--street")
    fc.add_argument("--postal-code")
    fc.add_argument("--city")
    fc.add_argument(
        "--pool", action="append", help="label:unit_kind:places_per_unit:units_total (repeatable)"
    )
    fc.add_argument("--valid-from", help="a temporary scheme's start, ISO 8601 with time zone")
    fc.add_argument(
        "--planned-end", help="a temporary scheme's planned end, ISO 8601 with time zone"
    )
    fs = fsub.add_parser(
        "status",
        help="set a facility's status as an admin does (lifts location_compromised too)",
    )
    fs.add_argument("facility", help="the facility's id or ref")
    fs.add_argument("status", choices=get_args(FacilityStatus))
    fs.add_argument(
        "--reason",
        help="required unless open, and to lift location_compromised; seen by staff and "
        "admins only",
    )
    fs.add_argument(
        "--until",
        help="a temporary status's end, ISO 8601 with time zone; the place reopens then",
    )
    fsub.add_parser("list")
    fp = fsub.add_parser("pools", help="pools with their ids (for abri feeds add --map)")
    fp.add_argument("facility", nargs="?", type=int, help="one facility's id (default: all)")
    fsub.add_parser("templates")
    f.set_defaults(fn=cmd_facilities)
    return p


#: Arguments that name a file or a database, not a text Abri stores.
NOT_TEXT = frozenset({"file", "fn"})


def refuse_bad_text(args: argparse.Namespace) -> None:
    """The API's rule for texts (``capacity.text``) on every text argument, named as the
    command's option is (``--handover`` is multi-line like the API's handover protocol)."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for text in values:
            if name in NOT_TEXT or not isinstance(text, str):
                continue
            refused = check_text(text, name)
            if refused is not None:
                raise InvalidInput(refused, field=name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        refuse_bad_text(args)
        return int(args.fn(args, settings) or 0)
    except AbriError as exc:
        return _fail(exc)
    except msgspec.ValidationError as exc:
        _say(f"error: {exc}")
        return 2
    except BrokenPipeError:
        # Our own output's reader went away (`abri facilities list | head`): nothing to say,
        # and not the database (its broken connections arrive wrapped by the driver).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error as Python flushes at exit
        return 1
    except Exception as exc:
        reason = _connection_failure(exc)
        if reason is None:
            raise
        _say(f"error: cannot connect to the database at {_where(settings.database_url)}: {reason}")
        _say("check ABRI_DATABASE_URL (postgresql+asyncpg://user:password@host:port/database)")
        return 2


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        return "ABRI_DATABASE_URL"
    if u.get_backend_name() == "sqlite":
        return str(u.database)
    return f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"


def _connection_failure(exc: BaseException) -> str | None:
    """Why the database could not be reached, if that is what ``exc`` is; else None (a bug
    keeps its traceback)."""
    import socket

    from sqlalchemy.exc import DBAPIError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return f"unknown host ({cur.strerror or cur})"
        if isinstance(cur, (ConnectionError, TimeoutError)):
            return str(cur.strerror or cur) if isinstance(cur, OSError) else str(cur)
        if isinstance(cur, DBAPIError) and cur.statement is None:
            # raised while connecting (no statement ran): unknown database, role, password
            return str(cur.orig or cur).splitlines()[0].split(") ", 1)[-1]
        cur = cur.__cause__ or cur.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
