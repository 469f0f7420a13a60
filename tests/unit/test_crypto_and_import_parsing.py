from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet

from capacity.crypto import Address, AddressCipher, AddressKeyError
from capacity.errors import ImportRejected
from capacity.importer import parse_csv


def test_address_round_trip_and_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    old, new = Fernet.generate_key(), Fernet.generate_key()
    addr = Address(street="Rue Secrète 1", postal_code="1000", city="Bruxelles")
    c_old = AddressCipher([old])
    token = c_old.encrypt(addr)
    assert "Secrète" not in token
    rotated = AddressCipher([new, old])
    assert rotated.decrypt(token) == addr
    token2 = rotated.rotate(token)
    assert AddressCipher([new]).decrypt(token2) == addr
    with pytest.raises(AddressKeyError):
        AddressCipher([new]).decrypt(token)


def test_key_file_is_created_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.key"
    c = AddressCipher.from_settings(None, str(path))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = AddressCipher.from_settings(None, str(path))
    assert again.decrypt(c.encrypt(Address(street="x"))).street == "x"


def test_import_lists_every_bad_row() -> None:
    text = (
        "operator,alias,municipality,template,intake_phone,max_boy_age,accepts_pets\n"
        "A,One,21004,ipv_refuge,+32 2 555 00 00,12,no\n"
        "A,Two,21004,ipv_refuge,+32 2 555 00 00,twelve,no\n"
        "A,One,21004,ipv_refuge,+32 2 555 00 00,12,no\n"
        "A,Four,Atlantis,ipv_refuge,+32 2 555 00 00,,maybe\n"
    )
    with pytest.raises(ImportRejected) as err:
        parse_csv(text)
    rows = [e.row for e in err.value.extra["errors"]]
    assert rows == [3, 4, 5]


def test_import_header_checked() -> None:
    with pytest.raises(ImportRejected, match="unknown columns: colour"):
        parse_csv(
            "operator,alias,municipality,intake_phone,colour\nA,B,21004,+32 2 555 00 00,red\n"
        )
    with pytest.raises(ImportRejected, match="missing columns"):
        parse_csv("operator,alias\nA,B\n")


def test_import_policy_overrides_template() -> None:
    [cmd] = parse_csv(
        "operator,alias,municipality,template,intake_phone,max_boy_age,languages\n"
        "A,One,Gent,ipv_refuge,+32 9 555 00 00,16,nl;en\n"
    )
    assert cmd.policy is not None and cmd.policy.max_boy_age == 16
    assert cmd.policy.languages == ["nl", "en"]
    assert cmd.policy.specialisations == ["ipv", "family_violence"]  # from the template
    assert cmd.municipality_nis == "44021"
    assert cmd.intake_phone_24h is True  # the default: a 24/7 intake number


def test_import_intake_phone_hours() -> None:
    """R21: a CPAS whose intake phone answers in office hours only says so in the file."""
    day, night = parse_csv(
        "operator,alias,municipality,template,intake_phone,intake_phone_24h\n"
        "A,Day,Gent,cpas_emergency_flat,+32 9 555 00 00,no\n"
        "A,Night,Gent,ipv_refuge,+32 9 555 00 01,yes\n"
    )
    assert (day.intake_phone_24h, night.intake_phone_24h) == (False, True)


def test_import_takes_a_municipality_as_people_write_it() -> None:
    """A register kept in a spreadsheet writes "liege" without its accent, "Braine-l'Alleud"
    with a straight apostrophe, "Molenbeek Saint Jean" without hyphens, or a name from before
    the 2025 mergers ("Kruibeke", "Borsbeek", "Bertogne"); each is the municipality it names
    (now), not an error that refuses the whole file."""
    names = {
        "liege": "62063",
        "LUIK": "62063",
        "Braine-l'Alleud": "25014",
        "Molenbeek Saint Jean": "21012",
        "Kruibeke": "46030",
        "Borsbeek": "11002",
        "Bertogne": "82039",
        "Meulebeke": "37022",
        "11056": "46030",  # Zwijndrecht's code before 2025
    }
    text = "operator,alias,municipality,template,intake_phone\n" + "".join(
        f"A,Place {i},{name},ipv_refuge,+32 2 555 00 00\n" for i, name in enumerate(names)
    )
    cmds = parse_csv(text)
    assert [c.municipality_nis for c in cmds] == list(names.values())
    with pytest.raises(ImportRejected) as err:  # Sint-Niklaas, or the one near Liège?
        parse_csv(
            "operator,alias,municipality,template,intake_phone\n"
            "A,X,Saint-Nicolas,ipv_refuge,+32 2 555 00 00\n"
        )
    [problem] = err.value.extra["errors"]
    assert "46021" in problem.message and "62093" in problem.message
    with pytest.raises(ImportRejected):
        parse_csv(
            "operator,alias,municipality,template,intake_phone\nA,X,Ham-sur-Atlantis,ipv_refuge,+32 2 555 00 00\n"
        )


