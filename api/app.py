"""The litestar application: wiring only, no business rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)

from api.admin.controllers import AdminController
from api.areas.controllers import AreasController
from api.auth import PUBLIC_PATHS, BearerAuthMiddleware
from api.deps import DEPENDENCIES
from api.errors import EXCEPTION_HANDLERS, PROBLEM_STATUSES
from api.health import live, ready
from api.holds.controllers import HoldController, StaffHoldController
from api.logging import RequestIdMiddleware, configure_logging
from api.placement.controllers import PlacementController
from api.staff.controllers import StaffController
from api.standing.controllers import StandingController
from capacity.clock import Clock, SystemClock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.settings import Settings
from placement.search_service import SnapshotCache

ROUTE_HANDLERS: list[Any] = [
    live,
    ready,
    AreasController,
    StaffController,
    AdminController,
    HoldController,
    StaffHoldController,
    PlacementController,
    StandingController,
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
    clients and schemathesis know the shape of our 4xx/5xx answers."""
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
            for status in (*(PROBLEM_STATUSES if not public else ()), 500, 503):
                responses.setdefault(
                    str(status),
                    OpenAPIResponse(
                        description="Problem details (RFC 9457)",
                        content={"application/problem+json": OpenAPIMediaType(schema=ref)},
                    ),
                )
            op.responses = responses


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
            "cipher": AddressCipher.from_settings(settings.address_key, settings.address_key_file),
            "search_cache": SnapshotCache(
                database, settings, max_age=settings.matcher_cache_seconds
            ),
        }
    )

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        scheduler = None
        if settings.run_jobs and own_db:
            from ops.scheduler import JobContext, build_scheduler

            scheduler = build_scheduler(
                JobContext(db=database, clock=state.clock, settings=settings, cipher=state.cipher)
            )
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if own_db:
                await database.dispose()

    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, *(extra_handlers or [])],
        state=state,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            RequestIdMiddleware,
            DefineMiddleware(BearerAuthMiddleware, exclude=PUBLIC_PATHS),
        ],
        openapi_config=OpenAPIConfig(
            title="Abri",
            version="0.1.0",
            description=(
                "Emergency shelter capacity and placement for Belgium. Helplines and police "
                "never receive a facility address."
            ),
            path="/schema",
            render_plugins=[JsonRenderPlugin(), SwaggerRenderPlugin()],
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
    _promote_request_examples(app)
    return app
