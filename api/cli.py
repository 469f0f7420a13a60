"""The ``abri`` command: serve, migrate, register operators, tokens and facilities.

``abri token create`` prints the token alone on stdout (once), so it can be captured:
``TOKEN=$(abri token create --operator "CAW Oost" --role staff)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from capacity import migrate, registry
from capacity.audit import CLI
from capacity.clock import SystemClock
from capacity.commands import FacilityCreate, PoolCreate
from capacity.crypto import AddressCipher
from capacity.db import Database, is_sqlite
from capacity.errors import AbriError
from capacity.models import OPERATOR_KINDS, ROLES
from capacity.settings import Settings
from capacity.templates import TEMPLATES

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
    if args.action == "upgrade":
        migrate.upgrade(settings.database_url, args.revision)
        _say(f"database at {migrate.head_revision() if args.revision == 'head' else args.revision}")
    elif args.action == "downgrade":
        migrate.downgrade(settings.database_url, args.revision)
    elif args.action == "current":
        print(_run(migrate.current_revision_async(settings.database_url)) or "(empty)")
    return 0


def cmd_operator(args: argparse.Namespace, settings: Settings) -> int:
    now = SystemClock().now()
    if args.action == "create":
        op = _run(
            _with_db(
                settings,
                lambda db: registry.create_operator(
                    db, name=args.name, kind=args.kind, actor=CLI, now=now
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
            state = "revoked" if tok.revoked_at else "active"
            print(f"{tok.id}\t{tok.prefix}…\t{tok.role}\t{op.name}\t{state}")
    return 0


def cmd_facilities(args: argparse.Namespace, settings: Settings) -> int:
    from capacity.importer import import_csv

    cipher = AddressCipher.from_settings(settings.address_key, settings.address_key_file)
    now = SystemClock().now()
    if args.action == "import":
        text = Path(args.file).read_text(encoding="utf-8-sig")
        ids = _run(
            _with_db(settings, lambda db: import_csv(db, text, actor=CLI, now=now, cipher=cipher))
        )
        _say(f"imported {len(ids)} facilities")
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
        print(view.facility.id)
    elif args.action == "templates":
        for t in TEMPLATES.values():
            print(f"{t.name}\t{t.kind}\t{t.title}")
    else:
        for v in _run(_with_db(settings, registry.list_facilities)):
            f = v.facility
            print(
                f"{f.id}\t{f.kind}\t{f.status}\t{f.municipality_nis}\t{v.operator.name}\t{f.alias}"
            )
    return 0


def _parse_pool(spec: str) -> dict[str, Any]:
    bits = spec.split(":")
    if len(bits) != 4:
        raise SystemExit(f"--pool {spec!r}: use label:unit_kind:places_per_unit:units_total")
    return {
        "label": bits[0],
        "unitKind": bits[1],
        "placesPerUnit": int(bits[2]),
        "unitsTotal": int(bits[3]),
    }


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    env_url = os.environ.get("ABRI_DATABASE_URL")
    if args.demo:
        if env_url and not is_sqlite(env_url):
            _say("--demo runs on its own SQLite file; unset ABRI_DATABASE_URL to use it.")
            return 2
        url = env_url or f"sqlite+aiosqlite:///{DEMO_DB}"
        if not env_url:
            for suffix in ("", "-wal", "-shm"):
                Path(DEMO_DB + suffix).unlink(missing_ok=True)
        os.environ["ABRI_DATABASE_URL"] = url
        settings = Settings.from_env()
    if settings.auto_migrate or args.demo:
        migrate.upgrade(settings.database_url)
    if args.demo:
        from ops.demo import load_demo

        tokens = _run(
            _with_db(
                settings,
                lambda db: load_demo(
                    db,
                    cipher=AddressCipher.from_settings(
                        settings.address_key, settings.address_key_file
                    ),
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
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )
    return 0


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

    d = sub.add_parser("db", help="schema migrations")
    d.add_argument("action", choices=["upgrade", "downgrade", "current"])
    d.add_argument("revision", nargs="?", default="head")
    d.set_defaults(fn=cmd_db)

    o = sub.add_parser("operator", help="operators (organisations)")
    osub = o.add_subparsers(dest="action", required=True)
    oc = osub.add_parser("create")
    oc.add_argument("name")
    oc.add_argument("--kind", required=True, choices=OPERATOR_KINDS)
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
    fc.add_argument("--handover")
    fc.add_argument("--secret", choices=["yes", "no"])
    fc.add_argument("--street")
    fc.add_argument("--postal-code")
    fc.add_argument("--city")
    fc.add_argument(
        "--pool", action="append", help="label:unit_kind:places_per_unit:units_total (repeatable)"
    )
    fsub.add_parser("list")
    fsub.add_parser("templates")
    f.set_defaults(fn=cmd_facilities)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return int(args.fn(args, settings) or 0)
    except AbriError as exc:
        return _fail(exc)
    except msgspec.ValidationError as exc:
        _say(f"error: {exc}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
