"""Python SDK for Abri: ``AbriClient`` (sync) and ``AsyncAbriClient`` over httpx.

Responses decode into msgspec structs; request bodies reuse the API's own structs
(:class:`placement.household.SearchRequest`, :class:`~placement.household.Household`).
Problem details (RFC 9457) become typed exceptions carrying ``code``, ``detail``, ``field``
and ``request_id``::

    from clients import AbriClient, NoLongerFree
    from placement.household import Adult, Child, Household, SearchRequest

    with AbriClient("https://abri.example.be", token=TOKEN) as abri:
        household = Household(adults=[Adult(gender="female")], children=[Child(age=4)])
        found = abri.search(SearchRequest(household=household, need="ipv"))
        try:
            hold = abri.hold(found.options[0].pool_ref, household, need="ipv")
        except NoLongerFree:
            ...  # taken meanwhile: search again
        print(hold.ref, hold.intake_phone, hold.deadline)

Retries: a request that never reached Abri (connection refused) is retried for every call.
Calls that are safe to repeat — reads, search, and ``hold``/``create_standing_request`` which
carry an ``Idempotency-Key`` — are also retried after a dropped connection, a timeout, ``503``,
the ``502``/``504`` a TLS proxy in front of Abri answers while it restarts, or a ``409`` with
code ``idempotency-in-flight`` (the same key's first attempt still at work), with exponential
backoff and jitter (``Retry-After`` when Abri gives one). ``hold`` generates one key and reuses
it across its own retries, so a retry never makes a second hold.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import msgspec

from placement.household import Household, SearchRequest

__all__ = [
    "AbriClient",
    "AbriError",
    "AsyncAbriClient",
    "Conflict",
    "Exclusion",
    "Forbidden",
    "Hold",
    "Invalid",
    "NoLongerFree",
    "NotFound",
    "Notice",
    "Pool",
    "SearchResult",
    "ServerError",
    "StaffHold",
    "StandingRequest",
    "Unauthenticated",
    "Unavailable",
    "VersionMismatch",
]

T = TypeVar("T")
#: 0.2: reads ``doNotGo`` and a null ``intakePhone`` (0.1 cannot: the proxy's log tells them apart)
USER_AGENT = "abri-python-sdk/0.2"


# --------------------------------------------------------------------------- response types


class _Out(msgspec.Struct, kw_only=True, rename="camel"):
    """Unknown fields are ignored, so a newer server does not break an older SDK."""


class Area(_Out, kw_only=True):
    nis: str
    level: str
    name_fr: str
    name_nl: str
    name_de: str


class Place(_Out, kw_only=True):
    ref: str
    alias: str
    kind: str
    area: Area
    pool_label: str
    unit_kind: str


class Hold(_Out, kw_only=True):
    """A hold as its requester sees it: the code, the deadline, who to call. No address."""

    ref: str
    state: str
    units: int
    need: str
    created_at: datetime
    deadline: datetime
    minutes_left: int
    extensions: int
    place: Place
    #: None when ``do_not_go``: do not call the place or go there
    intake_phone: str | None
    handover_protocol: str | None
    # true: the intake phone answers round the clock; false: office hours only (None: do_not_go)
    intake_phone_24h: bool | None = msgspec.field(default=True, name="intakePhone24h")
    #: True: no one may be sent to (or call) this place about this hold — declined because its
    #: location is compromised, or compromised now (an arrived household: the shelter moves it)
    do_not_go: bool = False
    callback: str | None = None
    close_reason: str | None = None
    #: when the hold left held/arrived (an expiry: its deadline); None while it is open
    closed_at: datetime | None = None
    #: why it ended, as a stable code (``released``, ``released_by_admin``, ``declined``,
    #: ``location_compromised`` — do not go there —, ``expired``, ``no_show``, ``departed``;
    #: an unknown one: read ``state``); None while it is open. Never the staff's words.
    close_code: str | None = None
    #: while held: the place has since stopped admitting (``closed_to_admissions``,
    #: ``suspended``). The hold stays valid and can be extended: call before going. Else None.
    place_warning: str | None = None


class StaffHold(_Out, kw_only=True):
    ref: str
    state: str
    units: int
    need: str
    household: dict[str, Any] | None
    requester_operator: str
    requester_kind: str
    created_at: datetime
    deadline: datetime
    minutes_left: int
    facility_id: int
    facility_alias: str
    pool_id: int
    pool_label: str
    callback: str | None = None
    close_reason: str | None = None
    closed_at: datetime | None = None
    #: why it ended, as ``Hold.close_code``; None while it is open
    close_code: str | None = None


class Notice(_Out, kw_only=True):
    """Something to know: about the search itself (``SearchResult.notices``, e.g.
    ``preferred_area_avoided``)."""

    code: str
    message: str


class Option(_Out, kw_only=True):
    facility_ref: str
    pool_ref: str
    alias: str
    kind: str
    area_nis: str
    area_level: str
    area_name: str
    units_needed: int
    free_units: int
    cost: str
    data_age_seconds: int | None
    stale: bool
    reasons: list[str]
    warnings: list[Any]
    score: float
    # the weighted parts that add up to ``score`` (placement/matcher.py documents the weights)
    score_parts: dict[str, float] = msgspec.field(default_factory=dict)
    intake_phone: str
    handover_protocol: str
    intake_phone_24h: bool = msgspec.field(default=True, name="intakePhone24h")
    distance_km: float | None = None
    specialised: bool = False
    specialisations: list[str] = msgspec.field(default_factory=list)


class Alternative(_Out, kw_only=True):
    code: str
    message: str
    extra_options: int


class Exclusion(_Out, kw_only=True):
    """Why places were left out: a code, how many, and the sentence to show (R15)."""

    code: str
    count: int
    text: str


class SearchResult(_Out, kw_only=True):
    search_id: str
    options: list[Option]
    excluded: dict[str, int]
    alternatives: list[Alternative]
    exclusions: list[Exclusion] = msgspec.field(default_factory=list)
    considered: int
    matched: int
    unmet_recorded: bool = False
    # about the search itself: ``preferred_area_avoided`` when the preferred area lies in an
    # area to avoid (places are then ranked by their distance from it: check the form)
    notices: list[Notice] = msgspec.field(default_factory=list)


class StandingRequest(_Out, kw_only=True):
    ref: str
    state: str
    need: str
    created_at: datetime
    deadline: datetime
    minutes_left: int
    notified_at: datetime | None = None
    callback: str | None = None
    #: the place held for you, while ``offered``
    hold: Hold | None = None
    #: back in line (``waiting``, in its original position) because the place declined the
    #: hold it was offered or marked it no-show: that hold (``close_code`` says why)
    previous_hold: Hold | None = None


class Pool(_Out, kw_only=True):
    """A pool as staff see it; ``version`` is what ``update_availability`` needs as If-Match."""

    id: int
    ref: str
    label: str
    unit_kind: str
    places_per_unit: int
    units_total: int
    units_occupied: int
    units_held: int
    units_blocked: int
    units_free: int
    version: int
    last_update: datetime | None
    data_age_seconds: int | None
    stale: bool


# --------------------------------------------------------------------------- errors


class AbriError(Exception):
    """A problem answered by Abri (RFC 9457), or no answer at all (``status`` 0)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str = "",
        field: str | None = None,
        request_id: str | None = None,
        current: dict[str, Any] | None = None,
        retry_after: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.field = field
        self.request_id = request_id
        self.current = current
        self.retry_after = retry_after
        self.errors = errors or []


