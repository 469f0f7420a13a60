"""Bearer-token authentication and role guards.

Route guards check the role; object-level checks (staff of operator A get 404 for B's
facilities) happen in the services through ``operator_scope``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from capacity.audit import Actor
from capacity.registry import authenticate

PUBLIC_PATHS = r"^/(health/|schema|favicon\.ico|static/|metrics$)"


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("Send a bearer token in the Authorization header.")
        state = connection.app.state
        actor = await authenticate(state.db, token.strip(), state.clock.now())
        if actor is None:
            raise NotAuthorizedException("This token is not valid (unknown, expired or revoked).")
        return AuthenticationResult(user=actor, auth=actor.token_id)


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def requires(*roles: str) -> Guard:
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        actor = connection.user
        if not isinstance(actor, Actor) or actor.role not in allowed:
            raise PermissionDeniedException(f"This route is for: {', '.join(sorted(allowed))}.")

    guard.__name__ = f"requires_{'_'.join(sorted(allowed))}"
    return guard


requires_admin = requires("admin")
requires_staff = requires("staff")
requires_staff_or_admin = requires("staff", "admin")
requires_requester = requires("helpline", "police", "admin")
requires_taskforce = requires("taskforce", "admin")
requires_any = requires("admin", "staff", "helpline", "police", "taskforce")


def staff_scope(actor: Actor) -> int | None:
    """Staff see only their operator's objects; admins see all."""
    return None if actor.is_admin else actor.operator_id
