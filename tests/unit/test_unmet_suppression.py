"""Unmet demand is published as four tables over the same searches (by household shape, main
blocking rule, need and requester kind). A reader may combine all four: no group of fewer
than k searches may be recoverable from them together, though each table alone is safe."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity.taskforce_service import UNMET_FLAGS, _joint_unmet_cubes
from tests.unit.test_saturation import small_sets_recoverable

# Antwerp (two arrondissements) and Walloon Brabant (one): a small tree with real codes.
PLACES = [
    ("02000", "10000", "11000"),
    ("02000", "10000", "13000"),
    ("03000", "20002", "25000"),
]

record = st.tuples(
    st.sampled_from(PLACES),
    st.sampled_from(["single_woman", "woman_children", "couple"]),
    st.sampled_from(["ipv", "homelessness"]),
    st.sampled_from(["police", "helpline"]),
    st.sampled_from(["no_room", "too_far"]),
    st.booleans(),
)


def unmet(
    i: int,
    place: tuple[str, str, str],
    shape: str,
    need: str,
    requester: str,
    reason: str,
    undocumented: bool,
) -> SimpleNamespace:
    """A recorded unmet search, as the task-force service reads one."""
    return SimpleNamespace(
        id=i,
        region_nis=place[0],
        province_nis=place[1],
        arrondissement_nis=place[2],
        segments={UNMET_FLAGS[0]: undocumented},
        household_shape=shape,
        need=need,
        requester_kind=requester,
        top_reasons=[reason],
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.lists(record, min_size=10, max_size=45),
    k=st.integers(3, 4),
    limit=st.sampled_from([1500, 12]),
)
def test_the_four_unmet_tables_together_single_out_no_small_group(raw, k, limit) -> None:  # type: ignore[no-untyped-def]
    """Also over the audit's limit (12 distinguishable groups here, to force it): the
    breakdowns' detail is then withdrawn, never published unchecked."""
    records = [unmet(i, *r) for i, r in enumerate(raw)]
    cubes = _joint_unmet_cubes(records, k, audit_limit=limit)  # type: ignore[arg-type]
    # One "cube" of every published row of the four tables (same secret index: record order).
    union = SimpleNamespace(
        cells={(b, key): c for b, cube in cubes.items() for key, c in cube.cells.items()}
    )
    assert small_sets_recoverable(union, list(range(len(records))), k) == []


def test_over_the_limit_the_breakdowns_go_and_the_totals_stay() -> None:
    """A month of a crisis: too many distinguishable searches to check the four tables
    together. The breakdowns are withdrawn; the area and segment totals are still shown."""
    import random

    rng = random.Random(4)
    records = [
        unmet(
            i,
            rng.choice(PLACES),
            rng.choice(["single_woman", "woman_children", "couple"]),
            rng.choice(["ipv", "homelessness"]),
            rng.choice(["police", "helpline"]),
            rng.choice(["no_room", "too_far"]),
            rng.random() < 0.3,
        )
        for i in range(300)
    ]
    full = _joint_unmet_cubes(records, 3)  # type: ignore[arg-type]
    assert any(  # with room to check, some breakdown detail is shown
        not c.suppressed and c.category != "all" and c.level == "arrondissement"
        for c in full["shape"].cells.values()
    )
    small = _joint_unmet_cubes(records, 3, audit_limit=12)  # type: ignore[arg-type]
    for cube in small.values():
        shown = [c for c in cube.cells.values() if not c.suppressed and not c.virtual]
        assert all(c.category == "all" for c in shown)
        assert {("arrondissement", a[2]) for a in PLACES} <= {(c.level, c.nis) for c in shown}
