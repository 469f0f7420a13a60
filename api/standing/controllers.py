"""Standing requests: a requester whose search found nothing waits in line for a place."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter

from api.auth import requires_requester
from api.ratelimit import rate_limit
from api.routing import get, post
from api.standing.schemas import (
    STANDING_EXAMPLE,
    StandingCreate,
    StandingRead,
    StandingState,
    standing_read,
)
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.db import Database
from placement import standing_service

OptionalIdemKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Optional: retrying with the same key returns the same standing request.",
    ),
]


class StandingController(Controller):
    path = "/standing-requests"
    tags = ["holds"]
    guards = [requires_requester]

    @post(
        "/",
        status_code=201,
        # answered at once when a place is free: it holds that place, so it spends the
        # token's hold budget (else a way around the hold limit)
        guards=[rate_limit("hold")],
        summary="Wait in line for a place that fits (first come, first served)",
        description=(
            "When a matching place frees up, it is **held for you** (an ordinary hold with "
            "your default duration) and this request becomes `offered`, with the hold's "
            "reference code, intake phone and handover protocol. Older requests are served "
            "first. If the place then declines that hold or marks it no-show, the request "
            "goes back to `waiting` in its original position (while its deadline lasts), with "
            "that hold as `previousHold`. Your webhook, if your operator has one, receives "
            "`standing.offered`, `standing.waiting` or `standing.expired`."
        ),
    )
    async def create(
        self,
        data: Annotated[
            StandingCreate,
            Body(
                examples=[
                    Example(
                        summary="Wait 12 h for a place for a mother and two children",
                        value=STANDING_EXAMPLE,
                    )
                ]
            ),
        ],
        idempotency_key: OptionalIdemKey,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        state: State,
    ) -> Response[StandingRead]:
        now = clock.now()
        result = await standing_service.create(
            db,
            state.settings,
            request=data.search,
            minutes=data.minutes,
            callback=data.callback,
            idempotency_key=idempotency_key,
            actor=actor,
            now=now,
        )
        return Response(
            standing_read(result.view, now),
            status_code=201 if result.created else 200,
            headers={"Location": f"/standing-requests/{result.view.ref}"},
        )

    @get("/", summary="My operator's standing requests")
    async def list(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        states: Annotated[
            list[StandingState] | None, QueryParameter(name="state", required=False)
        ] = None,
    ) -> list[StandingRead]:
        now = clock.now()
        views = await standing_service.list_mine(db, actor=actor, states=states)
        return [standing_read(v, now) for v in views]

    @get("/{ref:str}", summary="One of my operator's standing requests")
    async def get(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> StandingRead:
        return standing_read(await standing_service.get(db, ref, actor=actor), clock.now())

    @post("/{ref:str}/cancel", status_code=200, summary="Stop waiting")
    async def cancel(
        self,
        ref: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> StandingRead:
        now = clock.now()
        return standing_read(await standing_service.cancel(db, ref, actor=actor, now=now), now)
