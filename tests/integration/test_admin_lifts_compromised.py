"""04:00, the on-call administrator and a refuge whose location was reported compromised:
setting and lifting the status from the server's shell (``abri facility status``), the same
path as the admin API's (holds on their way declined, the line served at once on reopening),
audited as the command line's."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from capacity.clock import FrozenClock
from capacity.commands import PoolCreate
from capacity.models import Alert, AuditEntry, Facility, Operator
from tests.conftest import TEST_KEY, World, bearer

ROOT = Path(__file__).resolve().parents[2]
ONE_WOMAN = {"adults": [{"gender": "female"}], "languages": ["fr"]}
# the command reads the system clock: the world is built at the same time, so its holds and
# requests in line are still running when the command comes
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def abri(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABRI_DATABASE_URL": url, "ABRI_ADDRESS_KEY": TEST_KEY}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
async def night(world: World) -> dict[str, Any]:
    await world.operator("Refuges A", "shelter_operator")
    await world.operator("Zone Nord", "police")
    await world.operator("Ligne 0800", "helpline")
    await world.operator("Admin", "admin")
    r = await world.facility(
        "Refuges A", "Refuge R", pools=[PoolCreate(label="Beds", units_total=2)]
    )
    return {
        "facility": r.facility.id,
        "ref": r.facility.ref,
        "pool": r.pools[0].ref,
        "police": await world.token("Zone Nord", "police"),
        "helpline": await world.token("Ligne 0800", "helpline"),
        "staff": await world.token("Refuges A", "staff"),
        "admin": await world.token("Admin", "admin"),
    }


async def _hold(client: AsyncClient, token: str, pool: str, key: str) -> str:
    r = await client.post(
        "/holds",
        json={"poolRef": pool, "need": "ipv", "household": ONE_WOMAN},
        headers={**bearer(token), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["ref"])


async def _audits(world: World, facility_id: int, action: str) -> list[AuditEntry]:
    async with world.db.read() as s:
        rows = await s.scalars(
            select(AuditEntry)
            .where(AuditEntry.facility_id == facility_id, AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return list(rows.all())


async def test_the_on_call_admin_sets_and_lifts_the_status_from_the_servers_shell(
    client: AsyncClient, world: World, db_url: str, night: dict[str, Any]
) -> None:
    """At 04:00 the on-call administrator had no `abri` command for a facility's status: the
    only way to lift `location_compromised` was a hand-written `curl PUT` with an admin token.
    `abri facility status` now does what the admin route does: a compromised location
    declines the holds on their way, a reopening serves the request in line at once, each
    audited as the command line's; a facility is named by its id or its ref."""
    fid = night["facility"]
    police = await _hold(client, night["police"], night["pool"], "cli-police-1")
    other = await _hold(client, night["helpline"], night["pool"], "cli-full-1")
    r = await client.post(f"/staff/holds/{other}/arrived", headers=bearer(night["staff"]))
    assert r.status_code == 200, r.text
    line = await client.post(
        "/standing-requests",
        json={"search": {"household": ONE_WOMAN, "need": "ipv"}, "minutes": 720},
        headers={**bearer(night["helpline"]), "Idempotency-Key": "cli-line-1"},
    )
    assert line.json()["state"] == "waiting", line.text
    sref = line.json()["ref"]

    r = abri(db_url, "facility", "status", night["ref"], "location_compromised", "--reason", "Seen")
    assert r.returncode == 0, r.stderr
    assert "location_compromised" in r.stderr and "Refuge R" in r.stderr
    hold = await client.get(f"/holds/{police}", headers=bearer(night["police"]))
    assert hold.json()["state"] == "declined", hold.text  # the household on its way told
    waiting = await client.get(f"/standing-requests/{sref}", headers=bearer(night["helpline"]))
    assert waiting.json()["state"] == "waiting", waiting.text  # never offered R

    r = abri(db_url, "facility", "status", str(fid), "open", "--reason", "Partner in custody")
    assert r.returncode == 0, r.stderr
    assert "open" in r.stderr
    detail = await client.get(f"/admin/facilities/{fid}", headers=bearer(night["admin"]))
    assert detail.json()["status"] == "open", detail.text
    offered = await client.get(f"/standing-requests/{sref}", headers=bearer(night["helpline"]))
    assert offered.json()["state"] == "offered", offered.text  # the line served at once

    changes = await _audits(world, fid, "facility.status")
    assert [(e.actor_role, e.detail["from"], e.detail["to"]) for e in changes] == [
        ("cli", "open", "location_compromised"),
        ("cli", "location_compromised", "open"),
    ]
    declines = await _audits(world, fid, "hold.declined")
    assert [e.actor_role for e in declines] == ["cli"]


