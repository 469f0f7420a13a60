"""Belgian areas: region > province > arrondissement > municipality (NIS codes, 2025).

Loaded once from the CSV shipped in ``capacity/data`` (see its SOURCES.md). Brussels-Capital
has no province; for every "province" question it answers with the region (04000), as the
shipped province map does.
"""

from __future__ import annotations

import csv
import json
import math
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from capacity.errors import UnknownArea

BRUSSELS_REGION = "04000"

#: The English names of the cities that have one, which the English pages' users type (the
#: shipped data has French, Dutch and German names only). Found, never shown.
ENGLISH_NAMES = {"Brussels": "21004", "Antwerp": "11002", "Ghent": "44021", "Ostend": "35013"}
#: Names Statbel's 2025 list no longer gives a municipality (see the shared data's caveats) but
#: that people still use: "Saint-Nicolas" is the French name of Sint-Niklaas (and of its
#: arrondissement) as well as a municipality near Liège, so typed alone it is ambiguous —
#: never silently the one near Liège when an officer means the one in the Waasland.
FORMER_NAMES = {"Saint-Nicolas": "46021"}


@dataclass(frozen=True, slots=True)
class Area:
    nis: str
    level: str  # region | province | arrondissement | municipality
    name_nl: str
    name_fr: str
    name_de: str

    def name(self, lang: str = "fr") -> str:
        return {"nl": self.name_nl, "de": self.name_de}.get(lang, self.name_fr)


@dataclass(frozen=True, slots=True)
class Municipality:
    nis: str
    name_nl: str
    name_fr: str
    name_de: str
    language_regime: str
    arrondissement_nis: str
    province_nis: str  # the region's code for Brussels
    region_nis: str
    postal_codes: tuple[str, ...]
    lat: float
    lon: float
    area_km2: float = 0.0

    def name(self, lang: str = "fr") -> str:
        return {"nl": self.name_nl, "de": self.name_de}.get(lang, self.name_fr)


@dataclass(frozen=True)
class AreaIndex:
    municipalities: dict[str, Municipality]
    areas: dict[str, Area]  # regions, provinces (and 04000), arrondissements
    merged_from: dict[str, str]  # pre-2025 NIS code -> 2025 code
    _by_name: dict[str, list[str]]  # name_key of a current or pre-2025 name -> 2025 codes

    def municipality(self, nis: str) -> Municipality:
        code = self.merged_from.get(nis, nis)
        try:
            return self.municipalities[code]
        except KeyError:
            raise UnknownArea(
                f"{nis!r} is not a Belgian municipality NIS code (2025 list).",
                field="municipalityNis",
            ) from None

    def area(self, nis: str) -> Area:
        try:
            return self.areas[nis]
        except KeyError:
            raise UnknownArea(f"{nis!r} is not a known Belgian area code.", field="nis") from None

    def canonical_municipality(self, nis: str) -> str:
        return self.municipality(nis).nis

    def within(self, municipality_nis: str, km: float) -> list[str]:
        """The municipalities whose territory comes within ``km`` of this one's (itself
        included), sorted: ``territory_gap_km`` of each pair. At 0 km: about its neighbours.
        The plain reference of what the matcher computes for ``avoid.radius`` on arrays."""
        m = self.municipality(municipality_nis)
        out = {m.nis}
        out.update(o.nis for o in self.municipalities.values() if territory_gap_km(m, o) <= km)
        return sorted(out)

    def enclosing(self, municipality_nis: str) -> tuple[str, ...]:
        """Every area a municipality lies in, itself included: ``BE``, its region, province
        (the region for Brussels), arrondissement and its own code."""
        m = self.municipality(municipality_nis)
        return ("BE", m.region_nis, m.province_nis, m.arrondissement_nis, m.nis)

    def find(self, query: str, limit: int = 20) -> list[Municipality]:
        """Municipalities whose FR, NL or DE name, pre-2025 name (before a merger), postal
        code or NIS code (a pre-2025 one mapped forward) matches ``query``.

        Exact names first, then prefixes, then substrings; accents, case, hyphens, spaces
        and apostrophes are ignored ("Sint Jans Molenbeek" finds Sint-Jans-Molenbeek).
        """
        q = name_key(query)
        if not q:
            return []
        if q.isdigit() and len(q) == 4:
            return [m for m in self.municipalities.values() if q in m.postal_codes][:limit]
        if q.isdigit() and len(q) == 5:
            code = self.merged_from.get(q, q)
            return [self.municipalities[code]] if code in self.municipalities else []
        exact, prefix, inner = [], [], []
        for key, codes in self._by_name.items():
            bucket = (
                exact if key == q else prefix if key.startswith(q) else inner if q in key else None
            )
            if bucket is not None:
                bucket.extend(codes)
        seen: dict[str, None] = {}
        for code in exact + sorted(prefix) + sorted(inner):
            seen.setdefault(code, None)
        return [self.municipalities[c] for c in list(seen)[:limit]]

    def named(self, text: str) -> list[Municipality]:
        """The municipalities one of whose names (FR, NL, DE, or a pre-2025 name now part
        of a merged municipality) is ``text``, ignoring accents, case, hyphens, spaces and
        apostrophes: "liege", "LUIK", "Molenbeek Saint Jean", "Kruibeke" (now
        Beveren-Kruibeke-Zwijndrecht). Usually one; several only for a name two share."""
        return [
            self.municipalities[c] for c in dict.fromkeys(self._by_name.get(name_key(text), ()))
        ]

    def by_postal_code(self, postal_code: str) -> list[Municipality]:
        """The municipalities a postal code serves (usually one; 1040, 1050 and 1804 two);
        none for a code the shipped table does not know (a special or foreign one)."""
        code = postal_code.strip()
        return [m for m in self.municipalities.values() if code in m.postal_codes]

    def children_of(self, nis: str) -> list[str]:
        """Municipality codes inside an area (or the municipality itself)."""
        if nis in self.municipalities:
            return [nis]
        area = self.area(nis)
        attr = {
            "region": "region_nis",
            "province": "province_nis",
            "arrondissement": "arrondissement_nis",
        }[area.level]
        return [m.nis for m in self.municipalities.values() if getattr(m, attr) == nis]


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name: 'Liège' -> 'liege', "d’Anvers" -> 'danvers'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in kept if c.isalnum() or c == " ").strip()


