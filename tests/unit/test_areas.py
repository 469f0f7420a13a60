from __future__ import annotations

import pytest

from capacity.areas import areas, distance_km, fold, local_name, provinces_and_brussels
from capacity.errors import UnknownArea


def test_reference_data_counts() -> None:
    idx = areas()
    assert len(idx.municipalities) == 565
    levels = [a.level for a in idx.areas.values()]
    assert levels.count("region") == 3
    assert levels.count("province") == 10
    assert levels.count("arrondissement") == 43
    assert len(provinces_and_brussels()) == 11


def test_every_municipality_rolls_up_to_known_areas() -> None:
    idx = areas()
    for m in idx.municipalities.values():
        assert idx.area(m.arrondissement_nis).level == "arrondissement"
        assert idx.area(m.province_nis).level in ("province", "region")
        assert idx.area(m.region_nis).level == "region"


@pytest.mark.parametrize(
    ("query", "nis"),
    [
        ("Schaerbeek", "21015"),
        ("schaarbeek", "21015"),
        ("Liège", "62063"),
        ("Luik", "62063"),
        ("Lüttich", "62063"),
        ("liege", "62063"),
        ("Anvers", "11002"),
        ("1030", "21015"),
        ("Eupen", "63023"),
        ("Bastnach", "82039"),
    ],
)
def test_find_by_fr_nl_de_names_and_postal_code(query: str, nis: str) -> None:
    assert areas().find(query)[0].nis == nis


def test_unknown_codes_raise_and_old_codes_map_forward() -> None:
    with pytest.raises(UnknownArea):
        areas().municipality("99999")
    with pytest.raises(UnknownArea):
        areas().area("12")
    assert areas().municipality("11007").nis == "11002"  # Borsbeek merged into Antwerpen


def test_distance_and_fold() -> None:
    idx = areas()
    bxl, liege = idx.municipality("21004"), idx.municipality("62063")
    assert 85 < distance_km(bxl, liege) < 100
    assert distance_km(bxl, bxl) == 0
    assert fold("Écaussinnes-d’Enghien") == "ecaussinnesdenghien"


def test_children_of_area() -> None:
    assert len(areas().children_of("04000")) == 19
    assert "21015" in areas().children_of("21000")


@pytest.mark.parametrize(
    ("nis", "name"),
    [
        ("11002", "Antwerpen"),  # a Flemish municipality: Dutch, not "Anvers"
        ("10000", "Antwerpen"),  # its province
        ("62063", "Liège"),  # Walloon: French, not "Luik"
        ("63023", "Eupen"),  # German-speaking
        ("21004", "Bruxelles / Brussel"),  # Brussels: both
        ("21000", "Bruxelles-Capitale / Brussel-Hoofdstad"),
        ("02000", "Vlaams Gewest"),
        ("03000", "Région wallonne"),
    ],
)
def test_local_names_for_english_readers(nis: str, name: str) -> None:
    assert local_name(nis) == name


def test_within_reaches_the_neighbours_not_only_close_centroids() -> None:
    """R17's "keep away by N km" is about territory, not centroids: Herstal borders Liège
    although their centroids are 5.6 km apart; Ixelles comes within a few km of Schaerbeek;
    Namur is far from Liège."""
    idx = areas()
    assert {"62051", "62063"} <= set(idx.within("62063", 0))  # Herstal, Liège itself
    assert "21009" in idx.within("21015", 5) and "21009" not in idx.within("21015", 0)
    assert "92094" not in idx.within("62063", 5)
    assert "63023" in idx.within("63023", 0)  # itself
    assert len(idx.within("21015", 5)) > len(idx.within("21015", 0)) > 1


@pytest.mark.parametrize(
    ("query", "nis"),
    [
        ("Borsbeek", "11002"),  # merged into Antwerpen on 1 January 2025
        ("Bertogne", "82039"),  # into Bastogne, 2 December 2024
        ("Meulebeke", "37022"),  # into Tielt
        ("Wachtebeke", "44087"),  # into Lochristi
        ("Kortessem", "71072"),  # into Hasselt
        ("Moerbeke", "46029"),  # into Lokeren
        ("Gammerages", "23106"),  # Galmaarden in French, into Pajottegem
        ("Ruiselede", "37021"),  # into Wingene
        ("Ham", "71071"),  # Tessenderlo-Ham, not Hamme nor Hamoir
        ("Looz", "73111"),  # Borgloon in French, into Tongres-Looz
    ],
)
def test_find_by_a_name_from_before_the_2025_mergers(query: str, nis: str) -> None:
    """A police officer or an older partner system still says "Borsbeek" or "Meulebeke":
    the pre-2025 names lead to the municipality they are part of now, first."""
    assert areas().find(query)[0].nis == nis
    assert [m.nis for m in areas().named(query)] == [nis]


