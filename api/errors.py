"""One mapping from errors to RFC 9457 problem details (CONVENTIONS §2.5).

``type`` is a stable URN built from the error's code; ``detail`` is a sentence for people and
never carries an address or a stack trace.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError

from api.body import NUL_IN_TEXT
from api.logging import log
from capacity.db import connection_lost, exception_chain, storage_refused
from capacity.errors import AbriError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str | None = None
    message: str = ""
    row: int | None = None


class Problem(msgspec.Struct, omit_defaults=True, rename="camel"):
    """An RFC 9457 problem. ``code`` is the stable machine-readable reason."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None
    current: dict[str, Any] | None = None
    retry_after: int | None = None


GENERIC = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed for your role"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
}


def _rid(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    field: str | None = None,
    errors: list[FieldError] | None = None,
    current: dict[str, Any] | None = None,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = Problem(
        type=f"urn:abri:problem:{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        field=field,
        errors=errors,
        request_id=_rid(request),
        current=current,
        retry_after=retry_after,
    )
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=hdrs)


def handle_abri_error(request: Request[Any, Any, Any], exc: AbriError) -> Response[Problem]:
    errors = exc.extra.get("errors")
    field_errors = None
    if errors:
        field_errors = [
            FieldError(field=e.field, message=e.message, row=getattr(e, "row", None))
            if not isinstance(e, dict)
            else FieldError(**e)
            for e in errors
        ]
    headers = {}
    if "version" in exc.extra:
        headers["ETag"] = f'"{exc.extra["version"]}"'
    if exc.status >= 500:
        log.error("service_error", code=exc.code)
    current = exc.extra.get("current")
    if current is None and "state" in exc.extra:
        # a hold's (or request's) state when an action on it was refused: a client retrying an
        # action whose answer it lost reads here that its first try went through
        current = {"state": exc.extra["state"]}
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        field=exc.field,
        errors=field_errors,
        current=current,
        retry_after=exc.extra.get("retry_after"),
        headers=headers,
    )


def handle_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Problem]:
    errors: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            errors.append(_field_error(request, item))
    missing = _MISSING_PARAMETER.match(exc.detail or "")
    if not errors and missing:  # litestar names a parameter left out only in its sentence
        kind, name = missing.groups()
        errors.append(FieldError(field=name, message=f"The {name} {kind} is required."))
    first = errors[0] if errors else None
    detail = (
        f"{first.field}: {first.message}"
        if first and first.field
        else (first.message if first else exc.detail or "The request is not valid.")
    )
    if "Content-Type" in (exc.detail or "") or "media type" in (exc.detail or "").lower():
        return problem_response(
            request,
            status=415,
            code="unsupported-media-type",
            title="Unsupported media type",
            detail=exc.detail,
        )
    return problem_response(
        request,
        status=422,
        code="invalid-input",
        title="Invalid input",
        detail=_clean(detail),
        field=first.field if first else None,
        errors=errors or None,
    )


#: msgspec names a field left out or not known in its message, at the path of its object
_FIELD_IN_MESSAGE = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")
#: litestar's sentence for a required header, query or cookie parameter left out
_MISSING_PARAMETER = re.compile(r"^Missing required (\w+) parameter '([^']+)' for path ")
#: the parameter litestar decodes a request body into, and so names for the body's top level
BODY_PARAMETER = "data"


def _field_error(request: Request[Any, Any, Any], item: dict[str, Any]) -> FieldError:
    """One validation error, its ``field`` as the client wrote it. In the body, litestar gives
    the path of the object (``data`` for the top level) and msgspec names the field left out
    or not known only in the message: ``{"unitsTotal": 5}`` is ``unitsOccupied``, not ``data``.
    A request without a body at all is said as such (litestar reports ``'data'``)."""
    key, message = item.get("key"), str(item.get("message", ""))
    if item.get("source") != "body":
        return FieldError(field=_wire_name(request, key), message=message)
    parent = None if key == BODY_PARAMETER else key
    named = _FIELD_IN_MESSAGE.match(message)
    if named:
        field = named.group(1) if parent is None else f"{parent}.{named.group(1)}"
        return FieldError(field=field, message=message)
    if parent is None and message == repr(BODY_PARAMETER):
        return FieldError(field=None, message="A JSON body is required.")
    return FieldError(field=parent, message=message)


def _wire_name(request: Request[Any, Any, Any], key: Any) -> Any:
    """The name the caller wrote for a parameter litestar reports by its Python name (e.g.
    ``fmt`` for ``?format=``, ``start`` for ``?from=``)."""
    try:
        param = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no handler resolved (e.g. a body error before routing)
        return key
    kwarg = getattr(param, "kwarg_definition", None)
    for attr in ("query", "header", "cookie", "name"):
        alias = getattr(kwarg, attr, None)
        if isinstance(alias, str) and alias:
            return alias
    return key