def name_key(text: str) -> str:
    """The form names are matched in: :func:`fold` without the spaces, so that a hyphen, a
    space or an apostrophe typed for another is no matter ("Sint Niklaas", "Braine l'Alleud",
    "s-Gravenbrakel")."""
    return fold(text).replace(" ", "")


def distance_km(a: Municipality, b: Municipality) -> float:
    """Great-circle distance between two municipality centroids."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def territory_radius_km(m: Municipality) -> float:
    """The radius of a disc of the municipality's area: no boundaries are shipped, so a
    territory is taken as that disc around its centroid."""
    return math.sqrt(m.area_km2 / math.pi)


def territory_gap_km(a: Municipality, b: Municipality) -> float:
    """How far apart two territories are, taken as discs of their areas around their
    centroids: the distance of the centroids less both radii (0 or less: they touch or
    overlap). An approximation: a long, thin municipality is reached sooner on its long
    side. R17's "keep away by N km" is measured this way, never between centroids alone
    (Herstal borders Liège although their centroids are 5.6 km apart)."""
    return distance_km(a, b) - territory_radius_km(a) - territory_radius_km(b)


def _strip_prefix(name: str) -> str:
    """'Province de Liège' -> 'Liège', "Arrondissement d’Anvers" -> 'Anvers'."""
    for p in ("Arrondissement ", "Bezirk ", "Provincie ", "Province ", "Provinz "):
        if name.startswith(p):
            name = name[len(p) :]
            break
    for article in ("de ", "du ", "d’", "d'"):
        if name.startswith(article):
            return name[len(article) :]
    return name


@cache
def areas() -> AreaIndex:
    data = resources.files("capacity") / "data"
    munis: dict[str, Municipality] = {}
    area_map: dict[str, Area] = {}
    by_name: dict[str, list[str]] = {}
    with (data / "be_municipalities_2025.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            prov = row["province_nis"] or row["region_nis"]
            m = Municipality(
                nis=row["nis_code"],
                name_nl=row["name_nl"],
                name_fr=row["name_fr"],
                name_de=row["name_de"],
                language_regime=row["language_regime"],
                arrondissement_nis=row["arrondissement_nis"],
                province_nis=prov,
                region_nis=row["region_nis"],
                postal_codes=tuple(p for p in row["postal_codes"].split(";") if p),
                lat=float(row["centroid_lat"]),
                lon=float(row["centroid_lon"]),
                area_km2=float(row["area_km2"] or 0.0),
            )
            munis[m.nis] = m
            for n in {m.name_nl, m.name_fr, m.name_de}:
                by_name.setdefault(name_key(n), []).append(m.nis)
            area_map.setdefault(
                row["region_nis"],
                Area(
                    row["region_nis"],
                    "region",
                    row["region_nl"],
                    row["region_fr"],
                    row["region_de"],
                ),
            )
            if row["province_nis"]:
                area_map.setdefault(
                    prov,
                    Area(
                        prov,
                        "province",
                        _strip_prefix(row["province_nl"]),
                        _strip_prefix(row["province_fr"]),
                        _strip_prefix(row["province_de"]),
                    ),
                )
            area_map.setdefault(
                row["arrondissement_nis"],
                Area(
                    row["arrondissement_nis"],
                    "arrondissement",
                    _strip_prefix(row["arrondissement_nl"]),
                    _strip_prefix(row["arrondissement_fr"]),
                    _strip_prefix(row["arrondissement_de"]),
                ),
            )
    for name, code in (ENGLISH_NAMES | FORMER_NAMES).items():
        by_name.setdefault(name_key(name), []).append(code)
    merged: dict[str, str] = {}
    with (data / "be_municipality_mergers_2025.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["old_nis"] != row["new_nis"]:
                merged[row["old_nis"]] = row["new_nis"]
            # the names people and older systems still use: "Borsbeek", "Bertogne", "Ham"
            for n in {row["old_name_nl"], row["old_name_fr"]}:
                codes = by_name.setdefault(name_key(n), [])
                if row["new_nis"] not in codes:
                    codes.append(row["new_nis"])
    return AreaIndex(munis, area_map, merged, by_name)


def provinces_and_brussels() -> list[Area]:
    """The 10 provinces plus the Brussels-Capital Region: the cells of a country map."""
    idx = areas()
    out = [a for a in idx.areas.values() if a.level == "province"]
    out.append(idx.areas[BRUSSELS_REGION])
    return sorted(out, key=lambda a: a.nis)


#: A municipality's language regime (Statbel) -> the languages of its official name(s).
_REGIME_LANGS = {"N": ("nl",), "F": ("fr",), "D": ("de",), "FN": ("fr", "nl")}
#: A region -> the regime its own names follow (the German-speaking municipalities of
#: Wallonia have their own; their arrondissement and province are named in French).
_REGION_REGIME = {"02000": "N", "03000": "F", BRUSSELS_REGION: "FN"}


@cache
def _area_regimes() -> dict[str, str]:
    idx = areas()
    out = {}
    for m in idx.municipalities.values():
        regime = _REGION_REGIME[m.region_nis]
        for code in (m.region_nis, m.province_nis, m.arrondissement_nis):
            out[code] = regime
    return out


def local_name(nis: str) -> str:
    """A municipality's or area's name in its own language(s): Dutch in Flanders, French in
    Wallonia, German in the German-speaking municipalities, French and Dutch in Brussels (and
    in the municipalities with facilities for both). For readers of none of the three (the
    English pages): the names people there use, not an arbitrary one."""
    idx = areas()
    if nis in idx.municipalities:
        m = idx.municipalities[nis]
        names, regime = (m.name_fr, m.name_nl, m.name_de), m.language_regime
    else:
        a = idx.area(nis)
        names, regime = (a.name_fr, a.name_nl, a.name_de), _area_regimes().get(nis, "F")
    by_lang = dict(zip(("fr", "nl", "de"), names, strict=True))
    parts = [by_lang[lang] or by_lang["fr"] for lang in _REGIME_LANGS.get(regime, ("fr",))]
    return " / ".join(dict.fromkeys(parts))  # "Eupen", or "Bruxelles / Brussel"


def display_name(nis: str, lang: str) -> str:
    """A municipality's or area's name for a reader of ``lang``: its French, Dutch or German
    name, else (English) :func:`local_name`."""
    if lang not in ("fr", "nl", "de"):
        return local_name(nis)
    idx = areas()
    place = idx.municipalities.get(nis) or idx.area(nis)
    return place.name(lang) or place.name_fr


@cache
def area_shapes(level: str) -> dict[str, Any]:
    """The shipped GeoJSON of provinces or arrondissements (Statbel, CC BY 4.0; see
    data/SOURCES.md), for maps; regions as their provinces' polygons, one MultiPolygon each
    (Brussels-Capital is its own). Read once."""
    if level == "region":
        return _region_shapes()
    name = {
        "province": "be_provinces_2025.geojson",
        "arrondissement": "be_arrondissements_2025.geojson",
    }[level]
    with (resources.files("capacity") / "data" / name).open(encoding="utf-8") as fh:
        return json.load(fh)


def _region_shapes() -> dict[str, Any]:
    polygons: dict[str, list[Any]] = {}
    municipalities: dict[str, int] = {}
    for f in area_shapes("province")["features"]:
        reg, geom = f["properties"]["reg_nis"], f["geometry"]
        parts = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        polygons.setdefault(reg, []).extend(parts)
        municipalities[reg] = municipalities.get(reg, 0) + f["properties"]["n_municipalities"]
    idx = areas()
    features = []
    for reg in sorted(polygons):
        a = idx.area(reg)
        props = {
            "nis": reg,
            "level": "region",
            "name_nl": a.name_nl,
            "name_fr": a.name_fr,
            "name_de": a.name_de,
            "reg_nis": reg,
            "n_municipalities": municipalities[reg],
        }
        geometry = {"type": "MultiPolygon", "coordinates": polygons[reg]}
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    return {"type": "FeatureCollection", "features": features}
