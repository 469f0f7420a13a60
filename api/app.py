"""The litestar application: wiring only, no business rules."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ParamType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.response import ServerSentEvent

from api.admin.controllers import AdminController
from api.admin.schemas import IMPORT_CSV_EXAMPLE
from api.areas.controllers import AreasController
from api.auth import PUBLIC_PATHS, AuthCache, BearerAuthMiddleware
from api.body import AbriRequest, refuse_nul_in_query
from api.deps import DEPENDENCIES
from api.docs import swagger_assets, swagger_plugin
from api.errors import EXCEPTION_HANDLERS, PROBLEM_MEDIA_TYPE, PROBLEM_STATUSES
from api.feeds.controllers import FeedController
from api.health import live, metrics, ready
from api.holds.controllers import HoldController, StaffHoldController
from api.logging import RequestIdMiddleware, configure_logging
from api.placement.controllers import PlacementController
from api.ratelimit import StreamSlots, TokenBuckets
from api.staff.controllers import StaffController
from api.staff.links import StaffLinkController
from api.standing.controllers import StandingController
from api.taskforce.controllers import TaskforceController
from api.web import WEB_HANDLERS
from api.web.links import LinkPageController
from api.web.taskforce import TaskforcePageController
from capacity.clock import Clock, SystemClock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.episode import EpisodeKey, announce_mark
from capacity.settings import Settings
from placement.holds_service import WEBHOOK_EVENTS, WEBHOOK_REASONS
from placement.search_service import SnapshotCache

ROUTE_HANDLERS: list[Any] = [
    live,
    ready,
    metrics,
    AreasController,
    StaffController,
    StaffLinkController,
    AdminController,
    HoldController,
    StaffHoldController,
    PlacementController,
    StandingController,
    TaskforceController,
    FeedController,
    *WEB_HANDLERS,
    LinkPageController,
    TaskforcePageController,
    swagger_assets,
]


def _problem_schema() -> Schema:
    string, integer = Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.INTEGER)
    nullable_string = Schema(one_of=[string, Schema(type=OpenAPIType.NULL)])
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        properties={"field": nullable_string, "message": string, "row": integer},
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["type", "title", "status", "code", "detail"],
        properties={
            "type": string,
            "title": string,
            "status": integer,
            "code": string,
            "detail": string,
            "field": nullable_string,
            "errors": Schema(type=OpenAPIType.ARRAY, items=field_error),
            "requestId": nullable_string,
            "current": Schema(type=OpenAPIType.OBJECT),
            "retryAfter": integer,
        },
        description="RFC 9457 problem details; `code` is stable and machine-readable.",
    )


def _add_problem_responses(app: Litestar) -> None:
    """Declare the problem-details responses on every operation of the OpenAPI document, so
    clients and schemathesis know the shape of our 4xx/5xx answers.

    Litestar declares its own 400 (``{status_code, detail, extra}`` as ``application/json``)
    on handlers that parse input; our exception handlers answer every error as a problem, so
    such a response is replaced (keeping a description a handler chose). Server-sent event
    streams are documented as ``text/event-stream`` instead of litestar's empty JSON."""
    schema = app.openapi_schema
    if schema.components.schemas is None:
        schema.components.schemas = {}
    schema.components.schemas["Problem"] = _problem_schema()
    ref = Reference(ref="#/components/schemas/Problem")
    for path_item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "patch", "delete"):
            op = getattr(path_item, method, None)
            if op is None:
                continue
            responses = op.responses or {}
            public = (op.tags or []) == ["operations"]
            if public:
                op.security = []  # health checks take no token (PUBLIC_PATHS)
            for status in (*(PROBLEM_STATUSES if not public else ()), 500, 503):
                existing = responses.get(str(status))
                if isinstance(existing, Reference) or (
                    existing is not None and PROBLEM_MEDIA_TYPE in (existing.content or {})
                ):
                    continue
                description = "Problem details (RFC 9457)"
                if existing is not None and existing.description not in (
                    None,
                    HTTPStatus(status).description,
                ):
                    description = existing.description
                responses[str(status)] = OpenAPIResponse(
                    description=description,
                    content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=ref)},
                )
            op.responses = responses
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            returns = handler.parsed_fn_signature.return_type.annotation
            if not (isinstance(returns, type) and issubclass(returns, ServerSentEvent)):
                continue
            path_item = (schema.paths or {}).get(route.path_format)
            for method in handler.http_methods:
                op = getattr(path_item, method.lower(), None)
                ok = (op.responses or {}).get("200") if op is not None else None
                if isinstance(ok, OpenAPIResponse):
                    ok.content = {"text/event-stream": OpenAPIMediaType(schema=_event_schema())}


