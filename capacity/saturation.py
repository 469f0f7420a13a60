"""Saturation aggregates and small-cell suppression. Pure: plain data in, cells out, no I/O.

Figures are in **places** (persons): a pool's units x its ``places_per_unit``. A family room for
four that is occupied counts four occupied places.

Per facility (``facility_figures``):

* ``capacity``: places in service at admitting facilities (status open/reduced, inside their
  validity window), whether their data is fresh or stale;
* ``fresh`` / ``stale``: the part of ``capacity`` whose pool reported within / beyond its
  staleness threshold. Stale places are *unknown*: never counted as free, occupied or held;
* ``occupied``, ``held``, ``free``: from fresh pools only (free = total - occupied - held, >= 0);
* ``closed``: places at facilities that do not admit now (closed, suspended, compromised, not
  yet valid or past their planned end); not part of ``capacity``;
* ``blocked``: units out of service (repairs, quarantine) at admitting facilities, informational;
* ``surge24h`` / ``surge72h``: places that could open within 24 h / 72 h, apart from capacity.

Per cell: saturation = (occupied + held) / fresh (null when nothing fresh); coverage =
fresh / capacity, i.e. the share of *places* (not pools, not facilities) reporting fresh data.

Suppression (``build_cube``): the generic engine works on *items* (facilities, or unmet-demand
records) placed in an area tree (country > region > province > arrondissement), one category
(facility kind: a partition) and a set of flags (access segments: overlapping). Every cell
``(level, area, category|all, flag|all)`` is computed; a cell whose items are 1..k-1, or whose
**secret-address** items are 1..k-1, is suppressed (primary suppression). Cells made only of
public-address items are treated as known to the reader (their figures may be shown by alias
elsewhere), so they never protect a secret one. Complementary suppression then runs to a
fixpoint over every additive relation a reader could use:

* area hierarchy: parent = sum of children, for every category and flag;
* categories: all kinds = sum of kinds, in every area and flag;
* flags: ``all = flag + not-flag``; the ``not-flag`` cells are never published but are known as
  soon as both ``all`` and ``flag`` are, so they take part in every relation above.

At the fixpoint no relation has exactly one unknown member, and the unknown children of a known
parent together hold at least k secret items. Finally an exact audit (linear algebra over the
published cells) checks that no group of 1..k-1 secret items can be recovered by any
combination of published cells (k is at most ``MAX_K``); a finding suppresses one more cell
and the loop repeats. That audit is what makes nested segments safe (a combined segment, or
one inside another, lets a reader derive cells such as "neither" that the relations above do
not list).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from placement.policy import AccessPolicy

LEVELS: tuple[str, ...] = ("country", "region", "province", "arrondissement")
COUNTRY = "BE"
ALL = "all"
NOT = "not:"
KINDS: tuple[str, ...] = (
    "refuge",
    "crisis_hotel",
    "cpas_place",
    "night_shelter",
    "safe_house",
    "other",
)
SEGMENTS: tuple[str, ...] = (
    "undocumented",
    "women_with_children",
    "undocumented_women_with_children",  # R30's own example: both at the same place
    "boys_over_12",
    "low_threshold",
    "free_of_charge",
)
FIGURES: tuple[str, ...] = (
    "capacity",
    "occupied",
    "held",
    "free",
    "fresh",
    "stale",
    "closed",
    "blocked",
    "surge24h",
    "surge72h",
)
FIG = {name: i for i, name in enumerate(FIGURES)}


# --------------------------------------------------------------------------- facilities


def segments_of(policy: AccessPolicy) -> frozenset[str]:
    """The access segments a facility's policy serves (DESIGN §1 'saturation')."""
    out = set()
    if policy.accepts_undocumented or policy.low_threshold:  # low threshold: no papers asked
        out.add("undocumented")
    if policy.accepts_children and "female" in policy.genders:
        out.add("women_with_children")
        if "undocumented" in out:
            out.add("undocumented_women_with_children")
    if policy.accepts_children and (policy.max_boy_age is None or policy.max_boy_age > 12):
        out.add("boys_over_12")
    if policy.low_threshold:
        out.add("low_threshold")
    if policy.cost == "free":
        out.add("free_of_charge")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class PoolFigures:
    places_per_unit: int
    units_total: int
    units_occupied: int
    units_held: int
    units_blocked: int = 0
    surge_24h: int = 0
    surge_72h: int = 0
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class FacilityFacts:
    """What the aggregates need of one facility: no alias, no address."""

    id: int
    kind: str
    path: tuple[str, ...]  # ("BE", region, province, arrondissement)
    segments: frozenset[str]
    secret: bool
    admitting: bool
    pools: tuple[PoolFigures, ...]