async def test_the_command_says_what_is_wrong_and_changes_nothing(
    world: World, db_url: str, night: dict[str, Any]
) -> None:
    """A mistyped facility, status or time: one line naming it, exit 2, nothing changed."""
    fid = night["facility"]
    for args, said in [
        (("999", "open"), "No such facility"),
        (("NOPE-REF", "open"), "No such facility"),
        ((str(fid), "suspended"), "reason"),  # as the API: a reason unless open
        ((str(fid), "suspended", "--reason", "works", "--until", "tomorrow"), "until"),
        (
            (str(fid), "location_compromised", "--reason", "x", "--until", "2099-01-01T00:00Z"),
            "until",
        ),
    ]:
        r = abri(db_url, "facility", "status", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and said in r.stderr, (args, r.stderr)
    r = abri(db_url, "facility", "status", str(fid), "shut")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert await _audits(world, fid, "facility.status") == []


async def test_lifting_a_compromised_location_says_why(
    client: AsyncClient, world: World, db_url: str, night: dict[str, Any]
) -> None:
    """An admin lifted `location_compromised` with `{"status": "open"}` alone, and the audit of
    the night said `reason: null`: nobody could tell afterwards why the place was judged safe
    again. Lifting it (to any status) now needs a reason, by the API and by the command, and
    the audit keeps it; reopening any other status still needs none."""
    fid = night["facility"]
    admin = bearer(night["admin"])
    r = await client.put(
        f"/admin/facilities/{fid}/status",
        headers=admin,
        json={"status": "location_compromised", "reason": "Partner seen outside"},
    )
    assert r.status_code == 200, r.text
    for body in ({"status": "open"}, {"status": "open", "reason": "  "}):
        r = await client.put(f"/admin/facilities/{fid}/status", headers=admin, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid-input" and r.json()["field"] == "reason", r.text
        assert "lift" in r.json()["detail"]
    r = abri(db_url, "facility", "status", str(fid), "open")
    assert r.returncode == 2 and "reason" in r.stderr and "Traceback" not in r.stderr, r.stderr
    detail = await client.get(f"/admin/facilities/{fid}", headers=admin)
    assert detail.json()["status"] == "location_compromised"

    r = await client.put(
        f"/admin/facilities/{fid}/status",
        headers=admin,
        json={"status": "open", "reason": "Partner in custody; police confirm"},
    )
    assert r.status_code == 200 and r.json()["status"] == "open", r.text
    lifted = (await _audits(world, fid, "facility.status"))[-1]
    assert lifted.detail["from"] == "location_compromised"
    assert lifted.detail["reason"] == "Partner in custody; police confirm"
    # the open place carries no reason: the staff page would show it under "Open" and offer
    # it again as the next closure's (the audit keeps it)
    async with world.db.read() as s:
        assert await s.scalar(select(Facility.status_reason).where(Facility.id == fid)) is None

    # any other status is reopened as before, without a reason
    for body in (
        {"status": "suspended", "reason": "works"},
        {"status": "open"},
    ):
        r = await client.put(f"/admin/facilities/{fid}/status", headers=admin, json=body)
        assert r.status_code == 200, r.text


async def test_lifting_a_compromised_location_acknowledges_its_alert(
    client: AsyncClient, world: World, db_url: str, night: dict[str, Any]
) -> None:
    """After the lift, `GET /admin/alerts` still showed "Location of Refuge R reported
    compromised" as open, so the next admin on call would act on a place already reopened.
    Lifting it now acknowledges that facility's open `location_compromised` alert (not
    another facility's), as the admin who lifted it, audited; reported again, a new alert."""
    fid = night["facility"]
    other = (await world.facility("Refuges A", "Refuge S")).facility.id
    admin = bearer(night["admin"])
    for f in (fid, other):
        r = await client.put(
            f"/staff/facilities/{f}/status",
            headers=bearer(night["staff"]),
            json={"status": "location_compromised", "reason": "Partner seen outside"},
        )
        assert r.status_code == 200, r.text
    alerts = (await client.get("/admin/alerts", headers=admin)).json()
    assert sorted(a["facilityId"] for a in alerts) == sorted([fid, other])
    mine = next(a["id"] for a in alerts if a["facilityId"] == fid)

    r = await client.put(
        f"/admin/facilities/{fid}/status",
        headers=admin,
        json={"status": "open", "reason": "Partner in custody"},
    )
    assert r.status_code == 200, r.text
    alerts = (await client.get("/admin/alerts", headers=admin)).json()
    assert [a["facilityId"] for a in alerts] == [other]  # the other place's stays open
    every = (await client.get("/admin/alerts?includeAcknowledged=true", headers=admin)).json()
    assert next(a for a in every if a["id"] == mine)["acknowledgedAt"] is not None
    (ack,) = await _audits(world, fid, "alert.acknowledge")
    assert (ack.actor_role, ack.object_type, ack.object_id) == ("admin", "alert", str(mine))
    async with world.db.read() as s:
        admin_id = await s.scalar(select(Operator.id).where(Operator.name == "Admin"))
        by = await s.scalar(select(Alert.acknowledged_by).where(Alert.id == mine))
    assert ack.actor_operator_id == admin_id and by == admin_id

    # from the server's shell alike, audited as the command line's
    r = abri(db_url, "facility", "status", str(other), "reduced", "--reason", "Moved wing")
    assert r.returncode == 0, r.stderr
    assert "alert" in r.stderr
    assert (await client.get("/admin/alerts", headers=admin)).json() == []
    assert [e.actor_role for e in await _audits(world, other, "alert.acknowledge")] == ["cli"]

    # reported again: a new alert, open
    r = await client.put(
        f"/admin/facilities/{fid}/status",
        headers=admin,
        json={"status": "location_compromised", "reason": "Seen again"},
    )
    assert r.status_code == 200, r.text
    alerts = (await client.get("/admin/alerts", headers=admin)).json()
    assert [a["facilityId"] for a in alerts] == [fid] and alerts[0]["id"] != mine
