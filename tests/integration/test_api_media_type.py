"""A JSON route given a body of another media type: a dispatch system posting its JSON as
``text/plain``, as a form, with no ``Content-Type`` or declared Latin-1. Litestar parsed it as
JSON anyway; now it is a 415 problem naming what the route takes."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.browser.web_helpers import seed_world
from tests.conftest import World, bearer


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        None,
    ],
)
async def test_a_json_route_given_another_media_type_answers_415(
    client: AsyncClient, world: World, content_type: str | None
) -> None:
    """A dispatch system that posts its JSON as ``text/plain`` (or with no type, or in
    Latin-1) was understood anyway, and a Latin-1 ``é`` became whatever UTF-8 made of it. A
    JSON route now answers 415 with a problem; ``application/json`` with ``charset=utf-8``
    stays accepted."""
    w = await seed_world(world)
    fid = w["ixl"].facility.id  # type: ignore[attr-defined]
    staff = bearer(str(w["staff"]))
    url = f"/staff/facilities/{fid}/status"
    content = b'{"status": "reduced", "reason": "Water damage"}'
    headers = {**staff, "Content-Type": content_type} if content_type else staff
    r = await client.put(url, content=content, headers=headers)
    assert r.status_code == 415, r.text
    problem = r.json()
    assert problem["code"] == "unsupported-media-type" and problem["status"] == 415, problem
    assert "application/json" in problem["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    api = await client.get(f"/staff/facilities/{fid}", headers=staff)
    assert api.json()["status"] == "open"
    for ok in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
        r = await client.put(url, content=content, headers={**staff, "Content-Type": ok})
        assert r.status_code == 200, r.text
