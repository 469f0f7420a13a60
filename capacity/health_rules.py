"""Admission conditions switched on for whole areas (R16).

In an epidemic, a province or a region may ask every shelter to admit only people with a
negative test. Rather than editing every place's access policy (and having to remember which
conditions were whose when the measure ends), an admin switches the condition on for an area:
the whole country ("BE"), a region, a province, an arrondissement or a municipality. Every
place in it then carries the condition on top of its own, as a **condition to meet** shown
with each option (warning ``health_condition_to_meet``), never a silent exclusion. Switching
it off restores each place's own conditions. A measure may have an end (``until``): the
``health_condition_lapse`` job then switches it off within a minute, audited as
``health_condition.lapsed``, so a provincial measure is not forgotten for months. Every change
is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import get_args

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from capacity import audit
from capacity.areas import areas
from capacity.audit import SYSTEM, Actor
from capacity.clock import utc_iso
from capacity.commands import UNTIL_IN_PAST, check_future
from capacity.db import Database
from capacity.errors import InvalidInput, NotFound, UnknownArea
from capacity.models import AreaHealthCondition
from placement.policy import HealthCondition

COUNTRY = "BE"
CONDITIONS: tuple[str, ...] = get_args(HealthCondition)


@dataclass(frozen=True)
class AreaCondition:
    area_nis: str
    condition: str
    reason: str
    created_at: datetime
    updated_at: datetime
    until: datetime | None = None


def _view(row: AreaHealthCondition) -> AreaCondition:
    return AreaCondition(
        row.area_nis, row.condition, row.reason, row.created_at, row.updated_at, row.until
    )


def check_area(code: str) -> str:
    """The area's code as stored (a pre-2025 municipality code mapped forward)."""
    idx = areas()
    if code == COUNTRY or code in idx.areas:
        return code
    if code in idx.municipalities or code in idx.merged_from:
        return idx.municipality(code).nis
    raise UnknownArea(f"{code!r} is not a known Belgian area code.", field="areaNis")


def check_condition(condition: str) -> str:
    if condition not in CONDITIONS:
        raise InvalidInput(f"condition must be one of {', '.join(CONDITIONS)}.", field="condition")
    return condition


async def set_condition(
    db: Database,
    area_nis: str,
    condition: str,
    *,
    reason: str,
    actor: Actor,
    now: datetime,
    until: datetime | None = None,
) -> tuple[AreaCondition, bool]:
    """Switch a condition on for an area (or change its reason and end); True if it is new.
    ``until``: when it ends by itself (None: until switched off). Two admins switching it on at
    once: one inserts, the other (retried) updates."""
    area_nis, condition = check_area(area_nis), check_condition(condition)
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise InvalidInput("Give a reason of 1 to 200 characters.", field="reason")
    check_future(until, now, "until", UNTIL_IN_PAST)
    for attempt in range(2):
        try:
            async with db.write() as s:
                # Locked: the lapse job may be deleting this very row (an admin extending a
                # measure as it ends); it then waits, and re-checks ``until`` after us.
                row = await s.scalar(
                    select(AreaHealthCondition)
                    .where(
                        AreaHealthCondition.area_nis == area_nis,
                        AreaHealthCondition.condition == condition,
                    )
                    .with_for_update()
                )
                created = row is None
                if row is None:
                    row = AreaHealthCondition(
                        area_nis=area_nis,
                        condition=condition,
                        reason=reason,
                        created_at=now,
                        updated_at=now,
                        created_by_operator_id=actor.operator_id,
                        until=until,
                    )
                    s.add(row)
                    await s.flush()  # a twin that inserted first: IntegrityError, retried
                else:
                    row.reason, row.updated_at, row.until = reason, now, until
                await audit.record(
                    s,
                    actor=actor,
                    at=now,
                    action="health_condition.set",
                    object_type="area",
                    object_id=area_nis,
                    detail={
                        "condition": condition,
                        "reason": reason,
                        "new": created,
                        "until": None if until is None else utc_iso(until),
                    },
                )
            return _view(row), created
        except (IntegrityError, StaleDataError):  # a twin inserted it, or the job removed it
            if attempt:
                raise
    raise AssertionError("unreachable")