def facility_figures(f: FacilityFacts) -> tuple[int, ...]:
    v = [0] * len(FIGURES)
    for p in f.pools:
        ppu = p.places_per_unit
        cap = p.units_total * ppu
        v[FIG["surge24h"]] += p.surge_24h * ppu
        v[FIG["surge72h"]] += p.surge_72h * ppu
        if not f.admitting:
            v[FIG["closed"]] += cap
            continue
        v[FIG["capacity"]] += cap
        v[FIG["blocked"]] += p.units_blocked * ppu
        if p.fresh:
            v[FIG["fresh"]] += cap
            v[FIG["occupied"]] += p.units_occupied * ppu
            v[FIG["held"]] += p.units_held * ppu
            v[FIG["free"]] += max(0, p.units_total - p.units_occupied - p.units_held) * ppu
        else:
            v[FIG["stale"]] += cap
    return tuple(v)


def saturation_of(values: Sequence[int]) -> float | None:
    fresh = values[FIG["fresh"]]
    if fresh <= 0:
        return None
    return round((values[FIG["occupied"]] + values[FIG["held"]]) / fresh, 4)


def coverage_of(values: Sequence[int]) -> float | None:
    cap = values[FIG["capacity"]]
    if cap <= 0:
        return None
    return round(values[FIG["fresh"]] / cap, 4)


# --------------------------------------------------------------------------- generic engine


@dataclass(frozen=True, slots=True)
class Item:
    key: int
    path: tuple[str, ...]  # area codes from the top, one per level
    category: str
    flags: frozenset[str]
    secret: bool
    values: tuple[int, ...]


CellKey = tuple[str, str, str, str]  # (level, area code, category | "all", flag | "all")


@dataclass(slots=True, eq=False)
class Cell:
    level: str
    nis: str
    category: str
    flag: str
    items: int = 0
    secret: int = 0
    values: list[int] = field(default_factory=list)
    suppressed: bool = False
    members: list[int] = field(default_factory=list)  # indices of secret items
    # For a virtual ``not:flag`` cell: the two published cells it is the difference of.
    base_all: Cell | None = None
    base_flag: Cell | None = None
    dependents: list[Cell] = field(default_factory=list)  # virtual cells derived from this one
    equations: list[int] = field(default_factory=list)

    @property
    def key(self) -> CellKey:
        return (self.level, self.nis, self.category, self.flag)

    @property
    def virtual(self) -> bool:
        return self.flag.startswith(NOT)

    @property
    def known(self) -> bool:
        """Can a reader tell this cell's figures? (Cells of public items only: assume yes.)"""
        if self.secret == 0:
            return True
        if self.base_all is not None:  # virtual
            flag_known = self.base_flag is None or self.base_flag.known
            return flag_known and self.base_all.known
        return not self.suppressed


@dataclass
class Cube:
    cells: dict[CellKey, Cell]
    k: int
    levels: tuple[str, ...]
    audit_findings: int = 0  # extra suppressions the exact audit had to add
    # Levels whose secret cells were all suppressed because the audit could not check that
    # much detail (more than ``audit_limit`` atoms): fail closed, never publish unchecked.
    coarsened: list[str] = field(default_factory=list)
    equations: list[tuple[Cell, list[Cell]]] = field(default_factory=list, repr=False)
    # item key -> its index among the secret items (what ``Cell.members`` holds)
    secret_index: dict[int, int] = field(default_factory=dict, repr=False)

    def get(self, key: CellKey) -> Cell | None:
        return self.cells.get(key)

    def suppress_more(self, cells: Iterable[Cell]) -> None:
        """Suppress these published cells too (another table over the same items hid them,
        or a joint audit found them), then restore complementary suppression. No audit: the
        caller audits what it publishes together."""
        pending: set[int] = set()
        for c in cells:
            if not c.suppressed:
                _suppress(c, pending)
        _complementary(self, self.equations, pending)

    def published(self) -> list[Cell]:
        return [c for c in self.cells.values() if not c.virtual]


