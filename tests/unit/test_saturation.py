"""Small-cell suppression: no published cell covers 1..k-1 facilities (or secret ones), and no
secret facility (nor a pair) can be recovered by differencing published cells."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity.saturation import (
    ALL,
    FIG,
    NOT,
    FacilityFacts,
    Item,
    PoolFigures,
    build_cube,
    coverage_of,
    facility_figures,
    saturation_of,
    segments_of,
)
from placement.policy import AccessPolicy

# A small area tree shaped like Belgium's: a single-child province (like Brussels or Walloon
# Brabant), provinces with several arrondissements.
TREE = {
    "A11": ("BE", "R1", "P1", "A11"),
    "A12": ("BE", "R1", "P1", "A12"),
    "A13": ("BE", "R1", "P1", "A13"),
    "A21": ("BE", "R1", "P2", "A21"),
    "A22": ("BE", "R1", "P2", "A22"),
    "A31": ("BE", "R2", "P3", "A31"),
}
FLAGS = ("f1", "f2")
CATS = ("refuge", "crisis_hotel", "cpas_place")

item_strategy = st.tuples(
    st.sampled_from(sorted(TREE)),
    st.sampled_from(CATS),
    st.frozensets(st.sampled_from(FLAGS)),
    st.booleans(),
    st.integers(0, 40),
)


def make_items(raw: list[tuple[str, str, frozenset[str], bool, int]]) -> list[Item]:
    return [
        Item(key=i, path=TREE[a], category=c, flags=f, secret=s, values=(v, 1))
        for i, (a, c, f, s, v) in enumerate(raw)
    ]


def in_span(rows: list[list[Fraction]], target: list[Fraction]) -> bool:
    """Exact rational Gaussian elimination: is ``target`` a combination of ``rows``?"""
    basis: list[tuple[int, list[Fraction]]] = []

    def reduce(v: list[Fraction]) -> list[Fraction]:
        v = list(v)
        for pivot, b in basis:
            if v[pivot] != 0:
                f = v[pivot] / b[pivot]
                v = [x - f * y for x, y in zip(v, b, strict=True)]
        return v

    for r in rows:
        v = reduce(r)
        nz = next((i for i, x in enumerate(v) if x != 0), None)
        if nz is not None:
            basis.append((nz, v))
    return all(x == 0 for x in reduce(target))


def published_rows(cube, secret_ids: list[int]) -> list[list[Fraction]]:  # type: ignore[no-untyped-def]
    rows = []
    for c in cube.cells.values():
        if c.virtual or c.suppressed or c.secret == 0:
            continue
        members = set(c.members)
        rows.append([Fraction(1 if i in members else 0) for i in range(len(secret_ids))])
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(item_strategy, min_size=1, max_size=14), k=st.integers(2, 4))
def test_no_small_cell_is_published_or_derivable(raw, k) -> None:  # type: ignore[no-untyped-def]
    items = make_items(raw)
    cube = build_cube(items, k=k, flags=FLAGS, n_values=2)
    # 1. Primary: nothing published covers 1..k-1 facilities, or 1..k-1 secret ones.
    for c in cube.cells.values():
        if c.virtual or c.suppressed:
            continue
        assert c.items == 0 or c.items >= k, c
        assert c.secret == 0 or c.secret >= k, c
    # 2. Differencing: a known parent minus its published children never isolates a group of
    #    fewer than k secret facilities (so a lone suppressed child always has company).
    for c in cube.cells.values():
        if c.virtual or c.suppressed or c.level == "arrondissement":
            continue
        depth = ("country", "region", "province").index(c.level)
        child_level = ("region", "province", "arrondissement")[depth]
        kids = [
            d
            for d in cube.cells.values()
            if d.level == child_level
            and d.category == c.category
            and d.flag == c.flag
            and items_path_parent(items, d, depth) == c.nis
        ]
        hidden = [d for d in kids if d.suppressed and d.secret > 0]
        assert not hidden or sum(d.secret for d in hidden) >= k
        assert len(hidden) != 1
    # 3. Exact audit, independent of the engine's own: no secret facility and no pair of them
    #    is a linear combination of published cells (subtracting, adding, across levels,
    #    kinds and segments).
    secret_ids = [it.key for it in items if it.secret]
    if not secret_ids:
        return
    rows = published_rows(cube, secret_ids)
    n = len(secret_ids)
    for i in range(n):
        e = [Fraction(0)] * n
        e[i] = Fraction(1)
        assert not in_span(rows, e), f"secret facility {i} recoverable"
        if k > 2:
            for j in range(i + 1, n):
                e2 = list(e)
                e2[j] = Fraction(1)
                assert not in_span(rows, e2), f"pair {i},{j} recoverable"
    # 4. and no group of up to k - 1 of them (floating point, every subset)
    assert small_sets_recoverable(cube, secret_ids, k) == []


def items_path_parent(items: list[Item], cell, depth: int) -> str | None:  # type: ignore[no-untyped-def]
    for it in items:
        if it.path[depth + 1] == cell.nis:
            return it.path[depth]
    return None


def test_differencing_attack_on_a_lone_refuge_is_blocked() -> None:
    """Province P1: one secret refuge in A11, three in A12, three in A13. A11 alone is
    suppressed; publishing P1, A12 and A13 would give A11 = P1 - A12 - A13. A second child
    must be suppressed, and the pair together must hold at least k secret facilities."""
    raw = [("A11", "refuge", frozenset(), True, 5)]
    raw += [("A12", "refuge", frozenset(), True, 2)] * 3
    raw += [("A13", "refuge", frozenset(), True, 3)] * 4
    cube = build_cube(make_items(raw), k=3, flags=FLAGS, n_values=2)
    cell = cube.cells
    assert cell[("arrondissement", "A11", ALL, ALL)].suppressed
    p1 = cell[("province", "P1", ALL, ALL)]
    kids = [cell[("arrondissement", a, ALL, ALL)] for a in ("A11", "A12", "A13")]
    published = [c for c in kids if not c.suppressed]
    assert len([c for c in kids if c.suppressed]) >= 2
    if not p1.suppressed:
        left = [p - sum(c.values[i] for c in published) for i, p in enumerate(p1.values)]
        assert left != [5, 1]  # the lone refuge's figures cannot be read off
    assert not p1.suppressed  # 8 secret refuges: the province itself is shown


def test_segment_complement_is_protected() -> None:
    """'all' minus 'accepts undocumented' must not isolate the one facility outside it."""
    raw = [("A11", "refuge", frozenset({"f1"}), True, 1)] * 4
    raw += [("A11", "refuge", frozenset(), True, 9)]
    cube = build_cube(make_items(raw), k=3, flags=FLAGS, n_values=2)
    all_cell = cube.cells[("arrondissement", "A11", ALL, ALL)]
    f1_cell = cube.cells[("arrondissement", "A11", ALL, "f1")]
    assert cube.cells[("arrondissement", "A11", ALL, NOT + "f1")].secret == 1
    assert all_cell.suppressed or f1_cell.suppressed


def test_public_facilities_do_not_shield_a_secret_one() -> None:
    """Five public hotels and one secret refuge: the hotels may be listed by alias, so the
    cell would give the refuge away. It is suppressed although it covers six facilities."""
    raw = [("A11", "crisis_hotel", frozenset(), False, 10)] * 5
    raw += [("A11", "refuge", frozenset(), True, 4)]
    cube = build_cube(make_items(raw), k=3, flags=FLAGS, n_values=2)
    assert cube.cells[("arrondissement", "A11", ALL, ALL)].suppressed
    assert not cube.cells[("arrondissement", "A11", "crisis_hotel", ALL)].suppressed


def test_figures_are_places_and_stale_is_unknown() -> None:
    fac = FacilityFacts(
        id=1,
        kind="refuge",
        path=TREE["A11"],
        segments=frozenset(),
        secret=True,
        admitting=True,
        pools=(
            PoolFigures(1, 10, 6, 1, units_blocked=2, surge_24h=3, surge_72h=5),
            PoolFigures(4, 2, 1, 0),  # two family rooms of 4
            PoolFigures(1, 5, 0, 0, fresh=False),  # stale: unknown, never free
        ),
    )
    v = facility_figures(fac)
    assert v[FIG["capacity"]] == 10 + 8 + 5
    assert v[FIG["fresh"]] == 18 and v[FIG["stale"]] == 5
    assert v[FIG["occupied"]] == 6 + 4 and v[FIG["held"]] == 1
    assert v[FIG["free"]] == 3 + 4
    assert v[FIG["surge24h"]] == 3 and v[FIG["surge72h"]] == 5
    assert saturation_of(v) == round(11 / 18, 4)
    assert coverage_of(v) == round(18 / 23, 4)


def test_closed_facilities_count_apart() -> None:
    fac = FacilityFacts(
        id=1,
        kind="crisis_hotel",
        path=TREE["A11"],
        segments=frozenset(),
        secret=False,
        admitting=False,
        pools=(PoolFigures(2, 10, 3, 0),),
    )
    v = facility_figures(fac)
    assert v[FIG["closed"]] == 20 and v[FIG["capacity"]] == 0 and v[FIG["free"]] == 0


def test_segments_from_policy() -> None:
    assert segments_of(AccessPolicy()) == {
        "women_with_children",
        "boys_over_12",
        "free_of_charge",
    }
    p = AccessPolicy(accepts_undocumented=True, low_threshold=True, max_boy_age=12, cost="paying")
    assert segments_of(p) == {
        "undocumented",
        "women_with_children",
        "undocumented_women_with_children",
        "low_threshold",
    }
    # undocumented and with children, but not at the same place: no combined segment
    assert "undocumented_women_with_children" not in segments_of(
        AccessPolicy(accepts_undocumented=True, accepts_children=False)
    )
    assert segments_of(AccessPolicy(genders=["male"], accepts_children=False)) == {"free_of_charge"}


# Segments that nest, as the real ones do: ``f12`` is ``f1`` and ``f2`` at once (like
# undocumented_women_with_children), ``f3`` lies inside ``f1`` (low_threshold inside
# undocumented). A reader knows these definitions, so cells such as "neither f1 nor f2"
# (all - f1 - f2 + f12) or "f1 but not f3" (f1 - f3) can be derived and must be protected.
NESTED_FLAGS = ("f1", "f2", "f12", "f3")


def nested_possible(flags: frozenset[str]) -> bool:
    return ("f12" in flags) == ({"f1", "f2"} <= flags) and ("f3" not in flags or "f1" in flags)


nested_item = st.tuples(
    st.sampled_from(sorted(TREE)),
    st.sampled_from(CATS),
    st.sampled_from(
        [frozenset(s.split()) for s in ("", "f1", "f2", "f1 f2 f12", "f1 f3", "f1 f2 f12 f3")]
    ),
    st.booleans(),
    st.integers(0, 40),
)


def small_sets_recoverable(cube, secret_ids: list[int], k: int) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    """Every group of 1..k-1 secret items whose members' sum is a linear combination of the
    published cells (floating point on 0/1 rows: a residual is either ~0 or >= ~1/n)."""
    from itertools import combinations

    import numpy as np

    if not secret_ids:
        return []
    rows = np.array(published_rows(cube, secret_ids), dtype=float).reshape(-1, len(secret_ids))
    if rows.size == 0:
        return []
    _u, s, vt = np.linalg.svd(rows, full_matrices=False)
    q = vt[s > 1e-9 * max(1.0, s.max())]
    found = []
    for size in range(1, k):
        for group in combinations(range(len(secret_ids)), size):
            y = np.zeros(len(secret_ids))
            y[list(group)] = 1.0
            if np.linalg.norm(y - q.T @ (q @ y)) < 1e-6:
                found.append(group)
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.lists(nested_item, min_size=1, max_size=24),
    k=st.integers(2, 5),
    limit=st.sampled_from([2500, 6]),
)
def test_nested_segments_never_single_out_a_small_group(raw, k, limit) -> None:  # type: ignore[no-untyped-def]
    """Also when the audit cannot check that much detail (``audit_limit`` atoms, 6 here to
    force it): it must then publish less, never publish unchecked."""
    items = make_items(raw)
    cube = build_cube(items, k=k, flags=NESTED_FLAGS, n_values=2, audit_limit=limit)
    secret_ids = [it.key for it in items if it.secret]
    assert small_sets_recoverable(cube, secret_ids, k) == []


def test_k_is_bounded_by_what_the_audit_checks(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A k the exact audit does not cover is refused at start-up, not applied half-way."""
    import pytest

    from capacity.saturation import MAX_K
    from capacity.settings import Settings

    monkeypatch.setenv("ABRI_SUPPRESSION_K", str(MAX_K))
    assert Settings.from_env().suppression_k == MAX_K
    for bad in ("1", str(MAX_K + 1)):
        monkeypatch.setenv("ABRI_SUPPRESSION_K", bad)
        with pytest.raises(SystemExit, match="ABRI_SUPPRESSION_K must be from 2"):
            Settings.from_env()
    with pytest.raises(ValueError):
        build_cube([], k=MAX_K + 1, flags=())


def test_too_much_detail_to_check_is_coarsened_not_published_unchecked() -> None:
    """Over ``audit_limit`` atoms the exact check is not skipped: the finest level's secret
    cells are withdrawn until what is left can be checked."""
    raw = [(a, c, frozenset(), True, 1) for a in sorted(TREE) for c in CATS for _ in range(3)]
    cube = build_cube(make_items(raw), k=3, flags=FLAGS, n_values=2, audit_limit=4)
    assert cube.coarsened and cube.coarsened[0] == "arrondissement"
    assert all(
        c.suppressed for c in cube.cells.values() if c.level == "arrondissement" and not c.virtual
    )
    assert not cube.cells[("country", "BE", ALL, ALL)].suppressed
    full = build_cube(make_items(raw), k=3, flags=FLAGS, n_values=2)
    assert not full.coarsened
    assert not full.cells[("arrondissement", "A11", "refuge", ALL)].suppressed
