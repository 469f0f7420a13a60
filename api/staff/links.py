"""One-time links for night workers: issued, listed and revoked by the facility's own staff
(or an admin). The link's URL is in the issue response only; the secret sits in the URL's
fragment (``#...``), which browsers never send to a server, so it reaches no log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.auth import requires_staff_or_admin, staff_scope
from api.routing import get, post
from api.schemas import Out
from capacity import links
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.db import Database
from capacity.models import StaffLink

OPEN_PATH = "/web/link/open"


class LinkCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"\S")]
    hours: Annotated[int, msgspec.Meta(ge=1, le=links.MAX_HOURS)] = links.DEFAULT_HOURS


class LinkRead(Out, kw_only=True):
    id: int
    facility_id: int
    label: str
    state: str  # active | used | expired | revoked
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class LinkIssued(LinkRead, kw_only=True):
    """Only in the issue response: give ``url`` to the night worker; it is never shown again."""

    url: str


def link_read(link: StaffLink, now: datetime) -> LinkRead:
    return LinkRead(
        id=link.id,
        facility_id=link.facility_id,
        label=link.label,
        state=links.link_state(link, now),
        created_at=link.created_at,
        expires_at=link.expires_at,
        used_at=link.used_at,
        revoked_at=link.revoked_at,
    )


def link_url(request: Request[Any, Any, Any], secret: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}{OPEN_PATH}#{secret}"


class StaffLinkController(Controller):
    path = "/staff"
    tags = ["staff"]
    guards = [requires_staff_or_admin]

    @post(
        "/facilities/{facility_id:int}/links",
        summary="Issue a one-time link for a night worker (one facility, expiring, revocable)",
    )
    async def issue(
        self,
        facility_id: FromPath[int],
        data: JSONBody[LinkCreate],
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> LinkIssued:
        now = clock.now()
        secret, link = await links.issue(
            db,
            facility_id,
            label=data.label,
            hours=data.hours,
            actor=actor,
            now=now,
            operator_scope=staff_scope(actor),
        )
        read = link_read(link, now)
        return LinkIssued(**msgspec.structs.asdict(read), url=link_url(request, secret))

    @get("/facilities/{facility_id:int}/links", summary="Links issued for one of my facilities")
    async def list_links(
        self,
        facility_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> list[LinkRead]:
        now = clock.now()
        rows = await links.list_links(db, facility_id, operator_scope=staff_scope(actor))
        return [link_read(x, now) for x in rows]

    @post(
        "/links/{link_id:int}/revoke",
        status_code=200,
        summary="Revoke a link (also ends the web session it opened)",
    )
    async def revoke(
        self,
        link_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> LinkRead:
        now = clock.now()
        link = await links.revoke(
            db, link_id, actor=actor, now=now, operator_scope=staff_scope(actor)
        )
        return link_read(link, now)
