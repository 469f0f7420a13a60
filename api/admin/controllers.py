"""Admins: operators, tokens, facilities (templates, CSV import), pools, addresses, audit."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, JSONBody, Parameter, QueryParameter
from sqlalchemy import select

from api import audit_query
from api.admin.schemas import (
    FACILITY_EXAMPLE,
    AlertRead,
    AuditRead,
    HealthConditionRead,
    HealthConditionSet,
    ImportResult,
    ImportWarning,
    OperatorRead,
    OutboxRead,
    SchemesExtend,
    SchemesExtended,
    TemplateRead,
    TokenCreated,
    TokenRead,
    WebhookCreated,
    WebhookRead,
    WebhookSet,
    operator_read,
)
from api.audit_query import (
    HoldRefParam,
    ObjectIdParam,
    ObjectTypeParam,
    SinceParam,
    UntilParam,
)
from api.auth import requires_admin
from api.body import NUL_IN_TEXT
from api.routing import delete, get, patch, post, put
from api.schemas import PoolRead, pool_read
from api.staff.schemas import FacilityDetail, facility_detail, landline_warnings
from api.taskforce.schemas import tf_area
from capacity import audit, health_rules, registry
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.commands import (
    FacilityCreate,
    FacilityUpdate,
    OperatorCreate,
    OperatorUpdate,
    PoolCreate,
    PoolUpdate,
    StatusChange,
    TokenCreate,
    check_future,
)
from capacity.crypto import Address, AddressCipher
from capacity.db import Database
from capacity.errors import InvalidInput, NotFound
from capacity.importer import import_csv
from capacity.models import Alert
from capacity.settings import Settings
from capacity.templates import TEMPLATES
from clients import webhooks
from placement import holds_service, standing_service


def _webhook_read(v: webhooks.EndpointView) -> WebhookRead:
    return WebhookRead(
        operator_id=v.operator_id,
        operator=v.operator,
        url=v.url,
        created_at=v.created_at,
        pending=v.pending,
        delivered=v.delivered,
        failed=v.failed,
        last_delivered_at=v.last_delivered_at,
        last_failed_at=v.last_failed_at,
        last_error=v.last_error,
    )


def _token_read(tok, op) -> TokenRead:  # type: ignore[no-untyped-def]
    return TokenRead(
        id=tok.id,
        operator=op.name,
        role=tok.role,
        prefix=tok.prefix,
        label=tok.label,
        created_at=tok.created_at,
        expires_at=tok.expires_at,
        revoked_at=tok.revoked_at,
    )


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [requires_admin]

    # ---------------------------------------------------------------- operators and tokens
    @post("/operators", summary="Register an operator")
    async def create_operator(
        self,
        data: JSONBody[OperatorCreate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> OperatorRead:
        op = await registry.create_operator(
            db,
            name=data.name,
            kind=data.kind,
            actor=actor,
            now=clock.now(),
            home_municipality_nis=data.home_municipality_nis,
        )
        return operator_read(op)

    @patch(
        "/operators/{operator_id:int}",
        summary="Set or clear an operator's home area (a police zone's municipality)",
    )
    async def update_operator(
        self,
        operator_id: FromPath[int],
        data: JSONBody[OperatorUpdate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> OperatorRead:
        op = await registry.set_operator_home(
            db, operator_id, data.home_municipality_nis, actor=actor, now=clock.now()
        )
        return operator_read(op)

    @get("/operators", summary="List operators")
    async def list_operators(self, db: NamedDependency[Database]) -> list[OperatorRead]:
        return [operator_read(o) for o in await registry.list_operators(db)]

    @post("/tokens", summary="Create a token (shown once in the response)")
    async def create_token(
        self,
        data: JSONBody[TokenCreate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> TokenCreated:
        now = clock.now()
        check_future(data.expires_at, now, "expiresAt")
        clear, tok = await registry.create_token(
            db,
            operator=data.operator,
            role=data.role,
            actor=actor,
            now=now,
            label=data.label,
            expires_at=data.expires_at,
        )
        return TokenCreated(
            token=clear,
            id=tok.id,
            operator=data.operator,
            role=tok.role,
            prefix=tok.prefix,
            label=tok.label,
            created_at=tok.created_at,
            expires_at=tok.expires_at,
            revoked_at=None,
        )

    @get("/tokens", summary="List tokens (never the tokens themselves)")
    async def list_tokens(self, db: NamedDependency[Database]) -> list[TokenRead]:
        return [_token_read(t, o) for t, o in await registry.list_tokens(db)]

    @post("/tokens/{token_id:int}/revoke", status_code=204, summary="Revoke a token")
    async def revoke_token(
        self,
        token_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        state: State,
    ) -> None:
        await registry.revoke_token(db, token_id=token_id, actor=actor, now=clock.now())
        state.auth_cache.clear()  # effective at once in this process

    # ---------------------------------------------------------------- facilities
    @get("/policy-templates", summary="Policy templates for fast onboarding")
    async def templates(self) -> list[TemplateRead]:
        return [
            TemplateRead(
                name=t.name,
                title=t.title,
                kind=t.kind,
                secret_address=t.secret_address,
                policy=t.policy,
                handover_protocol=t.handover_protocol,
            )
            for t in TEMPLATES.values()
        ]

    @post("/facilities", summary="Register a facility (with a template, pools and address)")
    async def create_facility(
        self,
        data: Annotated[
            FacilityCreate,
            Body(examples=[Example(summary="A secret refuge with 8 beds", value=FACILITY_EXAMPLE)]),
        ],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
        settings: NamedDependency[Settings],
    ) -> FacilityDetail:
        now = clock.now()
        view = await registry.create_facility(db, data, actor=actor, now=now, cipher=cipher)
        return facility_detail(view, settings, now)

    @post(
        "/facilities/import",
        request_max_body_size=5_000_000,
        summary="Bulk import from a CSV file sent as text/csv (all rows or none)",
        description="Columns are documented in the README (Onboarding in bulk).",
    )
    async def import_facilities(
        self,
        request: Request,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],  # type: ignore[type-arg]
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
    ) -> ImportResult:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("The CSV file must be UTF-8.") from exc
        if "\x00" in text:  # stored on SQLite, refused by PostgreSQL: refused on both
            raise InvalidInput(NUL_IN_TEXT)
        ids = await import_csv(db, text, actor=actor, now=clock.now(), cipher=cipher)
        warnings = [
            ImportWarning(facility_id=i, alias=alias, code=w.code, message=w.message)
            for i, alias, zone in await registry.secret_landlines(db, ids)
            for w in landline_warnings(zone)
        ]
        return ImportResult(imported=len(ids), facility_ids=ids, warnings=warnings)

    @get("/facilities", summary="All facilities (no addresses)")
    async def list_facilities(
        self,
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> list[FacilityDetail]:
        now = clock.now()
        return [facility_detail(v, settings, now) for v in await registry.list_facilities(db)]

    @get("/facilities/{facility_id:int}", summary="One facility (no address)")
    async def get_facility(
        self,
        facility_id: FromPath[int],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> FacilityDetail:
        return facility_detail(await registry.get_facility(db, facility_id), settings, clock.now())

    @patch("/facilities/{facility_id:int}", summary="Change a facility")
    async def update_facility(
        self,
        facility_id: FromPath[int],
        data: JSONBody[FacilityUpdate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        cipher: NamedDependency[AddressCipher],
    ) -> FacilityDetail:
        now = clock.now()
        view = await registry.update_facility(
            db, facility_id, data, actor=actor, now=now, cipher=cipher
        )
        return facility_detail(view, settings, now)

    @post(
        "/schemes/extend",
        status_code=200,
        summary="Extend temporary schemes in one go (R07)",
        description=(
            "Every facility with a planned end before `plannedEnd` (and, if given, of this "
            "`operator`, this `kind`, in this area: `BE`, a region, province, arrondissement or "
            "municipality NIS code) gets `plannedEnd`; each keeps its first planned end and "
            "counts the extension (`firstPlannedEnd`, `extensions` on the facility). Audited "
            "per facility as `facility.extended`."
        ),
    )
    async def extend_schemes(
        self,
        data: JSONBody[SchemesExtend],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> SchemesExtended:
        ids = await registry.extend_schemes(
            db,
            planned_end=data.planned_end,
            operator=data.operator,
            kind=data.kind,
            area_nis=data.area_nis,
            actor=actor,
            now=clock.now(),
        )
        return SchemesExtended(extended=len(ids), facility_ids=ids)

    @put("/facilities/{facility_id:int}/status", summary="Set a facility's operational status")
    async def set_status(
        self,
        facility_id: FromPath[int],
        data: JSONBody[StatusChange],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> FacilityDetail:
        now = clock.now()
        # a compromised location declines the holds still held there (households on their way)
        view = await holds_service.set_facility_status(db, facility_id, data, actor=actor, now=now)
        # lifted or reopened: the oldest request in line gets it before any search (as a
        # reopening by the staff does)
        await standing_service.run_round(db, settings, now=now)
        return facility_detail(view, settings, now)

    @get("/facilities/{facility_id:int}/address", summary="Read the address (audited)")
    async def get_address(
        self,
        facility_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
    ) -> Address:
        addr = await registry.read_address(
            db, facility_id, actor=actor, now=clock.now(), cipher=cipher
        )
        if addr is None:
            raise NotFound("This facility has no address on file.")
        return addr

    @put(
        "/facilities/{facility_id:int}/address",
        status_code=204,
        summary="Set the address (encrypted at rest)",
    )
    async def set_address(
        self,
        facility_id: FromPath[int],
        data: JSONBody[Address],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
        municipality_nis: Annotated[
            str | None,
            QueryParameter(
                name="municipalityNis",
                pattern=r"^\d{5}$",
                description=(
                    "A relocation: the facility moves to this municipality (NIS code) with its "
                    "new address, in one step."
                ),
            ),
        ] = None,
    ) -> None:
        await registry.set_address(
            db,
            facility_id,
            data,
            actor=actor,
            now=clock.now(),
            cipher=cipher,
            municipality_nis=municipality_nis,
        )

    @post("/facilities/{facility_id:int}/pools", summary="Add a pool")
    async def create_pool(
        self,
        facility_id: FromPath[int],
        data: JSONBody[PoolCreate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> PoolRead:
        now = clock.now()
        pool = await registry.create_pool(db, facility_id, data, actor=actor, now=now)
        view = await registry.get_facility(db, facility_id)
        return pool_read(pool, view.facility, settings, now)

    @patch("/pools/{pool_id:int}", summary="Change a pool's description (not its counts)")
    async def update_pool(
        self,
        pool_id: FromPath[int],
        data: JSONBody[PoolUpdate],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
    ) -> PoolRead:
        now = clock.now()
        pool = await registry.update_pool(db, pool_id, data, actor=actor, now=now)
        view = await registry.get_facility(db, pool.facility_id)
        return pool_read(pool, view.facility, settings, now)

    # ---------------------------------------------------------------- audit and alerts
    @get(
        "/audit",
        summary="The audit log, newest first",
        description=(
            "Every entry says who (`actorOperatorId` and `actorOperator`, `actorRole`, "
            "`actorTokenId`; a night-worker link's entries have role `link` and the "
            "link's id as `objectId`), what (`action`), when (`at`, UTC) and on what "
            "(`objectType`, `objectId`, `facilityId`). Filters combine. Newest first: to page "
            "back, pass the `id` of the last entry seen as `beforeId` (entries written "
            "meanwhile do not shift the pages)."
        ),
    )
    async def audit_log(
        self,
        db: NamedDependency[Database],
        facility_id: Annotated[int | None, QueryParameter(name="facilityId", ge=1)] = None,
        action: Annotated[str | None, Parameter(max_length=64)] = None,
        token_id: Annotated[
            int | None,
            QueryParameter(
                name="tokenId",
                ge=1,
                description="what one token did (e.g. one that may have leaked): its id in "
                "`GET /admin/tokens`",
            ),
        ] = None,
        operator_id: Annotated[
            int | None,
            QueryParameter(name="operatorId", ge=1, description="what one operator's people did"),
        ] = None,
        hold_ref: HoldRefParam = None,
        object_type: ObjectTypeParam = None,
        object_id: ObjectIdParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        before_id: Annotated[
            int | None,
            QueryParameter(
                name="beforeId", ge=1, description="older entries: the last `id` of a page"
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[AuditRead]:
        start, end = audit_query.window(since, until)
        rows = await audit.entries(
            db,
            audit.Filter(
                facility_id=facility_id,
                action=action,
                token_id=token_id,
                operator_id=operator_id,
                object_type=object_type,
                object_id=object_id,
                hold_ref=audit_query.hold_ref(hold_ref),
                since=start,
                until=end,
                before_id=before_id,
            ),
            limit=limit,
        )
        return [
            AuditRead(
                id=r.id,
                at=r.at,
                actor_operator_id=r.actor_operator_id,
                actor_operator=name,
                actor_token_id=r.actor_token_id,
                actor_role=r.actor_role,
                action=r.action,
                object_type=r.object_type,
                object_id=r.object_id,
                facility_id=r.facility_id,
                detail=r.detail,
            )
            for r, name in rows
        ]

    @get("/alerts", summary="Alerts for admins (e.g. location compromised)")
    async def alerts(
        self,
        db: NamedDependency[Database],
        include_acknowledged: Annotated[bool, QueryParameter(name="includeAcknowledged")] = False,
    ) -> list[AlertRead]:
        async with db.read() as s:
            q = select(Alert).order_by(Alert.id.desc())
            if not include_acknowledged:
                q = q.where(Alert.acknowledged_at.is_(None))
            rows = (await s.scalars(q)).all()
        return [
            AlertRead(
                id=a.id,
                at=a.at,
                kind=a.kind,
                facility_id=a.facility_id,
                message=a.message,
                acknowledged_at=a.acknowledged_at,
            )
            for a in rows
        ]

    @post("/alerts/{alert_id:int}/acknowledge", status_code=204, summary="Acknowledge an alert")
    async def ack(
        self,
        alert_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> None:
        async with db.write() as s:
            if not await registry.acknowledge_alerts(
                s, Alert.id == alert_id, actor=actor, now=clock.now()
            ):
                raise NotFound("No such unacknowledged alert.")

    # ---------------------------------------------------------------- area health conditions
    @get(
        "/health-conditions",
        summary="Admission conditions switched on for whole areas (e.g. a negative test)",
    )
    async def list_health_conditions(
        self, db: NamedDependency[Database]
    ) -> list[HealthConditionRead]:
        return [_health_read(c) for c in await health_rules.list_conditions(db)]

    @put(
        "/health-conditions/{area_nis:str}/{condition:str}",
        summary="Switch an admission condition on for every place of an area",
        description="`areaNis`: `BE` (the whole country), a region, province, arrondissement "
        "or municipality NIS code; `condition`: `negative_test` or `medical_clearance`. "
        "Places in the area then carry the condition on top of their own, shown to "
        "requesters as a condition to meet with each option (never a silent exclusion). "
        "`until` (optional): when the measure ends; it is then switched off within a minute "
        "(audited as `health_condition.lapsed`). Again with the same area and condition: "
        "replaces the reason and the end. Audited.",
    )
    async def set_health_condition(
        self,
        area_nis: FromPath[str],
        condition: FromPath[str],
        data: JSONBody[HealthConditionSet],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> Response[HealthConditionRead]:
        view, created = await health_rules.set_condition(
            db,
            area_nis,
            condition,
            reason=data.reason,
            until=data.until,
            actor=actor,
            now=clock.now(),
        )
        return Response(_health_read(view), status_code=201 if created else 200)

    @delete(
        "/health-conditions/{area_nis:str}/{condition:str}",
        status_code=204,
        summary="Switch an area's admission condition off (each place keeps its own)",
    )
    async def remove_health_condition(
        self,
        area_nis: FromPath[str],
        condition: FromPath[str],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> None:
        await health_rules.remove_condition(db, area_nis, condition, actor=actor, now=clock.now())

    # ---------------------------------------------------------------- webhooks
    @put(
        "/operators/{operator_id:int}/webhook",
        summary="Register or change a requester operator's webhook (secret shown once)",
        description="The first registration (or `rotateSecret: true`) generates a signing "
        "secret, returned in clear in this response only; otherwise `secret` is null and the "
        "existing secret is kept.",
    )
    async def set_webhook(
        self,
        operator_id: FromPath[int],
        data: JSONBody[WebhookSet],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
    ) -> WebhookCreated:
        view, secret = await webhooks.set_endpoint(
            db,
            operator=operator_id,
            url=data.url,
            rotate_secret=data.rotate_secret,
            actor=actor,
            now=clock.now(),
            cipher=cipher,
        )
        return WebhookCreated(**msgspec.structs.asdict(_webhook_read(view)), secret=secret)

    @get(
        "/operators/{operator_id:int}/webhook",
        summary="An operator's webhook and its delivery figures (never the secret)",
    )
    async def get_webhook(
        self, operator_id: FromPath[int], db: NamedDependency[Database]
    ) -> WebhookRead:
        return _webhook_read(await webhooks.get_endpoint(db, operator_id))

    @delete(
        "/operators/{operator_id:int}/webhook",
        status_code=204,
        summary="Remove an operator's webhook (undelivered messages are marked failed)",
    )
    async def delete_webhook(
        self,
        operator_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> None:
        await webhooks.delete_endpoint(db, operator=operator_id, actor=actor, now=clock.now())

    @get("/webhooks", summary="All webhook endpoints with delivery figures")
    async def list_webhooks(self, db: NamedDependency[Database]) -> list[WebhookRead]:
        return [_webhook_read(v) for v in await webhooks.list_endpoints(db)]

    @get("/webhooks/outbox", summary="Webhook deliveries, newest first (e.g. failed ones)")
    async def outbox(
        self,
        db: NamedDependency[Database],
        status: Annotated[
            Literal["pending", "delivered", "failed"] | None, Parameter(required=False)
        ] = None,
        operator_id: Annotated[int | None, QueryParameter(name="operatorId", ge=1)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[OutboxRead]:
        return [
            OutboxRead(
                id=m.id,
                operator_id=m.operator_id,
                operator=m.operator,
                event=m.event,
                ref=m.ref,
                state=m.state,
                status=m.status,
                created_at=m.created_at,
                attempts=m.attempts,
                next_attempt_at=m.next_attempt_at,
                delivered_at=m.delivered_at,
                failed_at=m.failed_at,
                last_error=m.last_error,
            )
            for m in await webhooks.list_outbox(
                db, status=status, operator_id=operator_id, limit=limit
            )
        ]

    @post(
        "/webhooks/outbox/{message_id:int}/retry",
        status_code=204,
        summary="Queue a failed delivery again, with a fresh retry schedule",
    )
    async def retry_delivery(
        self,
        message_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> None:
        await webhooks.retry_failed(db, message_id=message_id, actor=actor, now=clock.now())


def _health_read(c: health_rules.AreaCondition) -> HealthConditionRead:
    return HealthConditionRead(
        area=tf_area(c.area_nis),
        condition=c.condition,
        reason=c.reason,
        created_at=c.created_at,
        updated_at=c.updated_at,
        until=c.until,
    )
