"""Task-force dashboard and OpenAPI: defects in the dashboard's text alternatives and in the
request examples Swagger UI's "Try it out" sends, checked against the demo dataset."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

from httpx import AsyncClient

from capacity import snapshots
from capacity.settings import Settings
from ops.demo import load_demo
from tests.browser.web_helpers import web_sign_in
from tests.conftest import World, bearer

#: The request bodies a user sends from Swagger UI (method, path, role that may send it).
TRY_IT_OUT = (
    ("post", "/placements/search"),
    ("post", "/holds"),
    ("post", "/holds/{ref}/extend"),
    ("post", "/standing-requests"),
    ("put", "/staff/pools/{pool_id}/availability"),
    ("post", "/admin/facilities"),
    ("post", "/admin/facilities/import"),
    ("post", "/admin/feeds"),
)

#: Anything that reads like a street address: a street word, or a Belgian postal code + city.
ADDRESS_LIKE = re.compile(
    r"(?i:\b(rue|straat|laan|avenue|chauss[ée]e|steenweg|boulevard|plein|street|place de)\b)"
    r"|\b[1-9][0-9]{3} [A-Z][a-z]"
)


def body_example(doc: dict[str, Any], method: str, path: str) -> tuple[str, Any]:
    """The media type and first example value Swagger UI would prefill for an operation."""
    op = doc["paths"][path][method]
    body = op.get("requestBody")
    assert body, f"{method.upper()} {path}: no request body documented"
    for media_type, media in body["content"].items():
        examples = media.get("examples") or {}
        if examples:
            return media_type, next(iter(examples.values()))["value"]
        if "example" in media:
            return media_type, media["example"]
    raise AssertionError(f"{method.upper()} {path}: no example for Try it out")


async def test_every_try_it_out_body_has_an_example_that_works_on_the_demo(
    client: AsyncClient, world: World
) -> None:
    """Swagger UI prefills "Try it out" from the media type's examples. Availability, extend,
    admin facility create and the CSV import had none (Swagger sends a generated
    `{"unitsTotal": 0, "unitsOccupied": 0, ...}` or `"string"` values; the import had no
    request body at all, so it cannot be sent from Swagger), and the feed example named an
    operator and pools the demo does not have (404 "No such operator."). Each example, with
    only the references a previous call returns filled in, must work on the demo data."""
    tokens = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    doc = (await client.get("/schema/openapi.json")).json()
    examples = {(m, p): body_example(doc, m, p) for m, p in TRY_IT_OUT}

    for (method, path), (_media, value) in examples.items():  # no address in any example
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        assert not ADDRESS_LIKE.search(text), (method, path, text)
        assert not {"street", "postalCode", "city"} & set(re.findall(r'"(\w+)":', text))

    helpline = bearer(tokens["helpline"])
    r = await client.post(
        "/placements/search", json=examples["post", "/placements/search"][1], headers=helpline
    )
    assert r.status_code == 200, r.text
    # The hold example works as printed: the demo gives its poolRef to the search's best
    # option (before, it named a pool no registry has: 404 for every new user).
    hold = examples["post", "/holds"][1]
    assert hold["household"] == examples["post", "/placements/search"][1]["household"]
    assert hold["poolRef"] == r.json()["options"][0]["poolRef"]
    r = await client.post(
        "/holds", json=hold, headers={**helpline, "Idempotency-Key": "try-it-out-1"}
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    r = await client.post(
        f"/holds/{ref}/extend", json=examples["post", "/holds/{ref}/extend"][1], headers=helpline
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/standing-requests", json=examples["post", "/standing-requests"][1], headers=helpline
    )
    assert r.status_code == 201, r.text

    staff = bearer(tokens["staff"])
    facilities = (await client.get("/staff/facilities", headers=staff)).json()
    pool_id = facilities[0]["pools"][0]["id"]
    etag = (await client.get(f"/staff/pools/{pool_id}", headers=staff)).headers["etag"]
    r = await client.put(
        f"/staff/pools/{pool_id}/availability",
        json=examples["put", "/staff/pools/{pool_id}/availability"][1],
        headers={**staff, "If-Match": etag},
    )
    assert r.status_code == 200, r.text

    admin = bearer(tokens["admin"])
    r = await client.post(
        "/admin/facilities", json=examples["post", "/admin/facilities"][1], headers=admin
    )
    assert r.status_code == 201, r.text
    media, csv_text = examples["post", "/admin/facilities/import"]
    assert media == "text/csv"
    r = await client.post(
        "/admin/facilities/import",
        content=csv_text.encode(),
        headers={**admin, "Content-Type": media},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/admin/feeds", json=examples["post", "/admin/feeds"][1], headers=admin)
    assert r.status_code == 201, r.text


async def test_if_match_is_documented_as_required_for_a_count_report(
    client: AsyncClient, world: World
) -> None:
    """PUT /staff/pools/{id}/availability answers 428 without If-Match, yet the OpenAPI
    document marked the header optional: Swagger UI let it be left empty and generated
    clients made it an optional argument, and the first report then failed."""
    tokens = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    doc = (await client.get("/schema/openapi.json")).json()
    put = doc["paths"]["/staff/pools/{pool_id}/availability"]["put"]
    if_match = next(p for p in put["parameters"] if p["name"] == "If-Match")
    staff = bearer(tokens["staff"])
    pool_id = (await client.get("/staff/facilities", headers=staff)).json()[0]["pools"][0]["id"]
    r = await client.put(
        f"/staff/pools/{pool_id}/availability",
        json={"unitsTotal": 12, "unitsOccupied": 9},
        headers=staff,
    )
    assert r.status_code == 428  # the behaviour: required
    assert if_match["required"] is True  # and what the document says
    # the confirmation ("still accurate") really takes it as optional
    post = doc["paths"]["/staff/pools/{pool_id}/confirm"]["post"]
    assert not next(p for p in post["parameters"] if p["name"] == "If-Match").get("required")


async def test_the_trend_chart_text_alternative_describes_the_trend(
    client: AsyncClient, world: World, settings: Settings
) -> None:
    """The trend chart is an image (role="img"); its text alternative only gave the last value
    ("Saturation over the last 7 day(s); last value 74 %."), so a screen-reader user learnt
    nothing of the trend the chart exists to show: where it started, how low and how high it
    went. The description must give the first, lowest, highest and last values."""
    tokens = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    now = world.clock.now()
    await snapshots.take_snapshot(world.db, settings, now - timedelta(minutes=1))
    await web_sign_in(client, tokens["taskforce"])
    client.cookies.set("abri_lang", "en", path="/web")
    r = await client.get("/web/taskforce")
    assert r.status_code == 200
    series = (
        await client.get(
            "/taskforce/saturation/series",
            params={"level": "country", "start": (now - timedelta(days=7)).isoformat()},
            headers=bearer(tokens["taskforce"]),
        )
    ).json()
    values = [
        p["saturation"]
        for a in series["areas"]
        for p in a["points"]
        if not p["suppressed"] and p["saturation"] is not None
    ]
    assert len(values) > 2 and min(values) < max(values)
    desc = re.search(r'<desc id="trend-desc">([^<]*)</desc>', r.text)
    assert desc, "no chart description"
    text = html.unescape(desc.group(1))

    def pct(v: float) -> str:
        return f"{round(v * 100)} %"

    for label, v in (
        ("from", values[0]),
        ("lowest", min(values)),
        ("highest", max(values)),
        ("to", values[-1]),
    ):
        assert f"{label} {pct(v)}" in text, (label, text)


async def test_the_suppression_notes_do_not_claim_too_few_shelters(
    client: AsyncClient, world: World
) -> None:
    """Antwerp has three refuges (k = 3) and is suppressed because Limburg's single refuge
    could otherwise be worked out of Flanders (complementary suppression); an area with enough
    shelters but fewer than k secret-address ones is suppressed too. The page explained every
    grey area as "Suppressed (fewer than 3 shelters)" and "Areas with fewer than 3 shelters are
    suppressed", so the task force read that Antwerp (or, in the demo, Leuven, Arlon and Namur)
    had fewer than three shelters: wrong for planning. The notes must not give that as the
    reason, and must say that figures which would let a shelter be worked out are hidden."""
    from tests.integration.test_web_taskforce import map_areas, seed_taskforce

    s = await seed_taskforce(world)
    await web_sign_in(client, s["tf"])
    client.cookies.set("abri_lang", "en", path="/web")
    page = html.unescape((await client.get("/web/taskforce")).text)
    assert map_areas(page)["10000"]["class"] == "suppressed"  # three refuges, yet suppressed
    assert "fewer than 3 shelters)" not in page
    assert "Areas with fewer than 3 shelters are suppressed" not in page
    assert "worked out" in page
    legend = re.search(r'<ul class="legend".*?</ul>', page, re.S)
    assert legend and "could single out a shelter" in legend[0]


async def test_the_extend_body_is_documented_as_optional(client: AsyncClient, world: World) -> None:
    """POST /holds/{ref}/extend without a body extends by the default; the document said a
    body was required, so generated clients forced one (the integrator review found it). Other
    bodies stay required."""
    tokens = await load_demo(world.db, cipher=world.cipher, clock=world.clock)
    doc = (await client.get("/schema/openapi.json")).json()
    assert doc["paths"]["/holds/{ref}/extend"]["post"]["requestBody"]["required"] is False
    assert doc["paths"]["/holds"]["post"]["requestBody"]["required"] is True
    police = bearer(tokens["police"])
    hold = doc["paths"]["/holds"]["post"]["requestBody"]["content"]["application/json"]
    body = hold.get("example") or next(iter(hold["examples"].values()))["value"]
    r = await client.post("/holds", json=body, headers={**police, "Idempotency-Key": "extend-0001"})
    assert r.status_code == 201, r.text
    r = await client.post(f"/holds/{r.json()['ref']}/extend", headers=police)  # no body
    assert r.status_code == 200, r.text