def test_import_reads_the_semicolon_csv_of_belgian_spreadsheets() -> None:
    """Excel and LibreOffice in a Belgian (fr-BE, nl-BE, de-BE) locale save "CSV" with `;`
    between cells; the import took the whole header for one unknown column. Cells holding a
    `;` list (pools, languages) are quoted by the spreadsheet, as with commas."""
    comma = parse_csv(
        "operator,alias,municipality,template,intake_phone,pools,languages\n"
        'A,Refuge 1,Liège,ipv_refuge,+32 4 555 00 00,"Rooms:room:2:3;Beds:bed:1:4","fr;nl"\n'
    )
    semicolon = parse_csv(
        "\ufeffoperator;alias;municipality;template;intake_phone;pools;languages\r\n"
        'A;Refuge 1;Liège;ipv_refuge;+32 4 555 00 00;"Rooms:room:2:3;Beds:bed:1:4";"fr;nl"\r\n'
    )
    assert semicolon == comma
    assert [p.label for p in semicolon[0].pools] == ["Rooms", "Beds"]
    # A comma file whose header happens to hold no comma cannot exist (4 columns are required).


def test_import_ignores_the_empty_columns_a_spreadsheet_saves_after_the_last() -> None:
    """A sheet whose used range is wider than its columns (a note once typed in column K, a
    formatted column) is saved with empty cells after the last column, the header's included:
    the import refused the whole file for "unknown columns: , ". Empty columns are skipped, as
    empty rows are; a value in a column without a name is still refused, by its row."""
    plain = parse_csv(
        "operator;alias;municipality;template;intake_phone\r\n"
        "A;Refuge 1;Gent;ipv_refuge;+32 9 555 00 00\r\n"
    )
    wide = parse_csv(
        "operator;alias;municipality;template;intake_phone;;\r\n"
        "A;Refuge 1;Gent;ipv_refuge;+32 9 555 00 00;;\r\n"
    )
    assert wide == plain
    with pytest.raises(ImportRejected) as err:
        parse_csv(
            "operator;alias;municipality;template;intake_phone;;\r\n"
            "A;Refuge 1;Gent;ipv_refuge;+32 9 555 00 00;;\r\n"
            "A;Refuge 2;Gent;ipv_refuge;+32 9 555 00 00;;call Sam first\r\n"
        )
    [bad] = err.value.extra["errors"]
    assert bad.row == 3 and "column without a name" in bad.message


def test_import_scheme_dates_are_belgian_days() -> None:
    """A winter scheme imported with valid_from 2026-11-15 opens at midnight in Belgium, not
    at 01:00 (UTC midnight): a search at 00:30 on the 15th must not leave it out as "not yet
    started", nor the staff page say it starts at 01:00. A summer date is 22:00 UTC."""
    [cmd] = parse_csv(
        "operator,alias,municipality,template,intake_phone,valid_from,planned_end\n"
        "A,Winter,Gent,requisitioned_crisis_hotel,+32 9 555 00 00,2026-11-15,2027-03-31\n"
    )
    assert cmd.valid_from == datetime(2026, 11, 14, 23, 0, tzinfo=UTC)
    assert cmd.planned_end == datetime(2027, 3, 30, 22, 0, tzinfo=UTC)
    with pytest.raises(ImportRejected) as bad:  # a mistyped year: the row's error, not a 500
        parse_csv(
            "operator,alias,municipality,template,intake_phone,valid_from\n"
            "A,Winter,Gent,requisitioned_crisis_hotel,+32 9 555 00 00,0001-01-01\n"
        )
    assert [e.row for e in bad.value.extra["errors"]] == [2]
