"""Contract fuzzing: no input, from any role, makes Abri answer 5xx or stray from its OpenAPI.

schemathesis reads Abri's own ``/schema/openapi.json``; for every operation it generates valid,
then invalid, requests (bodies, path, query and header parameters, stray extra parameters), and
each one is sent without a token and with every role's token (admin, staff, helpline, police,
taskforce). Every answer must be:

* never a 5xx (``not_a_server_error``);
* a documented status, content type, body and headers (``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``, ``response_headers_conformance``);
* a 4xx for a schema-invalid request (``negative_data_rejection``);
* whenever it is an error, an RFC 9457 problem of Abri's shape (``api.errors.Problem``),
  checked here directly too;
* 401 without a token (public health checks aside), and never 401 with a role's token.

The world is the demo dataset (``ops.demo.load_demo``) plus live holds and an alert; known ids,
references, operator names and NIS codes are mixed into the generated values (schemathesis
"dictionaries") so that valid requests get past "not found" into the code behind it. Generation
is bounded and derandomised (same requests on every run). A role refused by an operation's
guard twice is not sent the rest: guards run before the request is even parsed.

Event loops: schemathesis' ASGI transport runs the app on one event loop of its own, in a
background thread shared by every request of the process (an anyio blocking portal). An
aiosqlite/asyncpg engine is bound to the loop that opened its connections, so the world is
seeded first with its own ``Database`` inside ``asyncio.run`` (and disposed), and the app under
test is then built *without* a ``db``: it opens its own engine lazily, in the portal's loop, and
its lifespan (also run by schemathesis in that loop) disposes it at the end. SQLite only: the
contract is the API's, the same on both databases (the PostgreSQL half of "out of range" ids is
mapped in ``api.errors`` like SQLite's).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from api.app import create_app
from api.auth import PUBLIC_PATHS
from api.errors import Problem
from capacity.clock import FrozenClock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.settings import Settings
from ops.demo import load_demo
from tests.conftest import TEST_EPISODE_KEY, TEST_KEY

ROLES = ("admin", "staff", "helpline", "police", "taskforce")
ANONYMOUS = "anonymous"  # no Authorization header at all: 401 everywhere but the public routes
NOW = datetime(2026, 1, 15, 1, 30, tzinfo=UTC)
MAX_EXAMPLES = 8  # per operation and generation mode (valid, invalid); each sent by every role
SIMPLE_EXAMPLES = 3  # for operations without parameters or body: only stray headers vary
REFUSALS_TO_STOP = 2  # a role refused (401/403) this often is done with the operation: the
# authentication middleware and role guards run before the request is parsed
STREAMS = {"/staff/holds/stream"}  # server-sent events: read for a moment, then cut
STREAM_TIMEOUT = 0.25
#: Fixed inputs, and why. Polling a feed makes outbound HTTP requests (with retries and back-off)
#: to the feed's URL, which a fuzzed admin may have just created: only a feed that does not exist
#: is polled here (tests/integration/test_feeds.py covers real polls against a local server).
FIXED_PATH_PARAMETERS = {"/admin/feeds/{feed_id}/poll": {"feed_id": 2_000_000_000}}
#: Defects this fuzzing found, fixed since; each reproducer stays as a regression test
#: (``test_found_defects_stay_fixed``) with the status it must get now.
FOUND_DEFECTS: dict[str, dict[str, Any]] = {
    "admin search": {
        "request": ("POST", "/placements/search", "admin"),
        "body": {"household": {"adults": [{"gender": "male"}]}, "need": "ipv"},
        "expect": 200,
        "why": "was 500: placement/matcher.py looked 'admin' up among referrer kinds",
    },
    "admin standing request": {
        "request": ("POST", "/standing-requests", "admin"),
        "body": {"search": {"household": {"adults": [{"gender": "male"}]}, "need": "ipv"}},
        "expect": 201,
        "why": "was 500: the same matcher defect, through the request's first round",
    },
    "numeric date-time": {
        "request": ("GET", "/taskforce/exports/daily-census", "taskforce"),
        "query": {"to": "0"},
        "expect": 422,
        "why": "was 200: a bare number was taken as a Unix time where an ISO 8601 date-time "
        "with a timezone is documented",
    },
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

HOUSEHOLD = {"adults": [{"gender": "female", "ageBand": "25-64"}], "languages": ["fr"]}


@dataclass
class ContractWorld:
    """A seeded SQLite file: the demo dataset, one token per role, and some live holds."""

    url: str
    path: Path
    tokens: dict[str, str]
    protected_token_ids: list[int] = field(default_factory=list)
    facility_ids: list[int] = field(default_factory=list)
    pool_ids: list[int] = field(default_factory=list)
    pool_refs: list[str] = field(default_factory=list)
    hold_refs: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    operators: list[str] = field(default_factory=list)
    operator_ids: list[int] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)


def _settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        address_key=TEST_KEY,
        episode_key=TEST_EPISODE_KEY,
        log_format="console",
        log_level="ERROR",  # 4xx answers are expected; a 5xx logs its traceback
        run_jobs=False,
        matcher_cache_seconds=0,
        # the per-token limits refill in real time: the generated requests used up the admin's
        # hold budget, and a found defect's request after them got a 429 on a fast machine
        # (the limiter has its own tests: tests/integration/test_rate_limits.py)
        rate_search_per_minute=0,
        rate_hold_per_minute=0,
    )


async def _seed(url: str) -> dict[str, Any]:
    """Fill the database through the real services and the real API (in this loop only)."""
    clock = FrozenClock(NOW)
    db = Database(url)
    try:
        tokens = await load_demo(db, cipher=AddressCipher([TEST_KEY.encode()]), clock=clock)
        app = create_app(_settings(url), db=db, clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:

            def auth(role: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens[role]}"}

            facilities = (await c.get("/admin/facilities", headers=auth("admin"))).json()
            staff = (await c.get("/staff/facilities", headers=auth("staff"))).json()
            # Decoy tokens: the admin may revoke these; the role tokens are put back if revoked.
            for i in range(3):
                r = await c.post(
                    "/admin/tokens",
                    json={"operator": "Hulplijn 1712", "role": "helpline", "label": f"decoy {i}"},
                    headers=auth("admin"),
                )
                assert r.status_code == 201, r.text
            # Holds on the staff operator's pools (so staff routes see real refs), by both
            # requester roles.
            refs: list[str] = []
            pools = [p for f in staff for p in f["pools"]]
            for i, pool in enumerate(pools[:12]):
                role = ("helpline", "police")[i % 2]
                r = await c.post(
                    "/holds",
                    json={"poolRef": pool["ref"], "household": HOUSEHOLD, "need": "ipv"},
                    headers={**auth(role), "Idempotency-Key": f"contract-seed-{i:04d}"},
                )
                if r.status_code in (200, 201):
                    refs.append(r.json()["ref"])
            assert refs, "seeding made no hold: the contract test would not reach hold routes"
            # One alert to acknowledge.
            r = await c.put(
                f"/admin/facilities/{facilities[-1]['id']}/status",
                json={"status": "location_compromised", "reason": "contract test"},
                headers=auth("admin"),
            )
            assert r.status_code == 200, r.text
            alerts = (await c.get("/admin/alerts", headers=auth("admin"))).json()
            token_rows = (await c.get("/admin/tokens", headers=auth("admin"))).json()
            operators = (await c.get("/admin/operators", headers=auth("admin"))).json()
    finally:
        await db.dispose()
    protected = [t["id"] for t in token_rows if t["label"] == "demo"]
    # The staff operator's own facilities first, so staff requests find something too.
    own = {f["id"] for f in staff}
    facilities.sort(key=lambda f: (f["id"] not in own, f["id"]))
    return {
        "tokens": tokens,
        "protected_token_ids": protected,
        "facility_ids": [f["id"] for f in facilities],
        "pool_ids": [p["id"] for f in facilities for p in f["pools"]],
        "pool_refs": [p["ref"] for f in facilities for p in f["pools"]],
        "hold_refs": refs,
        "token_ids": [t["id"] for t in token_rows if t["id"] not in protected],
        "operators": [o["name"] for o in operators],
        "operator_ids": [o["id"] for o in operators],
        "alert_ids": [a["id"] for a in alerts],
    }


@pytest.fixture(scope="module")
def contract_world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> ContractWorld:
    path = tmp_path_factory.mktemp("contract") / "abri.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    return ContractWorld(url=url, path=path, **asyncio.run(_seed(url)))


def _config(world: ContractWorld) -> schemathesis.Config:
    """Bounded, reproducible generation; known ids and refs mixed into the generated values so
    that requests get past "not found" into the code behind it."""
    return schemathesis.Config.from_dict(
        {
            "seed": 2026,
            "generation": {
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "dictionaries": {
                "facility_ids": {"values": world.facility_ids[:20]},
                "pool_ids": {"values": world.pool_ids[:20]},
                "pool_refs": {"values": world.pool_refs[:20]},
                "hold_refs": {"values": world.hold_refs},
                "token_ids": {"values": world.token_ids},
                "operators": {"values": world.operators},
                "alert_ids": {"values": world.alert_ids or [1]},
                "operator_ids": {"values": world.operator_ids},
                # Brussels, Schaerbeek, Antwerpen, Liège, Namur, Eupen; 20001: a province
                "nis": {"values": ["21004", "21015", "11002", "62063", "92094", "63023", "20001"]},
            },
            "parameters": {
                "path.facility_id": {"dictionary": "facility_ids", "probability": 0.6},
                "path.pool_id": {"dictionary": "pool_ids", "probability": 0.6},
                "path.ref": {"dictionary": "hold_refs", "probability": 0.6},
                "path.token_id": {"dictionary": "token_ids", "probability": 0.6},
                "path.alert_id": {"dictionary": "alert_ids", "probability": 0.6},
                "path.operator_id": {"dictionary": "operator_ids", "probability": 0.6},
                "query.facilityId": {"dictionary": "facility_ids", "probability": 0.5},
                "body.poolRef": {"dictionary": "pool_refs", "probability": 0.6},
                "body.operator": {"dictionary": "operators", "probability": 0.6},
                "path.nis": {"dictionary": "nis", "probability": 0.6},
                "body.municipalityNis": {"dictionary": "nis", "probability": 0.6},
                "body.preferredMunicipalityNis": {"dictionary": "nis", "probability": 0.5},
            },
        }
    )


@pytest.fixture(scope="module")
def contract_schema(contract_world: ContractWorld) -> Iterator[Any]:
    app = create_app(_settings(contract_world.url), clock=FrozenClock(NOW))
    schema = schemathesis.openapi.from_asgi(
        "/schema/openapi.json", app, config=_config(contract_world)
    )
    yield schema
    # Runs the app's lifespan shutdown in schemathesis' loop: disposes the app's engine there.
    schemathesis_asgi.shutdown_lifespans()


def _restore_protected_tokens(world: ContractWorld) -> None:
    """The admin may revoke any token, its own included; put the role tokens back so the rest
    of the run still exercises every role (a plain UPDATE on the SQLite file)."""
    marks = ",".join("?" * len(world.protected_token_ids))
    with sqlite3.connect(world.path, timeout=10) as conn:
        conn.execute(
            f"UPDATE tokens SET revoked_at = NULL WHERE id IN ({marks})",
            world.protected_token_ids,
        )


def _assert_problem(response: Any) -> None:
    """An error answer is an RFC 9457 problem of Abri's documented shape."""
    status = response.status_code
    assert response.headers.get("content-type", [""])[0].startswith("application/problem+json"), (
        f"{status} answer is not application/problem+json: {response.headers}"
    )
    body = msgspec.json.decode(response.content, type=Problem)
    assert body.status == status, (body.status, status)
    assert body.type == f"urn:abri:problem:{body.code}"
    assert body.title and body.detail and body.code


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the document (built without touching a database)."""
    app = create_app(_settings("sqlite+aiosqlite://"), clock=FrozenClock(NOW))
    document = app.openapi_schema.to_schema()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in ("get", "put", "post", "patch", "delete")
        if method in item
    ]


OPERATIONS = _operations()


def _has_inputs(operation: Any) -> bool:
    """Parameters or a body, the bearer token aside."""
    inputs = [*operation.path_parameters, *operation.query, *operation.body]
    inputs += [h for h in operation.headers if h.name.lower() != "authorization"]
    return bool(inputs)


def _budget(operation: Any) -> int:
    if operation.path in STREAMS:
        return SIMPLE_EXAMPLES  # each valid request holds the stream open for STREAM_TIMEOUT
    return MAX_EXAMPLES if _has_inputs(operation) else SIMPLE_EXAMPLES


def _fuzz(operation: Any, mode: GenerationMode, world: ContractWorld) -> int:
    """Send each generated request once per role; return how many requests were sent."""
    path = operation.path
    public = re.match(PUBLIC_PATHS, path) is not None
    roles = [ANONYMOUS, *ROLES] if not public else [ANONYMOUS, "admin"]
    timeout = STREAM_TIMEOUT if path in STREAMS else 5
    revoke = path == "/admin/tokens/{token_id}/revoke"
    refused = dict.fromkeys(roles, 0)
    sent = 0

    @settings(
        max_examples=_budget(operation),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(
            generation_mode=mode,
            path_parameters=FIXED_PATH_PARAMETERS.get(path),
        )
    )
    def run(case: Any) -> None:
        nonlocal sent
        generated = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        for role in roles:
            if refused[role] >= REFUSALS_TO_STOP:
                continue
            case.headers = dict(generated)
            if role != ANONYMOUS:
                case.headers["Authorization"] = f"Bearer {world.tokens[role]}"
            response = case.call(timeout=timeout)
            sent += 1
            try:
                case.validate_response(response, checks=CHECKS)
                if response.status_code >= 400:
                    _assert_problem(response)
                if role == ANONYMOUS and not public:
                    assert response.status_code in (401, 404), "served without a token"
                if role != ANONYMOUS:
                    # a role token refused: revoked by the fuzzing, the rest would be hollow
                    assert response.status_code != 401, "a role token stopped working"
            except BaseException as exc:
                exc.add_note(f"role: {role} ({mode.value} data)")
                raise
            finally:
                if revoke:
                    _restore_protected_tokens(world)
            if response.status_code == (401 if role == ANONYMOUS else 403):
                refused[role] += 1

    run()
    return sent


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_openapi_contract(
    method: str, path: str, contract_schema: Any, contract_world: ContractWorld
) -> None:
    """Valid, then invalid, requests to one operation, each sent without a token and with
    every role's token."""
    operation = contract_schema[path][method]
    sent = _fuzz(operation, GenerationMode.POSITIVE, contract_world)
    if _has_inputs(operation) or list(operation.headers):  # the token can be made invalid
        # (with no input at all there is nothing to make invalid: the public health checks)
        sent += _fuzz(operation, GenerationMode.NEGATIVE, contract_world)
    assert sent >= 2, "almost nothing was sent: the run proved nothing"


@pytest.mark.parametrize("name", list(FOUND_DEFECTS))
def test_found_defects_stay_fixed(
    name: str, contract_schema: Any, contract_world: ContractWorld
) -> None:
    defect = FOUND_DEFECTS[name]
    method, path, role = defect["request"]
    headers = {"Authorization": f"Bearer {contract_world.tokens[role]}"}
    if "body" in defect:
        case = contract_schema[path][method].Case(
            body=defect["body"],
            headers={**headers, "Idempotency-Key": f"contract-found-{len(name):04d}"},
            media_type="application/json",
        )
    else:
        case = contract_schema[path][method].Case(query=defect["query"], headers=headers)
    response = case.call(timeout=5)
    assert response.status_code == defect["expect"], f"{response.status_code}: {defect['why']}"
