"""Route-handler decorators: litestar's, minus one per-request cost.

Litestar calls each guard with a shallow ``copy()`` of the route handler, so that a guard
cannot change the handler for later requests. That copy took ~0.05 ms of CPU per guard per
request (a search and a hold have two guards each: the role and the rate limit), a tenth of
what the whole search route may cost. Our guards (``api.auth.requires``,
``api.ratelimit.rate_limit``) only read the connection and never touch the handler, so these
handlers pass the handler itself. Controllers use these instead of ``litestar.get`` etc.;
they take the same arguments (and the same default status codes: 201 for POST, 204 for
DELETE, 200 otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


class RouteHandler(HTTPRouteHandler):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Run every guard in scope, as litestar does, on the handler itself (no copy)."""
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]


def get(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.GET, **kwargs)


def post(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.POST, **kwargs)


def put(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.PUT, **kwargs)


def patch(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.PATCH, **kwargs)


def delete(path: str | Sequence[str] | None = None, **kwargs: Any) -> RouteHandler:
    return RouteHandler(path, http_method=HttpMethod.DELETE, **kwargs)


__all__ = ["RouteHandler", "delete", "get", "patch", "post", "put"]
