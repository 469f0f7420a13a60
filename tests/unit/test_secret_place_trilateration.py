"""What a series of searches learns of a secret place's municipality: nothing beyond its
arrondissement.

3dbbffc judged a secret place by its 10 km band from an avoided municipality so that "a series
of searches can no longer name a secret refuge's municipality". But the band from *every*
municipality was a fingerprint: the set of municipalities less than 10 km from a place's own is
different for 563 of Belgium's 565 municipalities, and so were the 10 km-rounded distances shown
from a few preferred areas. A secret place is now judged by figures of its arrondissement alone
(``placement.matcher._cloak``). The tests play the helpline user who searches again and again,
watching one alias; each has a control, a place whose address is not secret, which the same
searches do name.
"""

from __future__ import annotations

import pytest

from capacity.areas import areas
from placement.household import Adult, AvoidAreas, AvoidRadius, Household, SearchRequest
from placement.matcher import match
from placement.policy import AccessPolicy
from placement.snapshot import FacilitySnapshot, PoolSnapshot
from placement.synthetic import SYNTHETIC_NOW as NOW

HOME = "21009"  # Ixelles: the refuge's municipality, which the searches must not name


def _refuge(muni: str, secret: bool = True) -> FacilitySnapshot:
    return FacilitySnapshot(
        id=1,
        ref="r1",
        alias="Refuge X",
        kind="refuge",
        operator_id=1,
        municipality_nis=muni,
        policy=AccessPolicy(languages=["fr"]),
        status="open",
        secret_address=secret,
        pools=[
            PoolSnapshot(
                id=1,
                ref="r1-p",
                unit_kind="bed",
                places_per_unit=1,
                units_total=4,
                units_occupied=0,
                units_held=0,
                reported_at=NOW,
                confirmed_at=NOW,
            )
        ],
    )


def _request(**kw: object) -> SearchRequest:
    household = Household(adults=[Adult(gender="female", age_band="25-64")], languages=["fr"])
    return SearchRequest(household=household, need="ipv", nights=1, **kw)  # type: ignore[arg-type]


def _offered(muni: str, request: SearchRequest, secret: bool = True) -> list[object]:
    return match(request, [_refuge(muni, secret)], requester_kind="helpline", now=NOW).options


def _same_province(muni: str) -> list[str]:
    idx = areas()
    province = idx.municipality(muni).province_nis
    return sorted(c for c, m in idx.municipalities.items() if m.province_nis == province)


def _same_arrondissement(muni: str) -> list[str]:
    idx = areas()
    arrondissement = idx.municipality(muni).arrondissement_nis
    return sorted(
        c for c, m in idx.municipalities.items() if m.arrondissement_nis == arrondissement
    )


#: a refuge in Ixelles (Brussels), in Arlon (an arrondissement of 5) and in Ypres (8)
HOMES = [HOME, "81001", "33011"]


def _avoiding_each(muni: str, secret: bool) -> tuple[bool, ...]:
    """What the searcher sees: whether the place is offered, avoiding each municipality in turn."""
    return tuple(
        bool(_offered(muni, _request(avoid=AvoidAreas(municipalities=[c])), secret))
        for c in sorted(areas().municipalities)
    )


def _distances_from_each(muni: str, secret: bool) -> tuple[float | None, ...]:
    """One search per preferred municipality, reading the option's distanceKm."""
    out = []
    for ref in sorted(areas().municipalities):
        options = _offered(muni, _request(preferred_municipality_nis=ref), secret)
        out.append(options[0].distance_km if options else None)  # type: ignore[attr-defined]
    return tuple(out)


@pytest.mark.parametrize("home", HOMES)
def test_avoiding_one_municipality_after_another_does_not_name_a_secret_refuges_own(
    home: str,
) -> None:
    # every municipality of its arrondissement looks the same: the searcher cannot tell them apart
    observed = _avoiding_each(home, secret=True)
    alike = [m for m in _same_arrondissement(home) if _avoiding_each(m, secret=True) == observed]
    assert alike == _same_arrondissement(home), "the searches tell the refuge's municipality"
    # control: the same searches name a place whose address is not secret
    public = _avoiding_each(home, secret=False)
    named = [m for m in _same_arrondissement(home) if _avoiding_each(m, secret=False) == public]
    assert named == [home]


@pytest.mark.parametrize("home", HOMES)
def test_preferred_areas_do_not_name_a_secret_refuges_municipality(home: str) -> None:
    # by its own municipality, 4 random preferred areas named it more than half of the time
    observed = _distances_from_each(home, secret=True)
    alike = [
        m for m in _same_arrondissement(home) if _distances_from_each(m, secret=True) == observed
    ]
    assert alike == _same_arrondissement(home), "the distances tell the refuge's municipality"
    public = _distances_from_each(home, secret=False)
    named = [
        m for m in _same_arrondissement(home) if _distances_from_each(m, secret=False) == public
    ]
    assert named == [home]


def _radii_from_some(muni: str, secret: bool) -> tuple[bool, ...]:
    """Whether the place is offered, keeping 0 to 60 km away from every 10th municipality."""
    return tuple(
        bool(
            _offered(
                muni,
                _request(avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis=c, km=km)])),
                secret,
            )
        )
        for c in sorted(areas().municipalities)[::10]
        for km in range(0, 61, 5)
    )


@pytest.mark.parametrize("home", HOMES)
def test_avoid_radii_do_not_name_a_secret_refuges_municipality(home: str) -> None:
    observed = _radii_from_some(home, secret=True)
    alike = [m for m in _same_arrondissement(home) if _radii_from_some(m, secret=True) == observed]
    assert alike == _same_arrondissement(home), "the radii tell the refuge's municipality"
    public = _radii_from_some(home, secret=False)
    named = [m for m in _same_arrondissement(home) if _radii_from_some(m, secret=False) == public]
    assert len(named) < len(alike)  # control: they tell the public place's neighbours apart