def _event_schema() -> Schema:
    """One server-sent event, as a client's EventSource parser yields it."""
    string = Schema(type=OpenAPIType.STRING)
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["data", "event"],
        properties={
            "event": Schema(
                type=OpenAPIType.STRING,
                description='What happened: "hold.created", "hold.extended", "hold.released", '
                '"hold.expired", "hold.declined", "hold.no_show", "hold.arrived" or '
                '"hold.departed"; "message" (empty data) for the opening one, whose id is the '
                "stream's position.",
            ),
            "data": Schema(
                type=OpenAPIType.STRING,
                description="JSON of the resource the event is about, as it is when the event "
                "is sent (empty when opening). While nothing happens a comment line "
                "(': keepalive') comes every 15 s.",
            ),
            "id": string,
            "retry": Schema(type=OpenAPIType.INTEGER),
        },
        description="A server-sent event (HTML Living Standard); reconnect with Last-Event-ID.",
    )


def _document_idempotent_replays(app: Litestar) -> None:
    """A create that takes an ``Idempotency-Key`` answers 201 the first time and 200, with the
    same body, when the same request is replayed with the same key: document both."""
    for path_item in (app.openapi_schema.paths or {}).values():
        op = path_item.post
        if op is None or not op.responses or "201" not in op.responses:
            continue
        headers = [
            p.name.lower()
            for p in op.parameters or []
            if not isinstance(p, Reference) and p.param_in == "header"
        ]
        created = op.responses["201"]
        if "idempotency-key" in headers and isinstance(created, OpenAPIResponse):
            op.responses.setdefault(
                "200",
                OpenAPIResponse(
                    description="The same request was made before with this Idempotency-Key: "
                    "the resource it created, not a second one (for a hold: also when the "
                    "household, by its episodeToken, composition and need, already holds "
                    "this place).",
                    content=created.content,
                ),
            )


def _promote_request_examples(app: Litestar) -> None:
    """Litestar puts a body's examples inside its JSON schema; Swagger UI's "Try it out" and
    most client generators read them from the media type. Copy them there too."""
    for path_item in (app.openapi_schema.paths or {}).values():
        for method in ("put", "post", "patch"):
            op = getattr(path_item, method, None)
            body = getattr(op, "request_body", None)
            if body is None or isinstance(body, Reference):
                continue
            for media in (body.content or {}).values():
                schema = media.schema
                found = getattr(schema, "examples", None) if isinstance(schema, Schema) else None
                if found and not media.examples:
                    media.examples = {
                        f"example{i + 1}": Example(summary=op.summary, value=value)
                        for i, value in enumerate(found)
                    }


#: Headers an operation refuses to go without (a problem, 428, rather than a validation error,
#: so they are optional to the framework): mark them required for Swagger UI and clients.
REQUIRED_HEADERS = {("/staff/pools/{pool_id}/availability", "put"): {"if-match"}}


def _document_required_headers(app: Litestar) -> None:
    paths = app.openapi_schema.paths or {}
    for (path, method), names in REQUIRED_HEADERS.items():
        op = getattr(paths[path], method)
        for p in op.parameters or []:
            if not isinstance(p, Reference) and p.param_in == "header" and p.name.lower() in names:
                p.required = True


#: What Abri POSTs to a requester organisation's webhook URL (clients/webhooks.py).
WEBHOOK_EVENTS_DOCUMENTED = (
    *sorted(WEBHOOK_EVENTS | {"hold.released"}),  # released: by an admin only
    "standing.offered",
    "standing.waiting",
    "standing.expired",
)


