"""DESIGN invariant 5: no facility address ever reaches a helpline, police or task-force caller.

Facilities get unique canary addresses; every route of the app is called as each of those roles
(with real ids in the path and realistic bodies); no canary may appear in any body or header.
The same run checks that no log line carries a canary, whoever called.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar

from api.app import create_app
from capacity.commands import PoolCreate
from capacity.crypto import Address
from tests.conftest import World, bearer

HOUSEHOLD = {"adults": [{"gender": "female"}], "children": [{"age": 5}], "languages": ["fr"]}
SEARCH = {"household": HOUSEHOLD, "need": "ipv", "preferredMunicipalityNis": "21015"}


def example_bodies(pool_ref: str) -> dict[tuple[str, str], Any]:
    """Realistic bodies per route, so that routes do real work instead of failing validation.
    Every new route that takes a body should add one here."""
    return {
        ("POST", "/placements/search"): SEARCH,
        ("POST", "/holds"): {"poolRef": pool_ref, "need": "ipv", "household": HOUSEHOLD},
        ("POST", "/holds/{ref:str}/extend"): {"minutes": 60},
        ("POST", "/standing-requests"): {"search": SEARCH, "minutes": 60},
        ("POST", "/staff/holds/{ref:str}/decline"): {"reason": "full tonight"},
        ("POST", "/admin/feeds"): {
            "name": "canary-feed",
            "operator": "Refuges Secrets",
            "url": "http://127.0.0.1:9/feed",
            "format": "json_inventory",
            "mapping": [{"feedId": "DBL", "poolId": 1}],
        },
        ("PATCH", "/admin/feeds/{feed_id:int}"): {"intervalSeconds": 600},
        ("POST", "/staff/facilities/{facility_id:int}/links"): {
            "label": "Night shift",
            "hours": 12,
        },
        ("POST", "/admin/schemes/extend"): {"plannedEnd": "2099-01-01T00:00:00Z"},
    }


#: Query strings for routes that do nothing useful without one (the area to look at).
EXAMPLE_QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/taskforce/saturation/year-on-year"): {"level": "province", "nis": "60000"},
    ("GET", "/taskforce/saturation/series"): {"level": "province", "nis": "60000"},
}


def canary_address() -> tuple[Address, list[str]]:
    tag = secrets.token_hex(4).upper()
    street, postal, city = f"CANARYSTREET{tag} 12", f"CP{tag}", f"CANARYCITY{tag}"
    return Address(street=street, postal_code=postal, city=city, notes=f"NOTE{tag}"), [
        f"CANARYSTREET{tag}",
        f"CP{tag}",
        f"CANARYCITY{tag}",
        f"NOTE{tag}",
    ]


def all_routes(app: Litestar) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", [])):
            if method in ("HEAD", "OPTIONS"):
                continue
            out.append((method, route.path))
    return out


def fill(path: str, ids: dict[str, int | str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "ref" and path.startswith("/standing-requests"):
            name = "standing_ref"
        return str(ids.get(name, 1))

    return re.sub(r"\{(\w+)(?::\w+)?\}", sub, path)


@pytest.fixture
async def canaries(world: World) -> dict[str, Any]:
    await world.operator("Refuges Secrets", "shelter_operator")
    secrets_found: list[str] = []
    views = []
    for i, kind in enumerate(("refuge", "crisis_hotel", "cpas_place", "night_shelter")):
        addr, needles = canary_address()
        secrets_found += needles
        views.append(
            await world.facility(
                "Refuges Secrets",
                f"Canary {i}",
                kind=kind,
                address=addr,
                municipality=("21015", "62063", "44021", "92094")[i],
                pools=[
                    PoolCreate(label="Beds", units_total=6),
                    PoolCreate(
                        label="Family", unit_kind="family_room", places_per_unit=4, units_total=2
                    ),
                ],
            )
        )
    for op, kind in (("Line", "helpline"), ("Zone", "police"), ("TF", "taskforce")):
        await world.operator(op, kind)
    return {
        "needles": secrets_found,
        "ids": {
            "facility_id": views[0].facility.id,
            "pool_id": views[0].pools[0].id,
            "nis": "21015",
            "level": "provinces",
            "token_id": 1,
            "alert_id": 1,
            "ref": views[0].facility.ref,
        },
        "pool_ref": views[0].pools[0].ref,
        "tokens": {
            role: await world.token(op, role)
            for op, role in (("Line", "helpline"), ("Zone", "police"), ("TF", "taskforce"))
        },
        "staff": await world.token("Refuges Secrets", "staff"),
    }


async def test_no_canary_address_reaches_requesters_or_taskforce(
    client: AsyncClient,
    world: World,
    canaries: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    settings: Any,
) -> None:
    app = create_app(settings, db=world.db, clock=world.clock)
    routes = all_routes(app)
    assert len(routes) > 20
    needles: list[str] = canaries["needles"]
    bodies = example_bodies(canaries["pool_ref"])
    calls = 0
    for role, token in canaries["tokens"].items():
        ids = dict(canaries["ids"])
        if role in ("helpline", "police"):
            # Real work: a search that finds the canary places, a hold and a standing request
            # of this role's own, so that every hold route reads a real hold.
            r = await client.post("/placements/search", json=SEARCH, headers=bearer(token))
            assert r.status_code == 200 and r.json()["options"], r.text
            r = await client.post(
                "/holds",
                json=bodies[("POST", "/holds")],
                headers={**bearer(token), "Idempotency-Key": f"canary-{role}-hold"},
            )
            assert r.status_code == 201, r.text
            ids["ref"] = r.json()["ref"]
            r = await client.post(
                "/standing-requests", json={"search": SEARCH}, headers=bearer(token)
            )
            assert r.status_code == 201, r.text
            ids["standing_ref"] = r.json()["ref"]
        for method, path in routes:
            url = fill(path, ids)
            body = bodies.get((method, path), {})
            kwargs: dict[str, Any] = {
                "headers": {**bearer(token), "Idempotency-Key": f"canary-{role}-{calls}"}
            }
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = body
            if (method, path) in EXAMPLE_QUERIES:
                kwargs["params"] = EXAMPLE_QUERIES[(method, path)]
            r = await client.request(method, url, **kwargs)
            calls += 1
            assert r.status_code < 500, (role, method, url, r.text)
            blob = r.text + " ".join(f"{k}: {v}" for k, v in r.headers.items())
            for needle in needles:
                assert needle not in blob, f"{role} got an address from {method} {url}"
    assert calls == 3 * len(routes)
    # Staff legitimately read their addresses: the logs must still not carry them.
    r = await client.get("/staff/facilities", headers=bearer(canaries["staff"]))
    assert needles[0] in r.text
    logs = capsys.readouterr()
    for needle in needles:
        assert needle not in logs.out and needle not in logs.err
    assert "request" in logs.err  # the request log lines were indeed captured


async def test_address_is_encrypted_at_rest(world: World, canaries: dict[str, Any]) -> None:
    from sqlalchemy import select

    from capacity.models import FacilityAddress

    async with world.db.read() as s:
        rows = (await s.scalars(select(FacilityAddress))).all()
    assert len(rows) == 4
    for row in rows:
        for needle in canaries["needles"]:
            assert needle not in row.ciphertext
