"""The app with one more route, for the search benchmark only: ``POST /bench/search-floor``.

It is the search route with the search taken out. Same path depth, guards (requester role,
search rate limit), middleware (request id, bearer authentication), body type (decoded and
validated into ``SearchRequest``) and response type. The answer is the real search's answer
for the same body, computed once per distinct body and then replayed. What a request to it
costs is what litestar, uvicorn and our middleware spend on a search-shaped request and its
answer (same size): the cost the search route would keep if the matcher and the database cost
nothing. ``/health/live`` divided by it is the highest search/live ratio this stack can reach
with this answer format.

Never part of the product: ``uvicorn --factory ops.bench._floor_app:create_app``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Litestar, Request
from litestar.datastructures import State

from api.app import create_app as create_product_app
from api.auth import requires_requester
from api.placement.controllers import PlacementController, SearchResponse
from api.ratelimit import rate_limit
from api.routing import post
from capacity.audit import Actor
from placement.household import SearchRequest


class SearchFloorController(Controller):
    path = "/bench"
    guards = [requires_requester]
    include_in_schema = False

    @post("/search-floor", status_code=200, guards=[rate_limit("search")])
    async def search_floor(
        self, data: SearchRequest, request: Request[Actor, Any, State]
    ) -> SearchResponse:
        canned: dict[bytes, SearchResponse] = request.app.state.setdefault("floor_canned", {})
        body = await request.body()
        answer = canned.get(body)
        if answer is None:
            # the real search, once per distinct body (its handler function, unwrapped)
            real = PlacementController.search.fn
            answer = canned[body] = await real(None, data=data, request=request)  # type: ignore[arg-type]
        return answer


def create_app() -> Litestar:
    return create_product_app(extra_handlers=[SearchFloorController])
