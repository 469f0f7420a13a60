"""Response building blocks shared by several audiences (never an address here)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from capacity.areas import areas
from capacity.availability import freshness, stale_threshold
from capacity.models import Facility, Pool
from capacity.settings import Settings


class Out(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class AreaRef(Out, kw_only=True):
    nis: str
    level: str
    name_fr: str
    name_nl: str
    name_de: str


class Location(Out, kw_only=True):
    """Where a facility sits administratively (municipality and up). Staff and admin only."""

    municipality: AreaRef
    arrondissement: AreaRef
    province: AreaRef
    region: AreaRef


def area_ref(nis: str) -> AreaRef:
    idx = areas()
    if nis in idx.municipalities:
        m = idx.municipalities[nis]
        return AreaRef(
            nis=nis, level="municipality", name_fr=m.name_fr, name_nl=m.name_nl, name_de=m.name_de
        )
    a = idx.area(nis)
    return AreaRef(
        nis=a.nis, level=a.level, name_fr=a.name_fr, name_nl=a.name_nl, name_de=a.name_de
    )


def location(municipality_nis: str) -> Location:
    m = areas().municipality(municipality_nis)
    return Location(
        municipality=area_ref(m.nis),
        arrondissement=area_ref(m.arrondissement_nis),
        province=area_ref(m.province_nis),
        region=area_ref(m.region_nis),
    )


class PoolRead(Out, kw_only=True):
    id: int
    ref: str
    label: str
    unit_kind: str
    places_per_unit: int
    units_total: int
    units_occupied: int
    units_held: int
    units_blocked: int
    units_free: int
    surge_24h: int = msgspec.field(name="surge24h")
    surge_72h: int = msgspec.field(name="surge72h")
    version: int
    last_update: datetime | None
    data_age_seconds: int | None
    stale: bool
    stale_after_minutes: int


def pool_read(pool: Pool, fac: Facility, settings: Settings, now: datetime) -> PoolRead:
    threshold = stale_threshold(fac, settings.stale_minutes)
    fr = freshness(pool, threshold_minutes=threshold, now=now)
    return PoolRead(
        id=pool.id,
        ref=pool.ref,
        label=pool.label,
        unit_kind=pool.unit_kind,
        places_per_unit=pool.places_per_unit,
        units_total=pool.units_total,
        units_occupied=pool.units_occupied,
        units_held=pool.units_held,
        units_blocked=pool.units_blocked,
        units_free=max(0, pool.units_total - pool.units_occupied - pool.units_held),
        surge_24h=pool.surge_24h,
        surge_72h=pool.surge_72h,
        version=pool.version,
        last_update=fr.last_update,
        data_age_seconds=fr.data_age_seconds,
        stale=fr.stale,
        stale_after_minutes=threshold,
    )
