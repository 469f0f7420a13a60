"""Shelter staff: own facilities and pools, live counts with If-Match, 'still accurate'."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from litestar import Controller, Response
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, Parameter, QueryParameter

from api import audit_query
from api.audit_query import HoldRefParam, SinceParam, UntilParam
from api.auth import requires_staff_or_admin, staff_scope
from api.routing import get, post, put
from api.schemas import PoolRead, pool_read
from api.staff.schemas import (
    AvailabilityReportRead,
    StaffAuditRead,
    StaffFacilityRead,
    report_read,
    staff_facility,
)
from capacity import audit, availability, health_rules, registry
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.commands import AvailabilityUpdate, StatusChange
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.errors import InvalidInput, PreconditionRequired
from capacity.settings import Settings
from placement import holds_service, standing_service

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description='The pool version you saw, e.g. "3" (its ETag).'),
]
#: A report's body for Swagger UI's "Try it out" (without one it sends zeros for every count).
AVAILABILITY_EXAMPLE = {"unitsTotal": 12, "unitsOccupied": 9, "unitsBlocked": 1}


def parse_if_match(raw: str | None, *, required: bool) -> int | None:
    if raw is None or raw.strip() == "":
        if required:
            raise PreconditionRequired(
                "Send If-Match with the pool version you saw (the ETag of GET), so that two "
                "people updating at once never silently overwrite each other.",
                field="If-Match",
            )
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not re.fullmatch(r"[0-9]{1,12}", value):  # ASCII: isdigit() also takes "²"
        raise InvalidInput('If-Match must be a pool version such as "3".', field="If-Match")
    return int(value)


async def _pool_response(
    db: Database, pool_id: int, actor: Actor, settings: Settings, now_clock: Clock
) -> Response[PoolRead]:
    now = now_clock.now()
    scope = staff_scope(actor)
    await standing_service.expire_and_offer(db, settings, now, operator_id=scope, pool_id=pool_id)
    pool = await availability.get_pool(db, pool_id, operator_scope=scope)
    view = await registry.get_facility(db, pool.facility_id)
    body = pool_read(pool, view.facility, settings, now)
    return Response(body, headers={"ETag": f'"{pool.version}"'})


async def _one_facility(
    db: Database,
    view: registry.FacilityView,
    actor: Actor,
    now: datetime,
    cipher: AddressCipher,
    settings: Settings,
) -> StaffFacilityRead:
    """One facility as its staff see it: its address (the read audited) and the area
    conditions in force there."""
    fid = view.facility.id
    address = await registry.read_address(
        db, fid, actor=actor, now=now, cipher=cipher, operator_scope=staff_scope(actor)
    )
    rules = await health_rules.list_conditions(db)
    return staff_facility(
        view,
        address,
        settings,
        now,
        health_rules.in_force_at(
            view.facility.municipality_nis, rules, secret=view.facility.secret_address
        ),
    )


class StaffController(Controller):
    path = "/staff"
    tags = ["staff"]
    guards = [requires_staff_or_admin]

    @get(
        "/facilities",
        summary="My facilities and pools (with their addresses)",
        description=(
            "Each address given is an audited read (`address.read`). A system that polls this "
            "list for its pools and their versions asks `withAddress=false`: no address "
            '(`address` is null), no read to audit, so the audit\'s "who read our address" '
            "stays readable."
        ),
    )
    async def list_facilities(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        cipher: NamedDependency[AddressCipher],
        with_address: Annotated[bool, QueryParameter(name="withAddress")] = True,
    ) -> list[StaffFacilityRead]:
        now = clock.now()
        await standing_service.expire_and_offer(db, settings, now, operator_id=staff_scope(actor))
        views = await registry.list_facilities(db, operator_id=staff_scope(actor))
        addresses = (
            await registry.read_addresses(
                db, [v.facility.id for v in views], actor=actor, now=now, cipher=cipher
            )
            if with_address
            else {}
        )
        rules = await health_rules.list_conditions(db)
        return [
            staff_facility(
                v,
                addresses.get(v.facility.id),
                settings,
                now,
                health_rules.in_force_at(
                    v.facility.municipality_nis, rules, secret=v.facility.secret_address
                ),
            )
            for v in views
        ]

    @get("/facilities/{facility_id:int}", summary="One of my facilities")
    async def get_facility(
        self,
        facility_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        cipher: NamedDependency[AddressCipher],
    ) -> StaffFacilityRead:
        now = clock.now()
        scope = staff_scope(actor)
        await standing_service.expire_and_offer(
            db, settings, now, operator_id=scope, facility_id=facility_id
        )
        view = await registry.get_facility(db, facility_id, operator_scope=scope)
        return await _one_facility(db, view, actor, now, cipher, settings)

    @put(
        "/facilities/{facility_id:int}/status",
        summary="Set operational status (open, closed to admissions, reduced, suspended, "
        "location compromised)",
    )
    async def set_status(
        self,
        facility_id: FromPath[int],
        data: JSONBody[StatusChange],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        cipher: NamedDependency[AddressCipher],
    ) -> StaffFacilityRead:
        now = clock.now()
        # a compromised location declines the holds still held there (households on their way)
        view = await holds_service.set_facility_status(
            db,
            facility_id,
            data,
            actor=actor,
            now=now,
            operator_scope=staff_scope(actor),
            # staff may report a compromised location, never lift it: only an admin does
            refuse_from=() if actor.role == "admin" else ("location_compromised",),
        )
        await standing_service.run_round(db, settings, now=now)  # reopened: next in line
        return await _one_facility(db, view, actor, now, cipher, settings)

    @get("/pools/{pool_id:int}", summary="One pool, with its version as ETag")
    async def get_pool(
        self,
        pool_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> Response[PoolRead]:
        return await _pool_response(db, pool_id, actor, settings, clock)

    @put(
        "/pools/{pool_id:int}/availability",
        summary="Report counts (If-Match required; 412 with the current figures if stale)",
    )
    async def put_availability(
        self,
        pool_id: FromPath[int],
        data: Annotated[
            AvailabilityUpdate,
            Body(
                examples=[
                    Example(summary="12 beds, 9 taken, 1 out of order", value=AVAILABILITY_EXAMPLE)
                ]
            ),
        ],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        if_match: IfMatch = None,
    ) -> Response[PoolRead]:
        version = parse_if_match(if_match, required=True)
        assert version is not None
        now = clock.now()
        await availability.update_availability(
            db,
            pool_id,
            data,
            if_match=version,
            actor=actor,
            now=now,
            operator_scope=staff_scope(actor),
        )
        await standing_service.run_round(db, settings, now=now)  # a freed place: next in line
        return await _pool_response(db, pool_id, actor, settings, clock)

    @post(
        "/pools/{pool_id:int}/confirm",
        status_code=200,
        summary="Still accurate: refresh the data age without changing counts",
    )
    async def confirm(
        self,
        pool_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        if_match: IfMatch = None,
    ) -> Response[PoolRead]:
        await availability.confirm_still_accurate(
            db,
            pool_id,
            if_match=parse_if_match(if_match, required=False),
            actor=actor,
            now=clock.now(),
            operator_scope=staff_scope(actor),
        )
        return await _pool_response(db, pool_id, actor, settings, clock)

    @get(
        "/facilities/{facility_id:int}/audit",
        summary="The audit log of one of my facilities, newest first",
        description=(
            "Who read its address, changed its status, rules or counts, issued or used a "
            "night-worker link, held a place there and what became of each hold (R28). "
            "Filters combine (`from`/`to` for a time, `holdRef` for one hold). "
            "To page back, pass the `id` of the last entry seen as `beforeId`."
        ),
    )
    async def facility_audit(
        self,
        facility_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        action: Annotated[str | None, Parameter(max_length=64)] = None,
        hold_ref: HoldRefParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        before_id: Annotated[int | None, Parameter(query="beforeId", ge=1)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[StaffAuditRead]:
        start, end = audit_query.window(since, until)
        ref = audit_query.hold_ref(hold_ref)
        await registry.get_facility(db, facility_id, operator_scope=staff_scope(actor))  # 404
        rows = await audit.entries(
            db,
            audit.Filter(
                facility_id=facility_id,
                action=action,
                hold_ref=ref,
                since=start,
                until=end,
                before_id=before_id,
            ),
            limit=limit,
        )
        return [
            StaffAuditRead(
                id=e.id,
                at=e.at,
                actor_operator=name,
                actor_role=e.actor_role,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                detail=e.detail,
            )
            for e, name in rows
        ]

    @get("/pools/{pool_id:int}/history", summary="History of reports for a pool")
    async def history(
        self,
        pool_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[AvailabilityReportRead]:
        rows = await availability.history(
            db, pool_id, operator_scope=staff_scope(actor), limit=limit
        )
        return [report_read(r) for r in rows]