def _document_webhooks(app: Litestar) -> None:
    """The requesters' webhook in the OpenAPI document (3.1 ``webhooks``): the message, its
    headers and what counts as delivered, as the README's "Webhooks" section says."""
    string = Schema(type=OpenAPIType.STRING)
    message = Schema(
        type=OpenAPIType.OBJECT,
        required=["id", "event", "ref", "state", "at"],
        additional_properties=False,
        properties={
            "id": Schema(
                type=OpenAPIType.INTEGER, description="The delivery id, as in `Abri-Delivery`."
            ),
            "event": Schema(type=OpenAPIType.STRING, enum=list(WEBHOOK_EVENTS_DOCUMENTED)),
            "ref": Schema(
                type=OpenAPIType.STRING,
                description="The hold's reference code (`hold.*`), or the standing request's.",
            ),
            "state": Schema(
                type=OpenAPIType.STRING,
                description="The hold's or the standing request's state after the event.",
            ),
            "holdRef": Schema(
                one_of=[string, Schema(type=OpenAPIType.NULL)],
                description=(
                    "`standing.*` only: the hold made for the request when offered; for "
                    "`standing.waiting` (back in line, in its original position, because the "
                    "place declined that hold or marked it no-show) the hold that ended."
                ),
            ),
            "reason": Schema(
                one_of=[
                    Schema(type=OpenAPIType.STRING, enum=list(WEBHOOK_REASONS)),
                    Schema(type=OpenAPIType.NULL),
                ],
                description=(
                    "`hold.*` and `standing.waiting`: why the hold ended, as a stable code "
                    "(never the staff's "
                    "own words): `declined` (by the place's staff), `location_compromised` "
                    "(declined because the place's location is compromised: do not go "
                    "there; search again), `expired`, `no_show`, `released_by_admin` "
                    "(`hold.released`: an admin gave the place back; your own releases send "
                    "nothing); null for `hold.arrived`. "
                    "New codes may be added: treat an unknown one as the event itself."
                ),
            ),
            "at": Schema(
                type=OpenAPIType.STRING,
                format=OpenAPIFormat.DATE_TIME,
                description="When it happened (UTC); `hold.expired`: the hold's deadline.",
            ),
        },
        description="No household data, no address.",
    )
    schema = app.openapi_schema
    assert schema.components.schemas is not None
    schema.components.schemas["WebhookMessage"] = message

    def header(name: str, description: str) -> Parameter:
        return Parameter(
            name=name, param_in=ParamType.HEADER, required=True, schema=string,
            description=description,
        )  # fmt: skip

    schema.webhooks = {
        "holdOrStandingEvent": PathItem(
            post=Operation(
                summary="A hold or standing request of your organisation changed",
                description=(
                    "Sent to the URL an admin registered for your organisation "
                    "(`PUT /admin/operators/{id}/webhook`). Verify `Abri-Signature` before "
                    "trusting the body: `v1=` + hex HMAC-SHA256 with the secret exactly as "
                    'shown (`whsec_` included) over `"<Abri-Timestamp>.<raw body>"`; refuse '
                    "timestamps more than 5 min off. Delivered at least once, in no "
                    "guaranteed order: de-duplicate on `Abri-Delivery`. Any 2xx within 10 s "
                    "is delivered; anything else is retried after 30 s, 1, 2, 4, 8, 16 and "
                    "32 min."
                ),
                parameters=[
                    header("Abri-Event", "The event, as `event` in the body."),
                    header("Abri-Delivery", "Unique per message, the same on every retry."),
                    header("Abri-Timestamp", "Unix seconds at sending time."),
                    header("Abri-Signature", "`v1=<hex HMAC-SHA256>`, see above."),
                ],
                request_body=RequestBody(
                    required=True,
                    content={
                        "application/json": OpenAPIMediaType(
                            schema=Reference(ref="#/components/schemas/WebhookMessage")
                        )
                    },
                ),
                responses={
                    "2XX": OpenAPIResponse(description="Delivered."),
                    "default": OpenAPIResponse(description="Retried later."),
                },
                security=[],
            )
        )
    }


def _document_optional_bodies(app: Litestar) -> None:
    """A body the handler defaults to ``None`` (``POST /holds/{ref}/extend``: the default
    extension) is optional; litestar declares every request body required."""
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            data = inspect.signature(handler.fn).parameters.get("data")
            if data is None or data.default is not None:
                continue
            item = paths.get(route.path_format)
            for method in handler.http_methods:
                op = getattr(item, method.lower(), None) if item is not None else None
                body = None if op is None else op.request_body
                if body is not None and not isinstance(body, Reference):
                    body.required = False


#: Headers a response carries that a client must read: the pool's version to send back as
#: If-Match, what a POST created, and how long to wait before trying again.
ETAG_OPERATIONS = (
    ("/staff/pools/{pool_id}", "get"),
    ("/staff/pools/{pool_id}/availability", "put"),
    ("/staff/pools/{pool_id}/confirm", "post"),
)
#: Creations that answer with the new resource's path in ``Location``.
LOCATION_OPERATIONS = (("/holds", "post"), ("/standing-requests", "post"), ("/admin/feeds", "post"))


def _header(description: str, schema: Schema | None = None) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema or Schema(type=OpenAPIType.STRING), description=description)


