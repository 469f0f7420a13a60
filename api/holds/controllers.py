"""Holds: requesters (helpline, police) reserve and release; staff see incoming holds live and
mark them arrived, no-show, declined or departed."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, Parameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import select

from api.auth import requires_requester, requires_staff_or_admin, staff_scope
from api.holds.schemas import (
    HOLD_EXAMPLE,
    HoldCreate,
    HoldDecline,
    HoldExtend,
    HoldRead,
    StaffHoldRead,
    hold_read,
    staff_hold_read,
)
from api.ratelimit import open_stream, rate_limit
from api.routing import get, post
from capacity import registry
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.db import Database, connection_lost
from capacity.errors import AbriError, InvalidInput
from capacity.metrics import HOLD_ATTEMPTS
from capacity.models import Event, Facility
from capacity.settings import Settings
from placement import holds_service, standing_service
from placement.errors import NoLongerFree, NotAdmitting, NotEligible

IdemKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="A key you choose per hold request (e.g. a UUID). Retrying with the same "
        "key returns the same hold instead of a second one.",
    ),
]
#: A hold list's page: at most this many holds, newest first ...
PageLimit = Annotated[int, Parameter(ge=1, le=1000)]
#: ... older than this one (the ref of the last hold of the previous page)
PageBefore = Annotated[
    str | None,
    Parameter(
        max_length=40, description="The ref of the last hold of the previous page: older ones."
    ),
]
_OUTCOME = {
    NoLongerFree: "no_longer_free",
    NotAdmitting: "not_admitting",
    NotEligible: "not_eligible",
}
StateFilter = Literal["held", "arrived", "released", "declined", "expired", "no_show", "departed"]


def _hot(request: Request[Actor, Any, State]) -> tuple[Database, Actor, Clock]:
    state = request.app.state
    return state.db, request.user, state.clock


class HoldController(Controller):
    path = "/holds"
    tags = ["holds"]
    guards = [requires_requester]

    @post(
        "/",
        summary="Reserve a place for a household (idempotent)",
        status_code=201,
        guards=[rate_limit("hold")],
    )
    async def create(
        self,
        request: Request[Actor, Any, State],
        data: Annotated[
            HoldCreate,
            Body(
                examples=[
                    Example(summary="A mother and two children, held 90 min", value=HOLD_EXAMPLE)
                ]
            ),
        ],
        idempotency_key: IdemKey,
    ) -> Response[HoldRead]:
        # The hot routes read the app state themselves: litestar resolves several injected
        # dependencies in a task group per request, which cost more than a hold's SQL.
        db, actor, clock = _hot(request)
        now = clock.now()
        try:
            result = await holds_service.reserve(
                db,
                pool_ref=data.pool_ref,
                household=data.household,
                need=data.need,
                minutes=data.minutes,
                callback=data.callback,
                idempotency_key=idempotency_key,
                actor=actor,
                now=now,
                episode_token=data.episode_token,
                episode_key=request.app.state.episode_key,
            )
        except (NoLongerFree, NotAdmitting, NotEligible) as exc:
            HOLD_ATTEMPTS.labels(_OUTCOME[type(exc)]).inc()
            raise
        outcome = "already_held" if result.already_held else "replayed"
        HOLD_ATTEMPTS.labels("granted" if result.created else outcome).inc()
        return Response(
            hold_read(result.view, now),
            status_code=201 if result.created else 200,
            headers={"Location": f"/holds/{result.view.ref}"},
        )

    @get(
        "/",
        summary="My operator's holds (newest first)",
        description=(
            "At most `limit` holds (200 unless told, up to 1000), the newest first. A full page "
            "may have more behind it: ask again with `before` set to the `ref` of the last "
            "hold of the page. `state` filters by the state each hold is shown in (a hold "
            "past its deadline is `expired`)."
        ),
    )
    async def list(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        states: Annotated[
            list[StateFilter] | None, QueryParameter(name="state", required=False)
        ] = None,
        limit: PageLimit = 200,
        before: PageBefore = None,
    ) -> list[HoldRead]:
        now = clock.now()
        before_id = await _page_start(db, actor, before, side="requester")
        return [
            hold_read(v, now)
            for v in await holds_service.list_holds(
                db,
                actor=actor,
                side="requester",
                states=states,
                limit=limit,
                before_id=before_id,
                now=now,
            )
        ]

    @get("/{ref:str}", summary="One of my operator's holds")
    async def get(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> HoldRead:
        return hold_read(
            await holds_service.get(db, ref, actor=actor, side="requester"), clock.now()
        )

    @post("/{ref:str}/release", status_code=200, summary="Give the place back")
    async def release(self, request: Request[Actor, Any, State], ref: FromPath[str]) -> HoldRead:
        db, actor, clock = _hot(request)
        settings: Settings = request.app.state.settings
        now = clock.now()
        done = await holds_service.transition_ex(db, ref, "released", actor=actor, now=now)
        if done.someone_waiting:  # the freed place goes to the oldest standing request
            await standing_service.run_round(db, settings, now=now)
        return hold_read(done.view, now)

    @post(
        "/{ref:str}/extend",
        status_code=200,
        summary="Extend the deadline (at most twice, within the maximum)",
    )
    async def extend(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        data: Annotated[
            HoldExtend | None,
            Body(examples=[Example(summary="One more hour", value={"minutes": 60})]),
        ] = None,
    ) -> HoldRead:
        now = clock.now()
        return hold_read(
            await holds_service.extend(
                db, ref, minutes=data.minutes if data else None, actor=actor, now=now
            ),
            now,
        )


class StaffHoldController(Controller):
    path = "/staff/holds"
    tags = ["staff"]
    guards = [requires_staff_or_admin]

    @get(
        "/",
        summary="Holds on my facilities (newest first)",
        description=(
            "At most `limit` holds (200 unless told, up to 1000), the newest first. A full page "
            "may have more behind it: ask again with `before` set to the `ref` of the last "
            "hold of the page."
        ),
    )
    async def list(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        states: Annotated[
            list[StateFilter] | None, QueryParameter(name="state", required=False)
        ] = None,
        facility_id: Annotated[int | None, QueryParameter(name="facilityId", ge=1)] = None,
        limit: PageLimit = 200,
        before: PageBefore = None,
    ) -> list[StaffHoldRead]:
        now = clock.now()
        # holds past their deadline are expired first (as every staff read does), so that
        # ?state=held and ?state=expired filter by the state each hold is shown in
        await standing_service.expire_and_offer(
            db, settings, now, operator_id=staff_scope(actor), facility_id=facility_id
        )
        before_id = await _page_start(db, actor, before, side="staff")
        return [
            staff_hold_read(v, now)
            for v in await holds_service.list_holds(
                db,
                actor=actor,
                side="staff",
                states=states,
                facility_id=facility_id,
                limit=limit,
                before_id=before_id,
                now=now,
            )
        ]

    @get("/stream", summary="Live stream (server-sent events) of holds on my facilities")
    async def stream(
        self,
        request: Request,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],  # type: ignore[type-arg]
        seconds: Annotated[
            int,
            Parameter(
                ge=1, le=3600, description="Close after this long; reconnect with Last-Event-ID"
            ),
        ] = 900,
        last_event_id: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", required=False)
        ] = None,
    ) -> ServerSentEvent:
        start = resume_from(last_event_id)
        token_id = actor.token_id

        async def alive() -> bool:
            return token_id is None or await registry.token_active(db, token_id, clock.now())

        events = hold_event_stream(db, actor, clock, start, seconds, alive=alive)
        return ServerSentEvent(open_stream(request.app.state, ("token", token_id), events))

    @get("/{ref:str}", summary="One hold on my facilities")
    async def get(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> StaffHoldRead:
        return staff_hold_read(
            await holds_service.get(db, ref, actor=actor, side="staff"), clock.now()
        )

    @post("/{ref:str}/arrived", status_code=200, summary="The household arrived")
    async def arrived(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> StaffHoldRead:
        return await _staff(db, ref, "arrived", actor, clock)

    @post("/{ref:str}/no-show", status_code=200, summary="The household did not come")
    async def no_show(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> StaffHoldRead:
        return await _staff(db, ref, "no_show", actor, clock, settings=settings)

    @post("/{ref:str}/decline", status_code=200, summary="Decline the hold, with a reason")
    async def decline(
        self,
        ref: FromPath[str],
        data: Annotated[HoldDecline, Body()],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> StaffHoldRead:
        if not data.reason.strip():
            raise InvalidInput("Give a reason for declining.", field="reason")
        return await _staff(
            db, ref, "declined", actor, clock, reason=data.reason, settings=settings
        )

    @post("/{ref:str}/departed", status_code=200, summary="A placed household has left")
    async def departed(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> StaffHoldRead:
        return await _staff(db, ref, "departed", actor, clock, settings=settings)


async def _page_start(db: Database, actor: Actor, before: str | None, *, side: str) -> int | None:
    """The id a list's next page starts below: ``before`` is the ref of the last hold of the
    previous page (422 if not a code, 404 if not a hold this caller may see)."""
    if before is None:
        return None
    try:
        return (await holds_service.get(db, before, actor=actor, side=side)).id
    except AbriError as exc:
        exc.field = "before"  # the parameter as the caller wrote it
        raise


async def _staff(
    db: Database,
    ref: str,
    target: str,
    actor: Actor,
    clock: Clock,
    reason: str | None = None,
    settings: Settings | None = None,
) -> StaffHoldRead:
    now = clock.now()
    done = await holds_service.transition_ex(db, ref, target, actor=actor, now=now, reason=reason)
    if settings is not None and done.someone_waiting:
        # declined, no-show, departed: the place is free again for the oldest standing request
        await standing_service.run_round(db, settings, now=now)
    return staff_hold_read(done.view, now)


def resume_from(last_event_id: str | None) -> int | None:
    """The event id a reconnecting client saw last (``Last-Event-ID``), or None (start from
    now) for anything that is not an id of ours: ASCII digits that fit a 64-bit id. A client
    sends what it likes; a number beyond any id would break the stream only after it started
    (the database cannot compare with it), a very long one or a superscript digit raised."""
    if last_event_id is None or not re.fullmatch(r"[0-9]{1,18}", last_event_id):
        return None
    return int(last_event_id)


#: How long the stream keeps looking below its cursor for events committed late: PostgreSQL
#: gives an event its id when the row is written, not when its transaction commits, so an
#: event may become visible after a higher one was already sent (a transaction's statements
#: are each bounded by the 15 s statement timeout; a few of them fit well within this).
LATE_COMMIT_SECONDS = 30.0
#: How often the stream looks below its cursor for such late events.
LOOK_BACK_SECONDS = 2.0
#: How often an idle stream asks whether its reader may still read (see ``alive``).
ALIVE_CHECK_SECONDS = 5.0
#: How long a stream stays silent at most: then it sends a comment (``: keepalive``), which
#: dispatches no event, so a reader's read timeout or a proxy's idle timeout (often 60 s) does
#: not cut a quiet stream.
KEEPALIVE_SECONDS = 15.0
#: How often a stream whose database is gone (restarting, failing over) looks again.
OUTAGE_RETRY_SECONDS = 0.5


async def hold_event_stream(
    db: Database,
    actor: Actor,
    clock: Clock,
    after: int | None,
    seconds: int,
    *,
    facility_id: int | None = None,
    bare: bool = False,
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Poll the events table (works across API processes) and send what concerns my facilities
    (``facility_id``: that one only).

    Each message carries the hold as the staff view, re-read at send time (``bare``: only its
    state, for a night worker's link session, which sees no household or requester, and not
    its code either: the household gives the code at the door);
    ids let a client resume with Last-Event-ID. The stream's position is sent at once (an
    ``id`` without data), so a client that saw no event yet still resumes from where it was,
    not from "now". ``alive``: whether the caller may still read (its token not revoked, its
    session not ended), asked before anything is sent and every few seconds: the stream ends
    as soon as it says no.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    # first the stream's opening (headers and a comment) before any database read: a client
    # sees at once that it is connected, however busy the database is
    yield ServerSentEventMessage(data=None, comment="abri hold stream", retry=3000)
    while True:
        try:
            async with db.read() as s:
                newest = await s.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
            break
        except Exception as exc:
            if not connection_lost(exc) or loop.time() >= end:
                raise
            await asyncio.sleep(OUTAGE_RETRY_SECONDS)  # the database restarting: wait for it
    newest = int(newest or 0)
    # from now; or from an id beyond any event (remembered from before a restore, a fresh
    # database): nothing newer than the newest can have been seen, and resuming after it
    # would keep every new event from the reader until the ids caught up
    if after is None or after > newest:
        after = newest
    mine = (
        None
        if actor.is_admin
        else select(Facility.id).where(Facility.operator_id == actor.operator_id)
    )
    yield ServerSentEventMessage(id=str(after), comment="position")
    # Ids below the cursor are looked at again for LATE_COMMIT_SECONDS (``floor``: the cursor
    # as it was that long ago); ``sent`` keeps those already sent above the floor. New events
    # come from a forward query (above the cursor); the look-back asks for ids only, every
    # LOOK_BACK_SECONDS, and compares them here, so no query grows with what was sent (a
    # stream catching up a backlog sends thousands in 30 s).
    floor = after
    marks: deque[tuple[float, int]] = deque()
    sent: set[int] = set()
    checked = looked_back = loop.time()

    def scoped(q: Any) -> Any:
        """Hold events on the reader's facilities (``facility_id``: that one only)."""
        q = q.where(Event.kind.like("hold.%"))
        if mine is not None:
            q = q.where(Event.facility_id.in_(mine))
        if facility_id is not None:
            q = q.where(Event.facility_id == facility_id)
        return q

    columns = select(Event.id, Event.kind, Event.payload)
    spoke = loop.time()
    while loop.time() < end:
        now_t = loop.time()
        marks.append((now_t, after))
        moved = False
        while marks and marks[0][0] <= now_t - LATE_COMMIT_SECONDS:
            floor, moved = marks.popleft()[1], True
        if moved:
            sent = {i for i in sent if i > floor}
        try:
            if alive is not None and now_t - checked >= ALIVE_CHECK_SECONDS:
                if not await alive():
                    return
                checked = now_t
            async with db.read() as s:
                rows = list(
                    (
                        await s.execute(
                            scoped(columns.where(Event.id > after)).order_by(Event.id).limit(100)
                        )
                    ).all()
                )
                if floor < after and now_t - looked_back >= LOOK_BACK_SECONDS:
                    looked_back = now_t
                    below = await s.scalars(
                        scoped(select(Event.id).where(Event.id > floor, Event.id <= after))
                    )
                    late = [i for i in below if i not in sent][:100]
                    if late:  # committed after a higher id was sent: send them now
                        q = scoped(columns.where(Event.id.in_(late))).order_by(Event.id)
                        rows = list((await s.execute(q)).all()) + rows
            if rows and alive is not None:
                if not await alive():  # revoked since the last look: send nothing more
                    return
                checked = loop.time()
        except Exception as exc:
            if not connection_lost(exc):
                raise
            # the database restarting or failing over: the stream stays open (keep-alive
            # comments) and looks again, rather than end into a reconnection that would get
            # a 503, after which a browser's EventSource gives up for good
            rows = []
        lost = False
        for ev_id, kind, payload in rows:
            try:
                view = await holds_service.get(db, payload["ref"], actor=actor, side="staff")
            except Exception as exc:
                if connection_lost(exc):
                    lost = True
                    break  # not sent: read again at the next look, once the database is back
                view = None  # e.g. the hold's facility changed operator: skip it
            sent.add(ev_id)
            after = max(after, ev_id)
            if view is None:
                continue
            shown = staff_hold_read(view, clock.now())
            if bare:
                body = msgspec.json.encode({"state": shown.state}).decode()
            else:
                body = msgspec.json.encode(shown).decode()
            yield ServerSentEventMessage(data=body, event=kind, id=str(after))
            spoke = loop.time()
        if not rows or lost:
            if loop.time() - spoke >= KEEPALIVE_SECONDS:
                yield ServerSentEventMessage(data=None, comment="keepalive")
                spoke = loop.time()
            await asyncio.sleep(0.5)
