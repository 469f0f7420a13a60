"""Search: a household and constraints in, ranked and explained options out — never an address."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from litestar.datastructures import State
from litestar.openapi.spec import Example
from litestar.params import Body

from api.auth import requires_requester
from api.ratelimit import rate_limit
from api.routing import post
from api.schemas import Out
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.db import Database
from capacity.metrics import SEARCHES
from placement import search_service
from placement.holds_service import requester_kind_of
from placement.household import SearchRequest
from placement.matcher import Alternative, Option
from placement.rules import EXCLUSION_TEXT, Warning

SEARCH_EXAMPLE = {
    "household": {
        "adults": [{"gender": "female", "ageBand": "25-64"}],
        "children": [{"age": 4, "gender": "female"}, {"age": 13, "gender": "male"}],
        "residenceStatus": "undocumented",
        "income": "no",
        "languages": ["fr"],
    },
    "need": "ipv",
    "nights": 7,
    "preferredMunicipalityNis": "21004",
    "avoid": {"municipalities": ["21015"]},
    "limit": 10,
}


class Exclusion(Out, kw_only=True):
    code: str
    count: int
    text: str


class SearchResponse(Out, kw_only=True):
    """Options best first, each with reasons, warnings and score parts; why others were
    excluded; what relaxing one constraint would give. No address field exists here."""

    search_id: str
    options: list[Option]
    excluded: dict[str, int]
    exclusions: list[Exclusion]
    alternatives: list[Alternative]
    considered: int
    matched: int
    unmet_recorded: bool
    # about the search itself, e.g. a preferred area inside an area to avoid
    notices: list[Warning] = msgspec.field(default_factory=list)


class PlacementController(Controller):
    path = "/placements"
    tags = ["placement"]
    guards = [requires_requester]

    @post(
        "/search",
        status_code=200,
        summary="Find places that will take this household tonight",
        guards=[rate_limit("search")],
    )
    async def search(
        self,
        data: Annotated[
            SearchRequest,
            Body(
                examples=[
                    Example(
                        summary=(
                            "A mother, undocumented, with a girl of 4 and a boy of 13; "
                            "avoid Schaerbeek"
                        ),
                        value=SEARCH_EXAMPLE,
                    )
                ]
            ),
        ],
        request: Request[Actor, Any, State],
    ) -> SearchResponse:
        # The app state and the user straight from the request, not as dependencies: litestar
        # resolves several dependencies in a task group (one asyncio task each, per request).
        state, actor = request.app.state, request.user
        db: Database = state.db
        clock: Clock = state.clock
        found = await search_service.search(
            db,
            state.search_cache,
            data,
            requester_kind=requester_kind_of(actor),
            operator_id=actor.operator_id,
            now=clock.now(),
            episode_key=state.episode_key,
        )
        r = found.result
        SEARCHES.labels(requester_kind_of(actor), "found" if r.options else "unmet").inc()
        exclusions = [
            Exclusion(code=c, count=n, text=f"{n} place(s) {EXCLUSION_TEXT.get(c, c)}")
            for c, n in sorted(r.excluded.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return SearchResponse(
            search_id=found.search_id,
            options=r.options,
            excluded=r.excluded,
            exclusions=exclusions,
            alternatives=r.alternatives,
            considered=r.considered,
            matched=r.matched,
            unmet_recorded=found.unmet_recorded,
            notices=found.notices,
        )


__all__ = ["PlacementController", "msgspec"]
