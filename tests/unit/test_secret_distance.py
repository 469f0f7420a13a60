"""R25: what searches can learn of a secret address is its arrondissement, however many
searches are made: a secret place counts as anywhere in its arrondissement (an area to avoid
sees the arrondissement's smallest gap, the distance is to its centre, shown and judged rounded
to 10 km), never by its own municipality.

A secret place used to show a distance rounded to 10 km, while its score carried the exact
distance (to 4 decimals), and a maximum distance or an avoid radius narrowed search after
search found it too: from one or two preferred areas, the municipality. Each test below has a
control: the same probe on a place whose address is not secret, which does see the exact
figure — so each test can fail.
"""

from __future__ import annotations

import itertools
import math

from capacity.areas import Municipality, areas, distance_km, territory_gap_km
from placement.household import Adult, AvoidAreas, AvoidRadius, Household, SearchRequest
from placement.matcher import SearchResult, match, match_reference
from placement.synthetic import SYNTHETIC_NOW, make_facility

FROM = "21004"  # Bruxelles: the preferred area of every search here


def _search(facilities: list, **kw: object) -> SearchResult:
    request = SearchRequest(
        household=Household(adults=[Adult(gender="female")]),
        need="ipv",
        preferred_municipality_nis=FROM,
        **kw,  # type: ignore[arg-type]
    )
    fast = match(request, facilities, requester_kind="police", now=SYNTHETIC_NOW)
    assert fast == match_reference(request, facilities, requester_kind="police", now=SYNTHETIC_NOW)
    return fast


def _two_in_one_arrondissement() -> tuple[str, str]:
    """The nearest and the farthest municipality from FROM of one arrondissement 15-60 km away,
    over 2 km apart in their distances (a secret place in either shows the same distance)."""
    idx = areas()
    here = idx.municipality(FROM)
    by_arr: dict[str, list[tuple[float, str]]] = {}
    for m in idx.municipalities.values():
        by_arr.setdefault(m.arrondissement_nis, []).append((distance_km(here, m), m.nis))
    for _arr, found in sorted(by_arr.items()):
        found.sort()
        if found[0][0] > 15 and found[-1][0] < 60 and found[-1][0] - found[0][0] > 2:
            return found[0][1], found[-1][1]
    raise AssertionError("no such arrondissement")


def _members(nis: str) -> list[Municipality]:
    idx = areas()
    arr = idx.municipality(nis).arrondissement_nis
    return [m for m in idx.municipalities.values() if m.arrondissement_nis == arr]


def _centre_km(nis: str) -> float:
    """km from FROM to the centre of nis's arrondissement (the mean of its centroids)."""
    members = _members(nis)
    lat = math.radians(sum(m.lat for m in members) / len(members))
    lon = math.radians(sum(m.lon for m in members) / len(members))
    here = areas().municipality(FROM)
    lat0, lon0 = math.radians(here.lat), math.radians(here.lon)
    h = (
        math.sin((lat - lat0) / 2) ** 2
        + math.cos(lat0) * math.cos(lat) * math.sin((lon - lon0) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _place(ref: str, nis: str, *, secret: bool) -> object:
    return make_facility(ref, nis, secret_address=secret)


def test_the_score_of_a_secret_place_tells_only_its_arrondissements_band() -> None:
    near, far = _two_in_one_arrondissement()
    result = _search([_place("s-near", near, secret=True), _place("s-far", far, secret=True)])
    a, b = sorted(result.options, key=lambda o: o.facility_ref)
    assert a.distance_km == b.distance_km
    assert a.score_parts == b.score_parts and a.score == b.score
    # control: the same two places, not secret, show their exact distances in the score
    open_ = _search([_place("o-near", near, secret=False), _place("o-far", far, secret=False)])
    c, d = sorted(open_.options, key=lambda o: o.facility_ref)
    assert c.score_parts["distance"] != d.score_parts["distance"]


def test_narrowing_the_maximum_distance_finds_only_the_arrondissements_band() -> None:
    near, far = _two_in_one_arrondissement()
    shown = max(10, round(_centre_km(near) / 10) * 10)
    for secret in (True, False):
        places = [_place("near", near, secret=secret), _place("far", far, secret=secret)]
        answers = set()
        for tenth in range(10, 700, 5):  # 1.0 to 69.5 km, half a kilometre at a time
            found = {o.facility_ref for o in _search(places, max_distance_km=tenth / 10).options}
            answers.add(frozenset(found))
            if secret:  # both or neither, and from the shown distance on
                assert found in (set(), {"near", "far"}), (tenth, found)
                assert (found == {"near", "far"}) == (tenth / 10 >= shown)
        if not secret:  # control: some maximum tells the two apart
            assert frozenset({"near"}) in answers


def test_an_avoid_radius_finds_only_the_arrondissement_and_lets_no_place_within_through() -> None:
    idx = areas()
    avoid_from = "21015"  # Schaerbeek
    # secret places at various gaps from Schaerbeek: each radius avoids a place from its
    # arrondissement's smallest gap on (it counts as anywhere in it), so every place within too
    candidates = [
        m.nis
        for m in idx.municipalities.values()
        if 3 < territory_gap_km(idx.municipality(avoid_from), m) < 45
    ][:40]
    told_apart = 0  # places avoided before their own gap: the arrondissement's was seen
    for nis in candidates:
        gap = territory_gap_km(idx.municipality(avoid_from), idx.municipality(nis))
        zone_gap = min(territory_gap_km(idx.municipality(avoid_from), m) for m in _members(nis))
        assert zone_gap <= gap
        secret = [_place("s", nis, secret=True)]
        first_avoided = None
        for quarter in range(0, 200):  # 0 to 49.75 km
            km = quarter / 4
            request = {
                "avoid": AvoidAreas(radius=[AvoidRadius(municipality_nis=avoid_from, km=km)])
            }
            offered = bool(_search(secret, **request).options)
            if km >= gap:
                assert not offered, (nis, gap, km)  # within the radius: never offered
            if not offered and first_avoided is None:
                first_avoided = km
        assert first_avoided == max(0, math.ceil(zone_gap * 4) / 4), (nis, zone_gap)
        told_apart += first_avoided < gap - 0.25
    assert told_apart > len(candidates) // 2
    # control: a place that is not secret is avoided from its exact gap on
    nis = candidates[0]
    gap = territory_gap_km(idx.municipality(avoid_from), idx.municipality(nis))
    open_ = [_place("o", nis, secret=False)]
    first = next(
        q / 4
        for q in itertools.count()
        if not _search(
            open_,
            avoid=AvoidAreas(radius=[AvoidRadius(municipality_nis=avoid_from, km=q / 4)]),
        ).options
    )
    assert gap <= first < gap + 0.25