class Invalid(AbriError):
    """400/422/428...: the request is not valid; ``field`` names the culprit."""


class Unauthenticated(AbriError):
    """401: the token is missing, unknown, expired or revoked."""


class Forbidden(AbriError):
    """403: your role may not do this."""


class NotFound(AbriError):
    """404: no such object, or not yours (Abri does not say which)."""


class Conflict(AbriError):
    """409: the object's state does not allow this."""


class NoLongerFree(Conflict):
    """409 ``no-longer-free``: someone else took the place; search again."""


class VersionMismatch(AbriError):
    """412: someone updated the pool since you read it; ``current`` holds the figures and
    ``version`` the version to send next time (after checking them)."""

    @property
    def version(self) -> int | None:
        v = (self.current or {}).get("version")
        return int(v) if v is not None else None


#: Abri, or the TLS proxy in front of it, did not get an answer from the service (a restart):
#: worth a retry, with the same Idempotency-Key for a hold.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class Unavailable(AbriError):
    """429, or 502/503/504 after the SDK's own retries (502/504: the proxy in front of Abri,
    e.g. while it restarts), or no connection at all (``status`` 0)."""


class ServerError(AbriError):
    """5xx: Abri failed; quote ``request_id`` when reporting it."""


def _error_for(resp: httpx.Response) -> AbriError:
    try:
        body = resp.json()
        if not isinstance(body, dict):
            body = {}
    except ValueError:
        body = {}
    status = resp.status_code
    code = str(body.get("code") or f"http-{status}")
    if status == 409:
        cls: type[AbriError] = NoLongerFree if code == "no-longer-free" else Conflict
    else:
        cls = {
            401: Unauthenticated,
            403: Forbidden,
            404: NotFound,
            412: VersionMismatch,
            429: Unavailable,
            **dict.fromkeys(UNAVAILABLE_STATUSES, Unavailable),
        }.get(status, ServerError if status >= 500 else Invalid)
    retry_after = body.get("retryAfter")
    if retry_after is None and resp.headers.get("retry-after", "").isdigit():
        retry_after = int(resp.headers["retry-after"])
    return cls(
        status,
        code,
        str(body.get("detail") or resp.reason_phrase or "request failed"),
        title=str(body.get("title") or ""),
        field=body.get("field"),
        request_id=body.get("requestId") or resp.headers.get("x-request-id"),
        current=body.get("current"),
        retry_after=retry_after,
        errors=body.get("errors"),
    )


