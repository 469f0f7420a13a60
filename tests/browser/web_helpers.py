"""Helpers shared by the web page tests (integration and browser)."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient, Response

from capacity.commands import PoolCreate
from placement.policy import AccessPolicy
from tests.conftest import World

CSRF = re.compile(r'name="csrf" value="([^"]+)"')

#: A refuge in Ixelles that takes the test family (a woman, undocumented, children 4 and 13).
FAMILY_POLICY = AccessPolicy(
    accepts_undocumented=True,
    genders=["female"],
    specialisations=["ipv"],
    languages=["fr", "nl"],
)


def wait_js(page: Any, expression: str, timeout: float | None = None) -> None:
    """Wait until the JavaScript ``expression`` is true in ``page``.

    Playwright's ``wait_for_function`` with a plain expression runs ``eval`` on every poll. Our
    pages' CSP has no ``'unsafe-eval'``: the first poll (inside Playwright's own call) passes,
    the later ones (from ``requestAnimationFrame``) are refused, so a condition that is not
    already true failed at random. Given a function, Playwright evaluates it once and calls it."""
    page.wait_for_function(f"() => ({expression})", timeout=timeout)


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


async def web_sign_in(client: AsyncClient, token: str) -> Response:
    page = await client.get("/web/sign-in")
    return await client.post("/web/sign-in", data={"csrf": csrf_of(page.text), "token": token})


async def post_form(client: AsyncClient, page_url: str, url: str, data: dict[str, str]) -> Response:
    """POST a form the way a browser would: with the CSRF token of the page it came from."""
    page = await client.get(page_url)
    return await client.post(url, data={"csrf": csrf_of(page.text), **data})


async def seed_world(world: World) -> dict[str, object]:
    """Two refuges (one in Mechelen, to be avoided), a staff, a helpline and a police token.

    The one to avoid lies far from the other (Mechelen): a secret place counts as anywhere in
    its arrondissement, left out when an area to avoid would leave out any municipality of it,
    so a refuge in the avoided area's arrondissement, or one its radius reaches, would be left
    out too."""
    await world.operator("Refuges Solidaires", "shelter_operator")
    await world.operator("Ligne Ecoute", "helpline")
    await world.operator("Zone Ixelles", "police")
    ixl = await world.facility(
        "Refuges Solidaires",
        "Refuge Iris",
        municipality="21009",
        policy=FAMILY_POLICY,
        pools=[
            PoolCreate(
                label="Family rooms", unit_kind="family_room", places_per_unit=4, units_total=3
            ),
        ],
    )
    sch = await world.facility(
        "Refuges Solidaires",
        "Refuge Nord",
        municipality="12025",
        policy=FAMILY_POLICY,
        pools=[
            PoolCreate(
                label="Family rooms", unit_kind="family_room", places_per_unit=4, units_total=2
            ),
        ],
    )
    return {
        "ixl": ixl,
        "sch": sch,
        "staff": await world.token("Refuges Solidaires", "staff"),
        "helpline": await world.token("Ligne Ecoute", "helpline"),
        "police": await world.token("Zone Ixelles", "police"),
    }
