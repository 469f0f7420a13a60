"""Belgian reference geography: municipalities (FR/NL/DE names, NIS codes) and their parents."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller
from litestar.params import FromPath, Parameter

from api.auth import requires_any
from api.routing import get
from api.schemas import AreaRef, Out, area_ref
from capacity.areas import areas


class MunicipalityRead(Out, kw_only=True):
    nis: str
    name_fr: str
    name_nl: str
    name_de: str
    postal_codes: list[str]
    arrondissement: AreaRef
    province: AreaRef
    region: AreaRef
    centroid_lat: float
    centroid_lon: float


def municipality_read(nis: str) -> MunicipalityRead:
    m = areas().municipality(nis)
    return MunicipalityRead(
        nis=m.nis,
        name_fr=m.name_fr,
        name_nl=m.name_nl,
        name_de=m.name_de,
        postal_codes=list(m.postal_codes),
        arrondissement=area_ref(m.arrondissement_nis),
        province=area_ref(m.province_nis),
        region=area_ref(m.region_nis),
        centroid_lat=m.lat,
        centroid_lon=m.lon,
    )


class AreasController(Controller):
    path = "/areas"
    tags = ["areas"]
    guards = [requires_any]

    @get("/municipalities", summary="Find municipalities by FR/NL/DE name or postal code")
    async def find(
        self,
        q: Annotated[
            str,
            Parameter(
                min_length=1,
                max_length=80,
                description=(
                    "Part of a name (FR/NL/DE, or from before the 2025 mergers), a 4-digit "
                    "postal code or a NIS code"
                ),
            ),
        ],
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    ) -> list[MunicipalityRead]:
        return [municipality_read(m.nis) for m in areas().find(q, limit=limit)]

    @get("/municipalities/{nis:str}", summary="One municipality by NIS code")
    async def municipality(self, nis: FromPath[str]) -> MunicipalityRead:
        return municipality_read(nis)

    @get("/{level:str}", summary="Regions, provinces (with Brussels-Capital) or arrondissements")
    async def by_level(
        self, level: FromPath[Literal["regions", "provinces", "arrondissements"]]
    ) -> list[AreaRef]:
        idx = areas()
        want = {"regions": "region", "provinces": "province", "arrondissements": "arrondissement"}[
            level
        ]
        out = [area_ref(a.nis) for a in idx.areas.values() if a.level == want]
        if level == "provinces":
            out.append(area_ref("04000"))
        return sorted(out, key=lambda a: a.nis)
