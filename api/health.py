"""Liveness and readiness (the database answers)."""

from __future__ import annotations

from litestar import Response, get

from api.schemas import Out
from capacity.db import Database


class Health(Out, kw_only=True, omit_defaults=True):
    status: str
    database: str | None = None


@get("/health/live", tags=["operations"], summary="The process is up")
async def live() -> Health:
    return Health(status="ok")


@get("/health/ready", tags=["operations"], summary="The database answers")
async def ready(db: Database) -> Response[Health]:
    try:
        await db.ping()
    except Exception:  # readiness must answer, not crash
        return Response(Health(status="unavailable", database="unreachable"), status_code=503)
    return Response(Health(status="ok", database="ok"))