async def remove_condition(
    db: Database, area_nis: str, condition: str, *, actor: Actor, now: datetime
) -> None:
    """Switch it off; 404 if it is not on (also for the second of two admins at once)."""
    area_nis, condition = check_area(area_nis), check_condition(condition)
    async with db.write() as s:
        gone = await s.execute(
            delete(AreaHealthCondition).where(
                AreaHealthCondition.area_nis == area_nis,
                AreaHealthCondition.condition == condition,
            )
        )
        if not gone.rowcount:
            raise NotFound("This condition is not switched on for this area.")
        await audit.record(
            s,
            actor=actor,
            at=now,
            action="health_condition.remove",
            object_type="area",
            object_id=area_nis,
            detail={"condition": condition},
        )


async def lapse_due(db: Database, *, now: datetime) -> list[tuple[str, str]]:
    """Switch off every condition whose ``until`` has passed, one ``health_condition.lapsed``
    audit row each; returns (area, condition) pairs. Idempotent, and safe in two processes at
    once: one DELETE ... RETURNING decides (PostgreSQL re-checks rows a concurrent run locked
    and finds them gone; SQLite serialises writers), and only the rows it returns are
    audited."""
    due = (AreaHealthCondition.until.is_not(None), AreaHealthCondition.until <= now)
    async with db.read() as s:  # nothing due (nearly always): no write transaction
        if await s.scalar(select(AreaHealthCondition.id).where(*due).limit(1)) is None:
            return []
    async with db.write() as s:
        gone = (
            await s.execute(
                delete(AreaHealthCondition)
                .where(*due)
                .returning(
                    AreaHealthCondition.area_nis,
                    AreaHealthCondition.condition,
                    AreaHealthCondition.until,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        for area_nis, condition, until in sorted(gone):
            await audit.record(
                s,
                actor=SYSTEM,
                at=now,
                action="health_condition.lapsed",
                object_type="area",
                object_id=area_nis,
                detail={"condition": condition, "until": utc_iso(until)},
            )
    return sorted((a, c) for a, c, _u in gone)


async def list_conditions(db: Database) -> list[AreaCondition]:
    async with db.read() as s:
        rows = await s.scalars(
            select(AreaHealthCondition).order_by(
                AreaHealthCondition.area_nis, AreaHealthCondition.condition
            )
        )
        return [_view(r) for r in rows.all()]


async def by_area(s: AsyncSession) -> dict[str, frozenset[str]]:
    """Area code -> the conditions switched on for it (for building facility snapshots)."""
    out: dict[str, set[str]] = {}
    for area_nis, condition in (
        await s.execute(select(AreaHealthCondition.area_nis, AreaHealthCondition.condition))
    ).all():
        out.setdefault(area_nis, set()).add(condition)
    return {k: frozenset(v) for k, v in out.items()}


@cache
def _judged_areas(municipality_nis: str, secret: bool) -> frozenset[str]:
    """The area codes whose conditions apply to a place in this municipality: every area it
    lies in; for a secret address also every municipality of its arrondissement. A secret
    place is judged by its arrondissement, never its municipality (as ``placement.matcher``
    does for distances and areas to avoid): a condition on one municipality shown on the
    secret place there alone would name its municipality. So every secret place of the
    arrondissement carries it (a condition to meet, never an exclusion)."""
    idx = areas()
    enclosing = idx.enclosing(municipality_nis)
    if not secret:
        return frozenset(enclosing)
    arrondissement = idx.municipality(municipality_nis).arrondissement_nis
    return frozenset((*enclosing, *idx.children_of(arrondissement)))


def conditions_for(
    municipality_nis: str, rules: Mapping[str, frozenset[str]], *, secret: bool = False
) -> frozenset[str]:
    """The area conditions that apply to a place in this municipality (``secret``: a place
    with a secret address, judged by its arrondissement)."""
    if not rules:
        return frozenset()
    found: set[str] = set()
    for code in _judged_areas(municipality_nis, secret):
        found |= rules.get(code, frozenset())
    return frozenset(found)


def in_force_at(
    municipality_nis: str, rules: list[AreaCondition], *, secret: bool = False
) -> list[AreaCondition]:
    """Of ``rules`` (``list_conditions``), those in force for a place in this municipality
    (``secret``: with a secret address, as ``conditions_for``)."""
    judged = _judged_areas(municipality_nis, secret)
    return [r for r in rules if r.area_nis in judged]
