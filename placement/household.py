"""Who needs a place, and what the requester asks for (DESIGN §1 "household", "search").

Household composition only: never a name, never a contact of the person (DESIGN §2.8). Abri
never contacts the victim; the professional requester is the only contact and lives on the
hold, not here. Structs are camelCase on the wire and carry bounds and examples so the
OpenAPI schema tells client developers what is allowed.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from capacity.areas import areas
from capacity.errors import InvalidInput, UnknownArea
from placement.policy import ChildGender, Gender, HealthCondition, Language, NeedCategory

AgeBand = Literal["16-17", "18-24", "25-64", "65+"]
ResidenceStatus = Literal["documented", "undocumented", "unknown"]
Income = Literal["yes", "no", "unknown"]
NisCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5}$", examples=["21004"])]

#: Inclusive age bounds of each band, used by the minimum-adult-age rule.
AGE_BAND_BOUNDS: dict[str, tuple[int, int]] = {
    "16-17": (16, 17),
    "18-24": (18, 24),
    "25-64": (25, 64),
    "65+": (65, 120),
}


class Adult(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """One adult of the household.

    A 16-17 year old who comes without an adult is entered here with band ``16-17``: the
    facility's ``acceptsAdolescentsAlone`` rule then applies. A 16-17 year old who comes with
    a parent is better entered as a child; if entered here, the matcher treats them as a
    child aged 17 for the children rules (so a refuge that takes no boys over 12 is excluded).
    """

    gender: Annotated[Gender, msgspec.Meta(examples=["female"])]
    age_band: Annotated[AgeBand, msgspec.Meta(examples=["25-64"])] = "25-64"


class Child(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """One child (0-17). Infants count as a full place when fitting rooms."""

    age: Annotated[int, msgspec.Meta(ge=0, le=17, examples=[4])]
    gender: Annotated[ChildGender, msgspec.Meta(examples=["male"])] = "unknown"


#: The most people one search or hold can describe (the web console offers as many rows).
MAX_ADULTS = 10
MAX_CHILDREN = 15


class Household(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """The people who need a place tonight; they stay together at one facility."""

    adults: Annotated[list[Adult], msgspec.Meta(min_length=1, max_length=MAX_ADULTS)]
    children: Annotated[list[Child], msgspec.Meta(max_length=MAX_CHILDREN)] = msgspec.field(
        default_factory=list
    )
    residence_status: Annotated[ResidenceStatus, msgspec.Meta(examples=["undocumented"])] = (
        "unknown"
    )
    income: Annotated[Income, msgspec.Meta(examples=["no"])] = "unknown"
    languages: Annotated[list[Language], msgspec.Meta(max_length=10, examples=[["fr", "ar"]])] = (
        msgspec.field(default_factory=list)
    )
    wheelchair: bool = False
    pets: bool = False
    health_conditions_met: Annotated[list[HealthCondition], msgspec.Meta(max_length=5)] = (
        msgspec.field(default_factory=list)
    )

    @property
    def size(self) -> int:
        """Persons to place: every adult and every child, infants included."""
        return len(self.adults) + len(self.children)


class AvoidRadius(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Keep away from a municipality's territory by at least ``km``: every municipality
    whose territory comes within ``km`` of it is avoided too (``0``: about its neighbours, not
    all of them: Knokke-Heist borders Brugge, yet their discs are 0.2 km apart).
    Territories are taken as discs of their areas around their centroids (no boundaries
    are shipped), never as the centroids alone: Herstal borders Liège although their
    centroids are 5.6 km apart."""

    municipality_nis: NisCode
    km: Annotated[float, msgspec.Meta(ge=0, le=200, examples=[15.0])]


class AvoidAreas(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Where the perpetrator lives or works: hard exclusions, never relaxed silently.

    ``arrondissements`` also accepts a province or region code (everything inside it is
    avoided); municipality codes from before the 2025 mergers are mapped forward.
    """

    municipalities: Annotated[list[NisCode], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    arrondissements: Annotated[list[NisCode], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    radius: Annotated[list[AvoidRadius], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )


class SearchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """A household plus constraints; the matcher turns it into ranked options."""

    household: Household
    need: Annotated[NeedCategory, msgspec.Meta(examples=["ipv"])]
    nights: Annotated[int, msgspec.Meta(ge=1, le=365, examples=[7])] = 1
    preferred_municipality_nis: NisCode | None = None
    max_distance_km: Annotated[float, msgspec.Meta(gt=0, le=500, examples=[60.0])] | None = None
    avoid: AvoidAreas = msgspec.field(default_factory=AvoidAreas)
    free_only: bool = False
    episode_token: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class ResolvedAreas(msgspec.Struct, frozen=True):
    """The request's area codes, checked and mapped to 2025 municipality codes."""

    preferred: str | None
    avoid_municipalities: frozenset[str]
    avoid_radius: tuple[tuple[str, float], ...]


def validate_areas(req: SearchRequest) -> ResolvedAreas:
    """Check every NIS code of the request; raise ``UnknownArea`` naming the JSON field.

    Done before matching so a typo in an area to avoid is an error, never a silently
    ignored safety constraint (likewise a maximum distance without a preferred area raises
    ``InvalidInput``). Returns the codes resolved (pre-2025 codes mapped forward,
    arrondissements expanded to their municipalities).
    """
    idx = areas()

    def muni(code: str, field: str) -> str:
        try:
            return idx.municipality(code).nis
        except UnknownArea as exc:
            raise UnknownArea(exc.detail, field=field) from None

    if req.max_distance_km is not None and req.preferred_municipality_nis is None:
        raise InvalidInput(
            "maxDistanceKm needs preferredMunicipalityNis: a distance from where?",
            field="maxDistanceKm",
        )
    preferred = None
    if req.preferred_municipality_nis is not None:
        preferred = muni(req.preferred_municipality_nis, "preferredMunicipalityNis")
    avoid: set[str] = set()
    for i, code in enumerate(req.avoid.municipalities):
        avoid.add(muni(code, f"avoid.municipalities[{i}]"))
    for i, code in enumerate(req.avoid.arrondissements):
        field = f"avoid.arrondissements[{i}]"
        if code in idx.municipalities or code in idx.merged_from:
            raise UnknownArea(
                f"{code!r} is a municipality; put it in avoid.municipalities.", field=field
            )
        if code not in idx.areas:
            raise UnknownArea(f"{code!r} is not a known Belgian area code.", field=field)
        avoid.update(idx.children_of(code))
    radius = tuple(
        (muni(r.municipality_nis, f"avoid.radius[{i}].municipalityNis"), float(r.km))
        for i, r in enumerate(req.avoid.radius)
    )
    return ResolvedAreas(
        preferred=preferred, avoid_municipalities=frozenset(avoid), avoid_radius=radius
    )
