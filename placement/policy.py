"""A facility's access rules, as data (DESIGN §1 "access policy"; REQUIREMENTS R08-R17).

Pure msgspec Structs: no I/O. Stored as JSON on the facility row; camelCase on the wire.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Gender = Literal["female", "male", "nonbinary"]
ChildGender = Literal["female", "male", "nonbinary", "unknown"]
Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}$", examples=["fr"])]
Specialisation = Literal[
    "ipv",
    "sexual_violence",
    "family_violence",
    "trafficking",
    "youth",
    "lgbtqi",
    "elderly",
    "homelessness",
    "disability",
    "migrants",
]
NeedCategory = Literal[
    "ipv",
    "sexual_violence",
    "family_violence",
    "trafficking",
    "homelessness",
    "other",
]
#: Who asks for a place (R18): police zones, helplines (1712, 0800 30 030), CPAS/OCMW, shelter
#: operators and hotel partners, CAW welfare centres, family justice centres (``fjc``), sexual
#: assault care centres (``sac``: CPVS/ZSG) and on-call prosecutors. A place may require a
#: referral from some of them. Relay points (pharmacies...) are deliberately not here.
RequesterKind = Literal[
    "police",
    "helpline",
    "cpas",
    "shelter_operator",
    "hotel_partner",
    "caw",
    "fjc",
    "sac",
    "prosecutor",
]
Cost = Literal["free", "paying", "income_based"]
HealthCondition = Literal["negative_test", "medical_clearance"]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["18:00"])]
Age = Annotated[int, msgspec.Meta(ge=0, le=17)]
SmallCount = Annotated[int, msgspec.Meta(ge=0, le=50)]


class AdmissionWindow(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """An intake window in Belgian local time. ``days``: 0 = Monday ... 6 = Sunday.

    A window whose end is before its start runs past midnight (e.g. 20:00-08:00).
    """

    days: list[Annotated[int, msgspec.Meta(ge=0, le=6)]] = msgspec.field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6]
    )
    start: HHMM
    end: HHMM


class AccessPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Who a facility takes, and on what terms. Defaults describe a generic open shelter."""

    low_threshold: bool = False
    accepts_undocumented: bool = False
    requires_income: bool = False
    cost: Cost = "free"
    genders: list[Gender] = msgspec.field(default_factory=lambda: ["female", "male", "nonbinary"])
    accepts_children: bool = True
    max_children: SmallCount | None = None
    child_min_age: Age = 0
    child_max_age: Age = 17
    max_boy_age: Age | None = None
    min_adult_age: Annotated[int, msgspec.Meta(ge=12, le=25)] = 18
    accepts_adolescents_alone: bool = False
    specialisations: list[Specialisation] = msgspec.field(default_factory=list)
    wheelchair_accessible: bool = False
    accepts_pets: bool = False
    languages: list[Language] = msgspec.field(default_factory=lambda: ["fr"])
    interpreters_available: bool = False
    max_stay_nights: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    admission_hours: list[AdmissionWindow] | None = None  # None = 24/7
    referral_required_from: list[RequesterKind] = msgspec.field(default_factory=list)
    health_conditions: list[HealthCondition] = msgspec.field(default_factory=list)
    beds_for_households: bool = True  # may a household take several beds of one bed pool?
    # may a household too large for one room take several rooms / family rooms of one pool
    # (side by side, at the same place: a mother with five children in two family rooms)?
    rooms_for_households: bool = False
    max_hold_minutes: Annotated[int, msgspec.Meta(ge=15, le=24 * 60)] | None = None


#: A change to a policy: the fields given replace the base policy's, the others are kept (JSON
#: merge-patch semantics; ``null`` sets a nullable field to "no limit"). Creating a facility
#: applies it over the template's policy (or the defaults); editing one, over its current
#: policy. Built from ``AccessPolicy``'s fields so the two cannot drift apart.
PolicyPatch = msgspec.defstruct(
    "PolicyPatch",
    [
        (f.name, f.type | msgspec.UnsetType, msgspec.UNSET)  # type: ignore[operator]
        for f in msgspec.structs.fields(AccessPolicy)
    ],
    kw_only=True,
    forbid_unknown_fields=True,
    rename="camel",
    module=__name__,
)
PolicyPatch.__doc__ = (
    "Access-policy fields to set; fields left out keep the template's (on creation) or the "
    "facility's current value (on edit)."
)


def apply_patch(base: AccessPolicy, patch: msgspec.Struct) -> AccessPolicy:
    """``base`` with the fields ``patch`` gives. ``ValueError`` if the result contradicts
    itself (each field was checked on decoding; the pairs are checked here)."""
    given = {
        name: value
        for name in patch.__struct_fields__
        if (value := getattr(patch, name)) is not msgspec.UNSET
    }
    policy = msgspec.structs.replace(base, **given)
    if policy.child_min_age > policy.child_max_age:
        raise ValueError(
            f"childMinAge ({policy.child_min_age}) is above childMaxAge ({policy.child_max_age})."
        )
    return policy


def patch_of(policy: AccessPolicy) -> msgspec.Struct:
    """A patch that gives every field of ``policy`` (sets the policy as a whole)."""
    return PolicyPatch(**{name: getattr(policy, name) for name in policy.__struct_fields__})


def policy_from_json(data: object) -> AccessPolicy:
    return msgspec.convert(data, AccessPolicy)


def policy_to_json(policy: AccessPolicy) -> dict[str, object]:
    return msgspec.to_builtins(policy)