@pytest.mark.parametrize(
    ("query", "nis"),
    [
        ("Molenbeek Saint Jean", "21012"),
        ("Sint Jans Molenbeek", "21012"),
        ("SINT-JANS-MOLENBEEK", "21012"),
        ("Sint Niklaas", "46021"),
        ("Braine l'Alleud", "25014"),  # typed with a straight apostrophe and no hyphen
        ("Braine-l'Alleud", "25014"),
        ("s-Gravenbrakel", "55004"),  # the data says "’s Gravenbrakel"
        ("Comines Warneton", "57097"),
        ("Komen-Waasten", "57097"),
        ("LUIK", "62063"),
        ("liege", "62063"),
        ("Kelmis", "63040"),
        ("La Calamine", "63040"),
        ("Sankt-Vith", "63067"),
    ],
)
def test_a_hyphen_space_or_apostrophe_typed_for_another_is_no_matter(query: str, nis: str) -> None:
    assert areas().find(query)[0].nis == nis
    assert [m.nis for m in areas().named(query)] == [nis]


def test_find_by_nis_code_also_a_pre_2025_one() -> None:
    assert [m.nis for m in areas().find("62063")] == ["62063"]
    assert [m.nis for m in areas().find("11056")] == ["46030"]  # Zwijndrecht
    assert areas().find("99999") == []


def test_no_pre_2025_name_is_taken_for_another_municipality() -> None:
    """A former name must not also be the name of a different current municipality, or a
    typed name would be ambiguous."""
    idx = areas()
    for m in idx.municipalities.values():
        for name in (m.name_fr, m.name_nl, m.name_de):
            assert m.nis in [x.nis for x in idx.named(name)]
    assert all(len(idx.named(n)) == 1 for n in ("Borsbeek", "Herne", "Gooik", "Melle", "Ham"))


def test_every_area_name_is_spelt_as_a_name() -> None:
    """The 2021 source spelt the German name of the arrondissement of Ieper "ypern"; the
    task-force pages and the map showed "Bezirk ypern". Every name starts with a capital (or
    the Dutch "’s"), in the index and in the shipped shapes."""
    from capacity.areas import area_shapes

    idx = areas()
    assert idx.area("33000").name_de == "Ypern"
    names = [n for a in idx.areas.values() for n in (a.name_fr, a.name_nl, a.name_de)]
    names += [n for m in idx.municipalities.values() for n in (m.name_fr, m.name_nl, m.name_de)]
    for level in ("province", "arrondissement"):
        for feat in area_shapes(level)["features"]:
            p = feat["properties"]
            names += [p["name_fr"], p["name_nl"], p["name_de"]]
    assert [n for n in names if not n or not (n[0].isupper() or n.startswith("’s "))] == []


def test_every_shipped_data_file_names_its_source_and_licence() -> None:
    """CC BY 4.0 asks for the source, the licence and any change made: each file in
    capacity/data has its row in SOURCES.md, with a licence."""
    from importlib import resources

    data = resources.files("capacity") / "data"
    sources = (data / "SOURCES.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line.split("|")[3].strip()
        for line in sources.splitlines()
        if line.startswith("| `")
    }
    for f in data.iterdir():
        if f.name in ("SOURCES.md", "__pycache__"):
            continue
        row = next((lic for files, lic in rows.items() if f"`{f.name}`" in files), None)
        assert row is not None, f"{f.name} has no row in SOURCES.md"
        if f.name.startswith("be_"):
            assert "CC BY 4.0" in row, f.name


@pytest.mark.parametrize(
    ("query", "nis"),
    [("Brussels", "21004"), ("Ghent", "44021"), ("antwerp", "11002"), ("Ostend", "35013")],
)
def test_the_english_names_people_type_are_found(query: str, nis: str) -> None:
    """The pages are in English too: "Brussels" or "Ghent" was "Unknown municipality"."""
    assert areas().find(query)[0].nis == nis
    assert [m.nis for m in areas().named(query)] == [nis]


def test_saint_nicolas_is_ambiguous_not_silently_the_one_near_liege() -> None:
    """French speakers call Sint-Niklaas "Saint-Nicolas" (so does the arrondissement's French
    name); 62093 near Liège has that name too. Typed alone, it must be a choice, never
    silently Liège's, or "avoid Saint-Nicolas" would keep away from the wrong city."""
    assert sorted(m.nis for m in areas().named("Saint-Nicolas")) == ["46021", "62093"]
    assert [m.nis for m in areas().find("Saint-Nicolas")][:2] == ["62093", "46021"]


@pytest.mark.parametrize(
    ("level", "nis", "parent"),
    [
        ("arrondissement", "61000", "60000"),  # Huy -> province of Liège
        ("arrondissement", "25000", "03000"),  # Nivelles is all of Brabant wallon
        ("arrondissement", "21000", "BE"),  # Brussels-Capital: arrondissement = region
        ("province", "04000", "BE"),
        ("province", "60000", "03000"),
        ("region", "04000", "BE"),
        ("country", "BE", None),
    ],
)
def test_a_suppressed_cell_is_merged_into_an_area_with_more_in_it(
    level: str, nis: str, parent: str | None
) -> None:
    from capacity.taskforce_service import parent_of

    assert parent_of(level, nis) == parent
