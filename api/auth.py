"""Bearer-token authentication and role guards.

Route guards check the role; object-level checks (staff of operator A get 404 for B's
facilities) happen in the services through ``operator_scope``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Message, Receive, Scope, Send

from api.errors import handle_http
from capacity.audit import Actor
from capacity.db import Database
from capacity.registry import authenticate, hash_token

# /web pages authenticate with their own cookie session (api/web/session.py), not a bearer.
PUBLIC_PATHS = r"^/(health/|schema|favicon\.ico|static/|metrics$|web(/|$))"


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A refused token is answered here, through the layers above (request id, no-store,
        the request's log line and metrics), not by litestar's outermost handler: that one
        sent it past them, so every 401 was logged and counted as a 500, without its id."""
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, tracking)
        except NotAuthorizedException as exc:
            if started or scope["type"] != "http":
                raise
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = handle_http(request, exc)
            await response.to_asgi_response(scope.get("app"), request)(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("Send a bearer token in the Authorization header.")
        state = connection.app.state
        actor = await state.auth_cache.authenticate(state.db, token.strip(), state.clock.now())
        if actor is None:
            raise NotAuthorizedException("This token is not valid (unknown, expired or revoked).")
        return AuthenticationResult(user=actor, auth=actor.token_id)


class AuthCache:
    """Remembers valid tokens for a few seconds, so a request does not need a database
    transaction just to authenticate (it cost more than the search itself). Revoking a token
    through the API clears the cache of that process at once; a revocation from the CLI or
    another process takes effect within ``seconds``. Unknown tokens are never cached.

    Requests that miss at the same moment (every client of a busy token when its entry
    expires) share one database read instead of one each; a request arriving after
    ``clear()`` never shares a read that started before it, and such a read is not cached."""

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: dict[str, tuple[Actor, float]] = {}
        self._reading: dict[str, asyncio.Task[Actor | None]] = {}
        self._generation = 0  # bumped by clear(): reads started before must not be cached

    async def authenticate(self, db: Database, clear: str, now: datetime) -> Actor | None:
        if self.seconds <= 0:
            return await authenticate(db, clear, now)
        key = hash_token(clear)
        hit = self._entries.get(key)
        t = self._clock()
        if hit is not None and hit[1] > t:
            return hit[0]
        reading = self._reading.get(key)
        if reading is None:
            # Its own task: a caller that goes away does not cancel the read for the others.
            reading = asyncio.ensure_future(self._read(db, clear, now, key, t, self._generation))
            self._reading[key] = reading
        return await asyncio.shield(reading)

    async def _read(
        self, db: Database, clear: str, now: datetime, key: str, t: float, generation: int
    ) -> Actor | None:
        try:
            actor = await authenticate(db, clear, now)
        finally:
            if self._reading.get(key) is asyncio.current_task():
                del self._reading[key]
        if generation != self._generation:
            return actor  # cleared meanwhile: answer this request, remember nothing
        if actor is not None:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (actor, t + self.seconds)
        else:
            self._entries.pop(key, None)
        return actor

    def clear(self) -> None:
        self._entries.clear()
        self._reading.clear()
        self._generation += 1


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def requires(*roles: str) -> Guard:
    # ``async def`` although nothing is awaited: litestar runs a plain function guard in a
    # worker thread (two thread hops per request, more than a whole search's CPU budget).
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        actor = connection.scope.get("user")  # absent if the bearer check was skipped
        if not isinstance(actor, Actor):
            raise NotAuthorizedException("Send a bearer token in the Authorization header.")
        if actor.role not in allowed:
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
