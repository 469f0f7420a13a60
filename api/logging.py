"""Structured logs with a request id. JSON with ``ABRI_LOG_FORMAT=json``, readable otherwise.

Never log a household's details or an address: handlers log ids and outcomes only, and a last
processor redacts any key that looks like one, as a safety net.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.docs import DOCS_CSP
from capacity.metrics import REQUEST_SECONDS

REDACT_KEYS = frozenset(
    {
        "address",
        "street",
        "postal_code",
        "postalcode",
        "city",
        "household",
        "adults",
        "children",
        "callback",
        "callback_contact",
        "token",
        "authorization",
        "password",
        "secret",
        "cookie",
    }
)
#: Paths whose answers hold nothing private (the pages' scripts and styles, the API schema).
CACHEABLE_PREFIXES = ("/static/", "/schema")
DOCS_HEADERS = [
    (b"content-security-policy", DOCS_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_REQ_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in REDACT_KEYS:
            event[key] = "[redacted]"
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap and close it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """structlog for our own lines; the standard library's loggers (SQLAlchemy, uvicorn,
    APScheduler) rendered the same way. httpx logs full URLs, which for feeds may carry
    credentials, so it only logs warnings."""
    # JSON: an exception becomes an `exception` string with its (plain) traceback, for our
    # own lines and the standard library's alike; the console renderer formats it itself.
    exc_info: Any = structlog.processors.format_exc_info if fmt == "json" else (lambda _l, _n, e: e)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # plain traces: rich tracebacks would print local variables (household data)
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact,
                exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping().get(level, logging.INFO))
    # APScheduler announces every run (our own ``job_run`` lines say what matters); aiosqlite
    # logs every statement WITH its bound values at DEBUG (households, callbacks): never.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


log = structlog.get_logger("abri")


@functools.lru_cache(maxsize=4096)  # bounded like the labels: methods x route templates x codes
def _histogram(method: str, route: str, status: int) -> Any:
    """The latency histogram's child for these labels (prometheus' own look-up checks and
    locks on every call)."""
    return REQUEST_SECONDS.labels(method, route, status)


class RequestIdMiddleware:
    """Give every request an id (or accept a well-formed ``X-Request-ID``), bind it to the log
    context, echo it in the response, and log one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if _REQ_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        start = time.perf_counter()
        status = {"code": 500}
        # Answers carry addresses, households, tokens and link URLs: no browser may keep them
        # (the web pages say so themselves). Static files and the API description may be kept.
        path = scope.get("path", "")
        cacheable = path.startswith(CACHEABLE_PREFIXES)
        docs = path.startswith("/schema")  # the Swagger UI page: nothing from elsewhere

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode()))
                if cacheable is False and not any(
                    k.lower() == b"cache-control" for k, _ in headers
                ):
                    headers.append((b"cache-control", b"no-store"))
                if docs:
                    headers.extend(DOCS_HEADERS)
                elif not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    # every answer, not only the pages: a browser never guesses a type (a
                    # CSV or JSON answer read as a script or a page)
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            # no template: no route matched (404, 405); the raw path is the caller's to choose
            route = scope.get("path_template") or "unmatched"
            # Metrics label by route template only (raw paths would make unbounded labels).
            _histogram(
                scope.get("method", ""), scope.get("path_template") or "unmatched", status["code"]
            ).observe(time.perf_counter() - start)
            log.info(
                "request",
                method=scope.get("method"),
                route=route,
                status=status["code"],
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