def _primary(c: Cell, k: int) -> bool:
    return 0 < c.items < k or 0 < c.secret < k


def build_cube(
    items: Iterable[Item],
    *,
    k: int,
    flags: Sequence[str],
    levels: Sequence[str] = LEVELS,
    n_values: int = len(FIGURES),
    audit: bool = True,
    audit_limit: int = 2500,
    forced: Collection[CellKey] = (),
) -> Cube:
    """Aggregate ``items`` into every cell and suppress what must be (see module doc).

    ``forced``: cells to suppress whatever their counts (another table over the same items
    hid them; publishing them here would undo that), before complementary suppression.

    The exact audit works on atoms (secret items no published cell tells apart); each round
    decomposes an atoms x atoms matrix, O(atoms^3), and enumerates groups in about
    O(atoms^2 log atoms). It fails closed: above ``audit_limit`` atoms, every secret cell of the
    finest level still published is suppressed (``Cube.coarsened``) until the rest can be
    checked."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}")
    levels = tuple(levels)
    cells: dict[CellKey, Cell] = {}
    children: dict[tuple[int, str], set[str]] = {}  # (level index, area) -> child areas
    categories: set[str] = set()
    item_list = list(items)
    secret_index: dict[int, int] = {}
    for it in item_list:
        if it.secret:
            secret_index[it.key] = len(secret_index)
    for it in item_list:
        categories.add(it.category)
        for depth in range(len(levels) - 1):
            children.setdefault((depth, it.path[depth]), set()).add(it.path[depth + 1])
        item_flags = [ALL, *(f for f in flags if f in it.flags)]
        item_flags += [NOT + f for f in flags if f not in it.flags]
        for depth, level in enumerate(levels):
            area = it.path[depth]
            for cat in (it.category, ALL):
                for fl in item_flags:
                    key = (level, area, cat, fl)
                    c = cells.get(key)
                    if c is None:
                        c = cells[key] = Cell(level, area, cat, fl, values=[0] * n_values)
                    c.items += 1
                    if it.secret:
                        c.secret += 1
                        c.members.append(secret_index[it.key])
                    vals = c.values
                    for i, x in enumerate(it.values):
                        vals[i] += x
    for c in list(cells.values()):
        if c.virtual:
            c.base_all = cells[(c.level, c.nis, c.category, ALL)]
            c.base_flag = cells.get((c.level, c.nis, c.category, c.flag[len(NOT) :]))
            c.base_all.dependents.append(c)
            if c.base_flag is not None:
                c.base_flag.dependents.append(c)
        elif _primary(c, k):
            c.suppressed = True
    for key in forced:
        c = cells.get(key)
        if c is not None and not c.virtual:
            c.suppressed = True
    cube = Cube(cells, k, levels, secret_index=secret_index)
    equations = cube.equations = _equations(cube, children, sorted(categories), flags)
    for i, (parent, kids) in enumerate(equations):
        for c in (parent, *kids):
            c.equations.append(i)
    pending = set(range(len(equations)))
    while True:
        _complementary(cube, equations, pending)
        if not audit:
            return cube
        leaks = audit_cells(published_secret_cells(cube), k, audit_limit) if secret_index else []
        if leaks is None:  # too much detail to check exactly: publish less, then check that
            level = _coarsen(cube, pending)
            if level is None:  # pragma: no cover - one country-level row makes one atom
                raise RuntimeError("suppression audit: nothing left to coarsen")
            cube.coarsened.append(level)
            continue
        if not leaks:
            return cube
        cube.audit_findings += len(leaks)
        for cell in leaks:
            _suppress(cell, pending)


Equation = tuple[Cell, list[Cell]]


def _equations(
    cube: Cube,
    children: dict[tuple[int, str], set[str]],
    categories: list[str],
    flags: Sequence[str],
) -> list[Equation]:
    cells = cube.cells
    all_flags = [ALL, *flags, *(NOT + f for f in flags)]
    eqs: list[Equation] = []

    def add(parent: CellKey, members: list[CellKey]) -> None:
        p = cells.get(parent)
        if p is None or p.secret == 0:
            return  # nothing secret below: nothing to protect
        eqs.append((p, [cells[m] for m in members if m in cells and cells[m].secret > 0]))

    for (depth, area), kids in children.items():
        level, child_level = cube.levels[depth], cube.levels[depth + 1]
        for cat in [ALL, *categories]:
            for fl in all_flags:
                add((level, area, cat, fl), [(child_level, a, cat, fl) for a in sorted(kids)])
    areas = sorted({(c.level, c.nis) for c in cells.values()})
    for level, area in areas:
        for fl in all_flags:
            add((level, area, ALL, fl), [(level, area, cat, fl) for cat in categories])
        for cat in [ALL, *categories]:
            for f in flags:
                add((level, area, cat, ALL), [(level, area, cat, f), (level, area, cat, NOT + f)])
    return eqs


def _coarsen(cube: Cube, pending: set[int]) -> str | None:
    """Suppress every published cell with secret items at the finest level that still has
    some; returns that level (None: nothing left). Fewer published rows make fewer atoms."""
    for level in reversed(cube.levels):
        cells = [
            c
            for c in cube.cells.values()
            if c.level == level and c.base_all is None and c.secret and not c.suppressed
        ]
        if cells:
            for c in cells:
                _suppress(c, pending)
            return level
    return None


def _suppress(c: Cell, pending: set[int]) -> None:
    c.suppressed = True
    pending.update(c.equations)
    for d in c.dependents:
        pending.update(d.equations)


def _hide(c: Cell, pending: set[int]) -> bool:
    """Make a known cell unknown by suppressing a published cell; False if impossible."""
    if not c.known:
        return False
    if c.base_all is None:  # a real cell
        if c.secret == 0:
            return False
        _suppress(c, pending)
        return True
    flag_cell = c.base_flag
    if flag_cell is not None and flag_cell.secret > 0 and not flag_cell.suppressed:
        _suppress(flag_cell, pending)
        return True
    return _hide(c.base_all, pending)


def _complementary(cube: Cube, equations: list[Equation], pending: set[int]) -> None:
    k = cube.k
    virtuals = [c for c in cube.cells.values() if c.base_all is not None and 0 < c.secret < k]
    while True:
        while pending:
            parent, kids = equations[pending.pop()]
            unknown_kids = [m for m in kids if not m.known]
            parent_known = parent.known
            n_unknown = len(unknown_kids) + (0 if parent_known else 1)
            if n_unknown == 0:
                continue
            if n_unknown == 1 or (parent_known and sum(m.secret for m in unknown_kids) < k):
                candidates = sorted(
                    (m for m in kids if m.known), key=lambda m: (m.secret, m.items, m.key)
                )
                for m in candidates:
                    if _hide(m, pending):
                        break
                else:
                    if parent_known:
                        _hide(parent, pending)
        # A derivable 'not-flag' cell that isolates 1..k-1 secret items.
        for c in virtuals:
            if c.known:
                _hide(c, pending)
        if not pending:
            return


def withheld_beside(
    cube: Cube, groups: Sequence[Collection[int]], *, limit: int = 2500
) -> set[int]:
    """Other figures published beside the cube's cells, each the sum over a group of
    **secret** items (by key; public items never need protecting): which of them (indices
    into ``groups``) must be withheld so that, combined with the cube's published cells, no
    group of 1..k-1 secret items can be recovered.

    A group that cuts the items along a line the cube never drew (e.g. the redirection
    planner's "closes within N days") is a new row for a reader: the cube's own audit did not
    see it. The cube's cells are published already, so only these extra figures can give way.
    Fails closed: a secret item the cube does not know (created since), or too much detail to
    check, withholds."""
    withheld: set[int] = set()
    live: dict[int, Cell] = {}
    for i, keys in enumerate(groups):
        if not keys:
            continue
        if any(key not in cube.secret_index for key in keys):
            withheld.add(i)
            continue
        members = sorted(cube.secret_index[key] for key in keys)
        live[i] = Cell(
            "extra", str(i), ALL, ALL, items=len(members), secret=len(members), members=members
        )
    base = published_secret_cells(cube)
    kept: list[Cell] = []

    def add(batch: list[int]) -> None:
        """Keep what of ``batch`` is safe beside the cube and what is kept already."""
        while batch:
            leaks = audit_cells([*base, *kept, *(live[i] for i in batch)], cube.k, limit)
            if leaks is None:  # too much detail to check: fail closed
                withheld.update(batch)
                return
            if not leaks:
                kept.extend(live[i] for i in batch)
                return
            named = {id(c) for c in leaks}
            drop = [i for i in batch if id(live[i]) in named]
            if drop:
                withheld.update(drop)
                batch = [i for i in batch if i not in drop]
                continue
            # The audit named cells of the cube (the group lies outside these figures, which
            # only made it recoverable): halve the batch to find the figures at fault.
            if len(batch) == 1:
                withheld.update(batch)
                return
            half = len(batch) // 2
            add(batch[:half])
            batch = batch[half:]

    add(list(live))
    return withheld


#: The largest k the exact audit covers: it checks every group of up to k - 1 secret items.
MAX_K = 5
_TOL = 1e-6


def published_secret_cells(cube: Cube) -> list[Cell]:
    """The cells a reader can tell (published, or public-only) that hold secret items."""
    return [c for c in cube.cells.values() if c.base_all is None and c.known and c.secret]


def audit_cells(published: Sequence[Cell], k: int, limit: int) -> list[Cell] | None:
    """Can any group of 1..k-1 secret items be recovered exactly (the sum of their figures)
    from the ``published`` cells, by linear algebra? Returns published cells to suppress next
    (empty: safe; None: more than ``limit`` atoms, not checked). The cells may come from
    several cubes over the same items (the same secret index): tables published side by side
    are audited together.

    Secret items that no published cell tells apart form an *atom*: every combination of
    published cells counts them together, so a recoverable group is a union of atoms. A group
    is recoverable when its indicator lies in the row space of the published cells (over
    atoms). Groups of one or two atoms are checked on the projector directly; groups of three
    and four by meeting in the middle on random projections of the null space, each candidate
    verified exactly on the projector."""
    if not published:
        return []
    rows: dict[tuple[int, ...], Cell] = {}
    for c in published:
        rows.setdefault(tuple(sorted(c.members)), c)
    in_rows: dict[int, list[int]] = {}
    for r, members in enumerate(rows):
        for i in members:
            in_rows.setdefault(i, []).append(r)
    by_signature: dict[tuple[int, ...], list[int]] = {}
    for i, rs in in_rows.items():
        by_signature.setdefault(tuple(rs), []).append(i)
    atoms = list(by_signature.values())
    if len(atoms) > limit:
        return None
    m = np.zeros((len(rows), len(atoms)))
    for a, rs in enumerate(by_signature):
        m[list(rs), a] = 1.0
    # Row space of M = range of the Gram matrix M^T M (atoms x atoms: cheap to decompose).
    eigval, eigvec = np.linalg.eigh(m.T @ m)
    tol = max(float(eigval.max()), 1.0) * len(atoms) * np.finfo(float).eps * 1000
    span = eigval > tol
    proj = eigvec[:, span] @ eigvec[:, span].T
    null = eigvec[:, ~span]
    size = np.array([len(g) for g in atoms])
    groups = _small_groups(proj, null, size, k - 1)
    if not groups:
        return []
    # The smallest published cell holding an item of the group: suppressing it removes a row
    # the group's combination may use (the next round checks again).
    holding: dict[int, list[Cell]] = {}
    for c in published:
        for i in c.members:
            holding.setdefault(i, []).append(c)
    out: dict[int, Cell] = {}
    for group in groups:
        best = min(
            (c for a in group for i in atoms[a] for c in holding[i]),
            key=lambda c: (c.secret, c.items, c.key),
        )
        out[id(best)] = best
    return list(out.values())


def _small_groups(
    proj: np.ndarray, null: np.ndarray, size: np.ndarray, most: int
) -> list[tuple[int, ...]]:
    """Every minimal group of atoms of ``most`` items or fewer whose indicator y lies in the
    row space (``proj`` projects on it, ``null`` spans its complement): y'Py = |y|.

    All sizes are returned in one round: suppressing cells only removes rows, so the row
    space only shrinks and a group that is safe now stays safe; what the next round can find
    is only what this round's suppressions failed to break (the rounds, each a
    decomposition, are the audit's cost)."""
    diag = np.diag(proj)
    found: list[tuple[int, ...]] = [
        (int(a),) for a in np.nonzero((diag > 1 - _TOL) & (size <= most))[0]
    ]
    # An atom alone recoverable but of k items or more cannot be part of a small group; an
    # atom in no published cell (diag 0) cannot be part of any.
    cand = np.nonzero((size <= most - 1) & (diag > _TOL) & (diag < 1 - _TOL))[0]
    if most < 2 or len(cand) < 2:
        return found
    sub = proj[np.ix_(cand, cand)]
    d = diag[cand]
    fits = size[cand][:, None] + size[cand][None, :] <= most
    pair = (d[:, None] + d[None, :] + 2 * sub > 2 - _TOL) & fits
    np.fill_diagonal(pair, False)
    pairs = {(int(cand[a]), int(cand[b])) for a, b in np.argwhere(np.triu(pair))}
    found += sorted(pairs)
    if most < 3 or len(cand) < 3 or null.shape[1] == 0:
        return found
    # y is in the row space iff null' y = 0: the rows of ``null`` of a group sum to zero. Two
    # random projections of those rows give candidates (a sum of exactly zero projects to
    # zero); each is verified on the projector.
    rng = np.random.default_rng(0)
    z = null[cand] @ rng.standard_normal((null.shape[1], 2))
    scale = max(1.0, float(np.abs(z).max()))
    eps = 1e-8 * scale
    ia, ib = np.triu_indices(len(cand), 1)
    ps = z[ia] + z[ib]
    order = np.argsort(ps[:, 0], kind="stable")
    sorted_ps = ps[order, 0]
    sz = size[cand]

    def near(values: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
        """For each value, the pairs whose projection is within eps of it (only hits)."""
        lo = np.searchsorted(sorted_ps, values - eps, side="left")
        hi = np.searchsorted(sorted_ps, values + eps, side="right")
        for i in np.nonzero(hi > lo)[0]:
            yield int(i), order[lo[i] : hi[i]]

    def recoverable(group: tuple[int, ...]) -> bool:
        g = list(group)
        return bool(proj[np.ix_(g, g)].sum() > len(g) - _TOL)

    more: set[tuple[int, ...]] = set()
    for c, near_pairs in near(-z[:, 0]):  # three atoms: a pair and one more
        for p in near_pairs:
            a, b = int(ia[p]), int(ib[p])
            if c in (a, b) or sz[a] + sz[b] + sz[c] > most or abs(ps[p, 1] + z[c, 1]) > eps:
                continue
            group = tuple(sorted(int(cand[x]) for x in (a, b, c)))
            if group not in more and recoverable(group):
                more.add(group)
    if most < 4:
        return found + sorted(more)
    for p, near_pairs in near(-ps[:, 0]):  # four atoms: two pairs
        a, b = int(ia[p]), int(ib[p])
        for q in near_pairs:
            c, e = int(ia[q]), int(ib[q])
            if q <= p or len({a, b, c, e}) < 4 or sz[a] + sz[b] + sz[c] + sz[e] > most:
                continue
            if abs(ps[p, 1] + ps[q, 1]) > eps:
                continue
            group = tuple(sorted(int(cand[x]) for x in (a, b, c, e)))
            if group in more or any(
                (x, y) in pairs for i, x in enumerate(group) for y in group[i + 1 :]
            ):
                continue  # two recoverable pairs side by side: already found
            if recoverable(group):
                more.add(group)
    return found + sorted(more)


# --------------------------------------------------------------------------- facilities -> cube


def facility_items(facilities: Iterable[FacilityFacts]) -> list[Item]:
    return [
        Item(
            key=f.id,
            path=f.path,
            category=f.kind,
            flags=f.segments,
            secret=f.secret,
            values=facility_figures(f),
        )
        for f in facilities
    ]


def saturation_cube(facilities: Iterable[FacilityFacts], *, k: int, audit: bool = True) -> Cube:
    return build_cube(facility_items(facilities), k=k, flags=SEGMENTS, audit=audit)