# --------------------------------------------------------------------------- calls


@dataclass
class _Call:
    method: str
    path: str
    type: Any
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    safe: bool = False  # may be repeated after a dropped connection, a timeout, 502/503/504


def _body(obj: Any) -> Any:
    return msgspec.to_builtins(obj) if isinstance(obj, msgspec.Struct) else obj


def _new_key() -> str:
    return f"sdk-{uuid.uuid4()}"


def _search(request: SearchRequest | dict[str, Any]) -> _Call:
    return _Call("POST", "/placements/search", SearchResult, json=_body(request), safe=True)


def _hold(
    pool_ref: str,
    household: Household | dict[str, Any],
    need: str,
    minutes: int | None,
    callback: str | None,
    key: str | None,
    episode_token: str | None = None,
) -> _Call:
    body: dict[str, Any] = {"poolRef": pool_ref, "household": _body(household), "need": need}
    if minutes is not None:
        body["minutes"] = minutes
    if callback is not None:
        body["callback"] = callback
    if episode_token is not None:  # as on the household's searches: counted once (R33)
        body["episodeToken"] = episode_token
    # One key for this hold, reused by every retry of this call: never two holds.
    return _Call(
        "POST", "/holds", Hold, json=body, headers={"Idempotency-Key": key or _new_key()}, safe=True
    )


def _states(states: Iterable[str] | None) -> dict[str, Any] | None:
    return {"state": list(states)} if states else None


def _page(
    states: Iterable[str] | None,
    limit: int | None,
    before: str | None,
    facility_id: int | None = None,
) -> dict[str, Any] | None:
    """A hold list's query: ``limit`` holds (the server's default 200 when None), newest
    first, older than the hold ``before`` (the ``ref`` of the last hold of the page before)."""
    params = _states(states) or {}
    for name, value in (("limit", limit), ("before", before), ("facilityId", facility_id)):
        if value is not None:
            params[name] = value
    return params or None


def _standing(
    search: SearchRequest | dict[str, Any],
    minutes: int | None,
    callback: str | None,
    key: str | None,
) -> _Call:
    body: dict[str, Any] = {"search": _body(search)}
    if minutes is not None:
        body["minutes"] = minutes
    if callback is not None:
        body["callback"] = callback
    return _Call(
        "POST",
        "/standing-requests",
        StandingRequest,
        json=body,
        headers={"Idempotency-Key": key or _new_key()},
        safe=True,
    )


def _list_standing(states: Iterable[str] | None) -> _Call:
    """The operator's standing requests (``waiting``, ``offered``, ``expired``, ``cancelled``)."""
    return _Call(
        "GET", "/standing-requests", list[StandingRequest], params=_states(states), safe=True
    )


def _availability(
    pool_id: int,
    if_match: int,
    units_total: int,
    units_occupied: int,
    units_blocked: int | None,
) -> _Call:
    body: dict[str, Any] = {"unitsTotal": units_total, "unitsOccupied": units_occupied}
    if units_blocked is not None:
        body["unitsBlocked"] = units_blocked
    return _Call(
        "PUT",
        f"/staff/pools/{pool_id}/availability",
        Pool,
        json=body,
        headers={"If-Match": f'"{if_match}"'},
    )


