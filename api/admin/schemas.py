"""Admin responses. Addresses only through the explicit (audited) address route."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.schemas import Out
from placement.policy import AccessPolicy


class OperatorRead(Out, kw_only=True):
    id: int
    name: str
    kind: str
    created_at: datetime


class TokenRead(Out, kw_only=True):
    id: int
    operator: str
    role: str
    prefix: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead, kw_only=True):
    token: str  # shown once; only its hash is kept


class TemplateRead(Out, kw_only=True):
    name: str
    title: str
    kind: str
    secret_address: bool
    policy: AccessPolicy
    handover_protocol: str


class ImportResult(Out, kw_only=True):
    imported: int
    facility_ids: list[int]


class AuditRead(Out, kw_only=True):
    id: int
    at: datetime
    actor_operator_id: int | None
    actor_role: str | None
    action: str
    object_type: str
    object_id: str | None
    facility_id: int | None
    detail: dict[str, Any] | None


class AlertRead(Out, kw_only=True):
    id: int
    at: datetime
    kind: str
    facility_id: int | None
    message: str
    acknowledged_at: datetime | None