def _clean(text: str) -> str:
    return text.replace("Validation failed for POST", "Invalid request").strip()[:500]


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status in (404, 405) and request.url.path.startswith("/web/"):
        from api.web.controllers import web_no_page  # the web pages import this module

        page = web_no_page(request, status)
        if page is not None:
            return page
    code, title = GENERIC.get(status, (f"http-{status}", "Request failed"))
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="abri"')
        detail = (
            exc.detail
            if exc.detail and exc.detail != "Unauthorized"
            else ("Send a valid bearer token in the Authorization header.")
        )
    elif isinstance(exc, PermissionDeniedException):
        detail = (
            exc.detail
            if exc.detail and exc.detail != "Forbidden"
            else ("Your role may not use this route.")
        )
    elif status >= 500:
        return handle_internal(request, exc)
    else:
        detail = exc.detail or title
    return problem_response(
        request, status=status, code=code, title=title, detail=detail, headers=headers
    )


def _out_of_range(exc: BaseException) -> bool:
    """A number from the request that the database cannot take: larger than SQLite's 64-bit
    INTEGER (``OverflowError``), than a PostgreSQL ``integer`` argument (asyncpg refuses to
    encode it) or than a column (SQLSTATE 22003), e.g. ``GET /staff/pools/99999999999999999999``.
    Anything else stays an internal error."""
    for seen in exception_chain(exc, depth=4):
        text = str(seen)
        if isinstance(seen, OverflowError) and "SQLite INTEGER" in text:
            return True
        if getattr(seen, "sqlstate", None) == "22003":  # numeric_value_out_of_range
            return True
        if type(seen).__name__ == "DataError" and "out of int" in text:  # asyncpg, client side
            return True
    return False


def _nul_in_text(exc: BaseException) -> bool:
    """A text from the request holding a NUL character (``\\u0000``), which PostgreSQL refuses
    to store (SQLSTATE 22021, character_not_in_repertoire): the client's mistake, and the
    transaction was rolled back, nothing saved."""
    return any(getattr(seen, "sqlstate", None) == "22021" for seen in exception_chain(exc, 4))


def _unavailable(
    request: Request[Any, Any, Any], detail: str, *, retry_after: int
) -> Response[Any]:
    """503 ``database-unavailable``: nothing was saved, or (a connection lost) perhaps it was.
    A web page gets a page in its user's language, not this problem."""
    from api.web.controllers import web_unavailable  # the web pages import this module

    page = web_unavailable(request)
    if page is not None:
        return page
    return problem_response(
        request,
        status=503,
        code="database-unavailable",
        title="Try again",
        detail=detail,
        retry_after=retry_after,
    )


def handle_database_value(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Out-of-range numbers are the client's mistake (422), whichever route or column; a
    connection the database dropped under the request is worth a retry (503); any other
    error is ours (500). The hot paths talk to the driver directly, so its own exceptions
    arrive here too (hence also registered for ``Exception``)."""
    if connection_lost(exc):
        log.warning("database_connection_lost", error_type=type(exc).__name__)
        return _unavailable(
            request,
            "The database could not be reached, or the connection to it was lost; what was "
            "asked may not have been saved (the connection can break after the database saved "
            "it). Retry in a moment: with the same Idempotency-Key, a hold already made is "
            "answered, not made twice.",
            retry_after=1,
        )
    refused = storage_refused(exc)
    if refused is not None:
        # the operators' problem, said once per request in their log (an ERROR: alerting
        # should wake someone); the caller learns that nothing was saved and may retry
        log.error("database_storage_refused", reason=refused, error_type=type(exc).__name__)
        return _unavailable(
            request,
            "The database cannot save anything right now (its storage is full or read-only); "
            "nothing was saved. The operators have been alerted in the logs; retry later (with "
            "the same Idempotency-Key for a hold).",
            retry_after=10,
        )
    if _nul_in_text(exc):
        return problem_response(
            request,
            status=422,
            code="invalid-input",
            title="Invalid input",
            detail=NUL_IN_TEXT,
        )
    if not _out_of_range(exc):
        return handle_internal(request, exc)
    if request.url.path.startswith("/web/"):  # a page's id beyond any: no such page
        from api.web.controllers import web_no_page  # the web pages import this module

        page = web_no_page(request, 404)
        if page is not None:
            return page
    return problem_response(
        request,
        status=422,
        code="out-of-range",
        title="Invalid input",
        detail="A number in the request is out of range (identifiers are at most 2147483647).",
    )


def handle_recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    """A JSON body nested deeper than the decoder recurses (``[[[[...`` thousands deep) is the
    client's mistake: a 400, like any other body that is not valid JSON, and no traceback in
    the logs for each one. A recursion of our own stays an internal error."""
    if "deserializ" not in str(exc):
        return handle_internal(request, exc)
    return problem_response(
        request,
        status=400,
        code="bad-request",
        title="Bad request",
        detail="The JSON body is nested too deeply.",
    )


def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Log the type and the trace for operators; the client gets no internals.
    log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
    return problem_response(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal",
        title="Internal error",
        detail="Something went wrong on our side. It has been logged with this request id.",
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AbriError: handle_abri_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    RecursionError: handle_recursion,
    OverflowError: handle_database_value,
    DBAPIError: handle_database_value,
    Exception: handle_database_value,
}

PROBLEM_STATUSES = (400, 401, 403, 404, 409, 412, 415, 422, 428, 429, 503)
