"""Placement errors (409 family, with the current free count where it helps)."""

from __future__ import annotations

from capacity.errors import AbriError, Conflict, InvalidInput


class NoLongerFree(Conflict):
    code = "no-longer-free"
    title = "This place is no longer free"


class NotAdmitting(Conflict):
    code = "not-admitting"
    title = "This place is not admitting"


class IllegalTransition(Conflict):
    code = "illegal-transition"
    title = "Not possible in the hold's current state"


class HoldExpired(IllegalTransition):
    code = "hold-expired"
    title = "The hold has expired"


class IdempotencyInFlight(Conflict):
    code = "idempotency-in-flight"
    title = "The same request is still being processed"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"


class NotEligible(InvalidInput):
    code = "not-eligible"
    title = "This place's access rules exclude this household"


class ExtensionRefused(Conflict):
    code = "extension-refused"
    title = "The hold cannot be extended"


class BadReference(AbriError):
    code = "bad-reference"
    status = 422
    title = "Not a valid reference code"
