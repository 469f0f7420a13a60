"""One error hierarchy for the whole service (CONVENTIONS §2.5).

Each error has a stable ``code`` that never changes and maps to one HTTP status in
``api/errors.py``. Messages are for people; they never contain an address.
"""

from __future__ import annotations

from typing import Any


class AbriError(Exception):
    code = "error"
    status = 400
    title = "Request failed"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(AbriError):
    code = "not-found"
    status = 404
    title = "Not found"


class InvalidInput(AbriError):
    code = "invalid-input"
    status = 422
    title = "Invalid input"


class UnknownArea(InvalidInput):
    code = "unknown-area"
    title = "Unknown area code"


class Conflict(AbriError):
    code = "conflict"
    status = 409
    title = "Conflict"


class AlreadyExists(Conflict):
    code = "already-exists"
    title = "Already exists"


class UnsupportedMediaType(AbriError):
    code = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


class VersionMismatch(AbriError):
    code = "version-mismatch"
    status = 412
    title = "Someone else updated this first"


class PreconditionRequired(AbriError):
    code = "precondition-required"
    status = 428
    title = "If-Match header required"


class Busy(AbriError):
    code = "busy"
    status = 503
    title = "Busy, try again"


class RateLimited(AbriError):
    code = "rate-limited"
    status = 429
    title = "Too many requests"


class ImportRejected(InvalidInput):
    code = "import-rejected"
    title = "Import rejected; nothing was imported"