class _Base:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._rng = random.Random()

    def _delay(self, attempt: int, retry_after: int | None) -> float:
        if retry_after is not None:
            return float(min(retry_after, self.max_backoff))
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * self._rng.uniform(0.5, 1.5)

    def _retryable(self, call: _Call, exc: Exception | None, resp: httpx.Response | None) -> bool:
        if exc is not None:
            # Not sent at all: always safe. Sent, maybe processed: only for safe calls.
            return isinstance(exc, httpx.ConnectError) or (
                call.safe and isinstance(exc, httpx.TransportError)
            )
        if not call.safe or resp is None:
            return False
        if resp.status_code == 409:  # the same key's first attempt is still being processed
            return _error_for(resp).code == "idempotency-in-flight"
        return resp.status_code in UNAVAILABLE_STATUSES

    @staticmethod
    def _decode(call: _Call, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise _error_for(resp)
        return msgspec.json.decode(resp.content, type=call.type)

    @staticmethod
    def _no_answer(exc: Exception) -> Unavailable:
        return Unavailable(0, "no-connection", f"Abri did not answer ({type(exc).__name__}).")


class AbriClient(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`."""

    def __init__(self, base_url: str, token: str, **kw: Any) -> None:
        super().__init__(base_url, token, **kw)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout
        )

    def __enter__(self) -> AbriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: _Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            resp: httpx.Response | None = None
            try:
                resp = self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
            except httpx.TransportError as exc:
                if attempt > self.retries or not self._retryable(call, exc, None):
                    raise self._no_answer(exc) from exc
                time.sleep(self._delay(attempt, None))
                continue
            if attempt <= self.retries and self._retryable(call, None, resp):
                time.sleep(self._delay(attempt, _error_for(resp).retry_after))
                continue
            return self._decode(call, resp)

    # requesters (helpline, police) ----------------------------------------------------------
    def search(self, request: SearchRequest | dict[str, Any]) -> SearchResult:
        return self._do(_search(request))

    def hold(
        self,
        pool_ref: str,
        household: Household | dict[str, Any],
        need: str,
        *,
        minutes: int | None = None,
        callback: str | None = None,
        idempotency_key: str | None = None,
        episode_token: str | None = None,
    ) -> Hold:
        return self._do(
            _hold(pool_ref, household, need, minutes, callback, idempotency_key, episode_token)
        )

    def get_hold(self, ref: str) -> Hold:
        return self._do(_Call("GET", f"/holds/{ref}", Hold, safe=True))

    def list_holds(
        self,
        states: Iterable[str] | None = None,
        *,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[Hold]:
        """Newest first, at most ``limit`` (200 unless told): a full page may have more behind
        it, asked with ``before=`` the last hold's ``ref``."""
        params = _page(states, limit, before)
        return self._do(_Call("GET", "/holds", list[Hold], params=params, safe=True))

    def release(self, ref: str) -> Hold:
        return self._do(_Call("POST", f"/holds/{ref}/release", Hold))

    def extend(self, ref: str, minutes: int | None = None) -> Hold:
        body = {"minutes": minutes} if minutes is not None else {}
        return self._do(_Call("POST", f"/holds/{ref}/extend", Hold, json=body))

    def create_standing_request(
        self,
        search: SearchRequest | dict[str, Any],
        *,
        minutes: int | None = None,
        callback: str | None = None,
        idempotency_key: str | None = None,
    ) -> StandingRequest:
        return self._do(_standing(search, minutes, callback, idempotency_key))

    def get_standing_request(self, ref: str) -> StandingRequest:
        return self._do(_Call("GET", f"/standing-requests/{ref}", StandingRequest, safe=True))

    def list_standing_requests(self, states: Iterable[str] | None = None) -> list[StandingRequest]:
        return self._do(_list_standing(states))

    def cancel_standing_request(self, ref: str) -> StandingRequest:
        return self._do(_Call("POST", f"/standing-requests/{ref}/cancel", StandingRequest))

    # staff --------------------------------------------------------------------------------
    def get_pool(self, pool_id: int) -> Pool:
        return self._do(_Call("GET", f"/staff/pools/{pool_id}", Pool, safe=True))

    def update_availability(
        self,
        pool_id: int,
        *,
        if_match: int,
        units_total: int,
        units_occupied: int,
        units_blocked: int | None = None,
    ) -> Pool:
        return self._do(
            _availability(pool_id, if_match, units_total, units_occupied, units_blocked)
        )

    def list_incoming_holds(
        self,
        states: Iterable[str] | None = ("held",),
        facility_id: int | None = None,
        *,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[StaffHold]:
        """Newest first, at most ``limit`` (200 unless told): a full page may have more behind
        it, asked with ``before=`` the last hold's ``ref``."""
        params = _page(states, limit, before, facility_id)
        return self._do(_Call("GET", "/staff/holds", list[StaffHold], params=params, safe=True))

    def mark_arrived(self, ref: str) -> StaffHold:
        return self._do(_Call("POST", f"/staff/holds/{ref}/arrived", StaffHold))

    def mark_departed(self, ref: str) -> StaffHold:
        """A household placed through Abri has left: its units are free again (once)."""
        return self._do(_Call("POST", f"/staff/holds/{ref}/departed", StaffHold))

    def mark_no_show(self, ref: str) -> StaffHold:
        return self._do(_Call("POST", f"/staff/holds/{ref}/no-show", StaffHold))

    def decline(self, ref: str, reason: str) -> StaffHold:
        return self._do(
            _Call("POST", f"/staff/holds/{ref}/decline", StaffHold, json={"reason": reason})
        )


class AsyncAbriClient(_Base):
    """Asynchronous client: the same methods as :class:`AbriClient`, awaited."""

    def __init__(self, base_url: str, token: str, **kw: Any) -> None:
        super().__init__(base_url, token, **kw)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=self._timeout
        )

    async def __aenter__(self) -> AsyncAbriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _do(self, call: _Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=call.headers
                )
            except httpx.TransportError as exc:
                if attempt > self.retries or not self._retryable(call, exc, None):
                    raise self._no_answer(exc) from exc
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if attempt <= self.retries and self._retryable(call, None, resp):
                await asyncio.sleep(self._delay(attempt, _error_for(resp).retry_after))
                continue
            return self._decode(call, resp)

    async def search(self, request: SearchRequest | dict[str, Any]) -> SearchResult:
        return await self._do(_search(request))

    async def hold(
        self,
        pool_ref: str,
        household: Household | dict[str, Any],
        need: str,
        *,
        minutes: int | None = None,
        callback: str | None = None,
        idempotency_key: str | None = None,
        episode_token: str | None = None,
    ) -> Hold:
        return await self._do(
            _hold(pool_ref, household, need, minutes, callback, idempotency_key, episode_token)
        )

    async def get_hold(self, ref: str) -> Hold:
        return await self._do(_Call("GET", f"/holds/{ref}", Hold, safe=True))

    async def list_holds(
        self,
        states: Iterable[str] | None = None,
        *,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[Hold]:
        params = _page(states, limit, before)
        return await self._do(_Call("GET", "/holds", list[Hold], params=params, safe=True))

    async def release(self, ref: str) -> Hold:
        return await self._do(_Call("POST", f"/holds/{ref}/release", Hold))

    async def extend(self, ref: str, minutes: int | None = None) -> Hold:
        body = {"minutes": minutes} if minutes is not None else {}
        return await self._do(_Call("POST", f"/holds/{ref}/extend", Hold, json=body))

    async def create_standing_request(
        self,
        search: SearchRequest | dict[str, Any],
        *,
        minutes: int | None = None,
        callback: str | None = None,
        idempotency_key: str | None = None,
    ) -> StandingRequest:
        return await self._do(_standing(search, minutes, callback, idempotency_key))

    async def get_standing_request(self, ref: str) -> StandingRequest:
        return await self._do(_Call("GET", f"/standing-requests/{ref}", StandingRequest, safe=True))

    async def list_standing_requests(
        self, states: Iterable[str] | None = None
    ) -> list[StandingRequest]:
        return await self._do(_list_standing(states))

    async def cancel_standing_request(self, ref: str) -> StandingRequest:
        return await self._do(_Call("POST", f"/standing-requests/{ref}/cancel", StandingRequest))

    async def get_pool(self, pool_id: int) -> Pool:
        return await self._do(_Call("GET", f"/staff/pools/{pool_id}", Pool, safe=True))

    async def update_availability(
        self,
        pool_id: int,
        *,
        if_match: int,
        units_total: int,
        units_occupied: int,
        units_blocked: int | None = None,
    ) -> Pool:
        return await self._do(
            _availability(pool_id, if_match, units_total, units_occupied, units_blocked)
        )

    async def list_incoming_holds(
        self,
        states: Iterable[str] | None = ("held",),
        facility_id: int | None = None,
        *,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[StaffHold]:
        params = _page(states, limit, before, facility_id)
        return await self._do(
            _Call("GET", "/staff/holds", list[StaffHold], params=params, safe=True)
        )

    async def mark_arrived(self, ref: str) -> StaffHold:
        return await self._do(_Call("POST", f"/staff/holds/{ref}/arrived", StaffHold))

    async def mark_departed(self, ref: str) -> StaffHold:
        return await self._do(_Call("POST", f"/staff/holds/{ref}/departed", StaffHold))

    async def mark_no_show(self, ref: str) -> StaffHold:
        return await self._do(_Call("POST", f"/staff/holds/{ref}/no-show", StaffHold))

    async def decline(self, ref: str, reason: str) -> StaffHold:
        return await self._do(
            _Call("POST", f"/staff/holds/{ref}/decline", StaffHold, json={"reason": reason})
        )