def _document_response_headers(app: Litestar) -> None:
    """Declare the response headers clients act on (a generated client exposes only those):
    ``ETag`` of a pool (also on a 412, with the current version), ``Retry-After`` on a 429 or
    a 503 (busy, database unavailable; not the health check's), ``Location`` of a 201."""
    paths = app.openapi_schema.paths or {}
    etag = _header('The pool\'s version, e.g. "4": send it back as If-Match to update the pool.')
    for path, method in ETAG_OPERATIONS:
        op = getattr(paths[path], method)
        for status in ("200", "412"):
            response = (op.responses or {}).get(status)
            if isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), "ETag": etag}
    retry = _header(
        "Seconds to wait before trying again (with the same Idempotency-Key for a hold).",
        Schema(type=OpenAPIType.INTEGER),
    )
    for path, method in LOCATION_OPERATIONS:
        created = (getattr(paths[path], method).responses or {}).get("201")
        if isinstance(created, OpenAPIResponse):
            location = _header("The path of what was created.")
            created.headers = {**(created.headers or {}), "Location": location}
    for path_item in paths.values():
        for method in ("get", "put", "post", "patch", "delete"):
            op = getattr(path_item, method, None)
            if op is None:
                continue
            public = (op.tags or []) == ["operations"]
            for status in ("429", "503"):
                response = (op.responses or {}).get(status)
                if isinstance(response, OpenAPIResponse) and not (public and status == "503"):
                    response.headers = {**(response.headers or {}), "Retry-After": retry}


def _document_csv_import(app: Litestar) -> None:
    """The CSV import reads its body itself (text/csv), so litestar documents none: without
    one Swagger UI offers no field to send the file in."""
    op = (app.openapi_schema.paths or {})["/admin/facilities/import"].post
    assert op is not None
    op.request_body = RequestBody(
        required=True,
        description="A UTF-8 CSV file with a header row; columns in the README "
        "(Onboarding in bulk).",
        content={
            "text/csv": OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING),
                examples={
                    "example1": Example(
                        summary="Two refuges of an existing operator", value=IMPORT_CSV_EXAMPLE
                    )
                },
            )
        },
    )


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    extra_handlers: list[Any] | None = None,
) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    own_db = db is None
    database = db or Database(
        settings.database_url,
        pool_size=settings.pg_pool_size,
        max_overflow=settings.pg_max_overflow,
    )
    state = State(
        {
            "settings": settings,
            "db": database,
            "clock": clock or SystemClock(),
            "cipher": AddressCipher.configured(settings),
            "episode_key": EpisodeKey.configured(settings),
            "rate_buckets": TokenBuckets(),
            "stream_slots": StreamSlots(),
            "auth_cache": AuthCache(settings.auth_cache_seconds),
            "search_cache": SnapshotCache(
                database, settings, max_age=settings.matcher_cache_seconds
            ),
        }
    )

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        # Scheduled jobs run in one process only, whichever wins leadership (ops/worker.py):
        # with `abri serve --workers N` (or beside `abri worker`) nothing runs twice.
        stop, jobs = asyncio.Event(), None
        if settings.run_jobs and own_db:
            from ops.worker import LeaderLoop

            jobs = asyncio.create_task(
                LeaderLoop(database, settings, state.clock, state.cipher).run(stop)
            )
        await state.search_cache.start()
        await announce_mark(database, state.episode_key, state.clock.now())
        if settings.gc_freeze:
            gc.collect()  # what is garbage now must not be frozen with the rest
            gc.freeze()
        try:
            yield
        finally:
            await state.search_cache.aclose()
            if jobs is not None:
                stop.set()
                await jobs
            if own_db:
                await database.dispose()

    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, *(extra_handlers or [])],
        state=state,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        # a NUL in any JSON text or query parameter: one 422 on both databases
        request_class=AbriRequest,
        before_request=refuse_nul_in_query,
        # no method skips the bearer check (litestar skips OPTIONS by default, and the role
        # guards then found no caller: a 500 for every OPTIONS on an API route)
        middleware=[
            DefineMiddleware(BearerAuthMiddleware, exclude=PUBLIC_PATHS, exclude_http_methods=())
        ],
        openapi_config=OpenAPIConfig(
            title="Abri",
            version="0.1.0",
            description=(
                "Emergency shelter capacity and placement for Belgium. Helplines and police "
                "never receive a facility address."
            ),
            path="/schema",
            render_plugins=[JsonRenderPlugin(), swagger_plugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A token from `abri token create`.",
                    )
                }
            ),
            security=[{"bearer": []}],
        ),
        lifespan=[lifespan],
        logging_config=None,  # configure_logging() above owns logging
        debug=False,
    )
    _add_problem_responses(app)
    _document_idempotent_replays(app)
    _promote_request_examples(app)
    _document_required_headers(app)
    _document_csv_import(app)
    _document_response_headers(app)
    _document_optional_bodies(app)
    _document_webhooks(app)
    # Around litestar's whole handler, not among the route middleware: those run only once a
    # route matched, so a 404 or 405 had no request id, no log line and no Cache-Control.
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
    return app
