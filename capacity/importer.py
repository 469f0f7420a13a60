"""Bulk onboarding from CSV: one bad row rejects the whole file, with row numbers.

UTF-8, cells separated by ``,`` or (a Belgian spreadsheet's "CSV") ``;``.
Columns (header row required; only ``operator``, ``alias``, ``municipality`` and
``intake_phone`` are mandatory, plus ``template`` or ``kind``):

=======================  ==================================================================
operator                 operator name (must exist)
alias                    the facility's public alias, e.g. "Refuge LG-3"
municipality             NIS code (2025, or a pre-2025 code mapped forward) or an unambiguous
                         FR/NL/DE municipality name
template                 ipv_refuge | requisitioned_crisis_hotel | cpas_emergency_flat |
                         night_shelter | caw_safe_house
kind                     refuge | crisis_hotel | cpas_place | night_shelter | safe_house | other
intake_phone             intake number given to requesters
intake_phone_24h         yes/no: answered round the clock (default yes)
handover_protocol        text (the template's protocol when empty)
secret_address           yes/no (template default; on unless public night shelter)
street, postal_code,     the confidential address (encrypted at rest)
city
valid_from, planned_end  ISO dates, Belgian days (temporary schemes)
pools                    ``label:unit_kind:places_per_unit:units_total`` separated by ``;``
                         e.g. ``Family rooms:family_room:4:6;Beds:bed:1:10``
policy columns           any AccessPolicy field in snake_case overrides the template:
                         low_threshold, accepts_undocumented, requires_income, cost, genders,
                         accepts_children, max_children, max_boy_age, min_adult_age,
                         accepts_adolescents_alone, specialisations, wheelchair_accessible,
                         accepts_pets, languages, interpreters_available, max_stay_nights,
                         referral_required_from, health_conditions, beds_for_households,
                         rooms_for_households
                         (lists separated by ``;``, booleans yes/no)
=======================  ==================================================================
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from capacity.areas import areas, local_name
from capacity.audit import Actor
from capacity.clock import BRUSSELS
from capacity.commands import FacilityCreate
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.errors import AbriError, ImportRejected, InvalidInput
from capacity.registry import add_facilities
from capacity.templates import TEMPLATES
from capacity.text import check_text
from placement.policy import AccessPolicy, policy_to_json

BASE = {
    "operator",
    "alias",
    "municipality",
    "template",
    "kind",
    "intake_phone",
    "intake_phone_24h",
    "handover_protocol",
    "secret_address",
    "street",
    "postal_code",
    "city",
    "valid_from",
    "planned_end",
    "pools",
    "stale_after_minutes",
}
POLICY_FIELDS = set(AccessPolicy.__struct_fields__) - {"admission_hours"}
LIST_FIELDS = {
    "genders",
    "specialisations",
    "languages",
    "referral_required_from",
    "health_conditions",
}
BOOL_FIELDS = {
    "low_threshold",
    "accepts_undocumented",
    "requires_income",
    "accepts_children",
    "accepts_adolescents_alone",
    "wheelchair_accessible",
    "accepts_pets",
    "interpreters_available",
    "beds_for_households",
    "rooms_for_households",
}
INT_FIELDS = {
    "max_children",
    "child_min_age",
    "child_max_age",
    "max_boy_age",
    "min_adult_age",
    "max_stay_nights",
}
MAX_ROWS = 5000


class RowError(msgspec.Struct):
    row: int
    field: str | None
    message: str


def _bool(v: str) -> bool:
    low = v.strip().lower()
    if low in ("yes", "y", "true", "1", "oui", "ja"):
        return True
    if low in ("no", "n", "false", "0", "non", "nee", "nein"):
        return False
    raise ValueError(f"expected yes or no, got {v!r}")


def _date(v: str) -> datetime:
    """A date as the start of that day in Belgium (midnight in Brussels, 23:00 or 22:00 UTC
    the day before), as every other day in Abri: UTC midnight would open a scheme at 01:00
    (02:00 in summer) and leave it out of searches made in the first hour of its first day."""
    d = date.fromisoformat(v.strip())
    try:
        return datetime(d.year, d.month, d.day, tzinfo=BRUSSELS).astimezone(UTC)
    except OverflowError:  # 0001-01-01: before the first instant Python knows in UTC
        raise ValueError(f"{v.strip()} is not a date between 2000 and 2100") from None


def _municipality(v: str) -> str:
    """A NIS code (a pre-2025 one mapped forward) or a municipality's name in any of the three
    languages, its pre-2025 name included, typed with or without accents and hyphens."""
    v = v.strip()
    if v.isdigit():
        return areas().canonical_municipality(v)
    named = areas().named(v)
    if len(named) == 1:
        return named[0].nis
    if named:
        which = ", ".join(f"{local_name(m.nis)} ({m.nis})" for m in named)
        raise ValueError(f"{v!r} names several municipalities: {which}; give the NIS code")
    raise ValueError(f"{v!r} is not a known municipality name or NIS code")


def _to_camel(k: str) -> str:
    head, *rest = k.split("_")
    return head + "".join(x.capitalize() for x in rest)


def parse_row(row: dict[str, str]) -> FacilityCreate:
    data: dict[str, Any] = {}
    policy_over: dict[str, Any] = {}
    for key, raw in row.items():
        if key is None:
            raise ValueError("the row has more cells than the header")
        v = (raw or "").strip()
        if v == "":
            continue
        refused = check_text(v, key)  # the API's rule for texts, by column
        if refused is not None:
            raise InvalidInput(refused, field=key)
        if key in ("operator", "alias", "template", "kind", "intake_phone", "handover_protocol"):
            data[_to_camel(key)] = v
        elif key == "municipality":
            data["municipalityNis"] = _municipality(v)
        elif key == "secret_address":
            data["secretAddress"] = _bool(v)
        elif key == "intake_phone_24h":
            data["intakePhone24h"] = _bool(v)
        elif key in ("valid_from", "planned_end"):
            data[_to_camel(key)] = _date(v).isoformat()
        elif key == "stale_after_minutes":
            data["staleAfterMinutes"] = int(v)
        elif key in ("street", "postal_code", "city"):
            data.setdefault("address", {})[_to_camel(key)] = v
        elif key == "pools":
            pools = []
            for part in v.split(";"):
                bits = part.split(":")
                if len(bits) != 4:
                    raise ValueError(f"pool {part!r} must be label:unit_kind:places:total")
                pools.append(
                    {
                        "label": bits[0].strip(),
                        "unitKind": bits[1].strip(),
                        "placesPerUnit": int(bits[2]),
                        "unitsTotal": int(bits[3]),
                    }
                )
            data["pools"] = pools
        elif key in LIST_FIELDS:
            policy_over[key] = [x.strip() for x in v.split(";") if x.strip()]
        elif key in BOOL_FIELDS:
            policy_over[key] = _bool(v)
        elif key in INT_FIELDS:
            policy_over[key] = int(v)
        elif key in POLICY_FIELDS:
            policy_over[key] = v
        else:  # pragma: no cover - header is checked before rows
            raise ValueError(f"unknown column {key!r}")
    if policy_over:
        base = AccessPolicy()
        tpl = TEMPLATES.get(data.get("template", ""))
        if tpl is not None:
            base = tpl.policy
        merged = {**policy_to_json(base), **{_to_camel(k): v for k, v in policy_over.items()}}
        data["policy"] = merged
    return msgspec.convert(data, FacilityCreate)


def _delimiter(text: str) -> str:
    """``,``, or ``;`` when the header row has semicolons and no comma: what Excel and
    LibreOffice save as "CSV" in a Belgian locale (the header's names never hold either)."""
    first = text.split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


def parse_csv(text: str) -> list[FacilityCreate]:
    return [cmd for _, cmd in parse_csv_rows(text)]


def parse_csv_rows(text: str) -> list[tuple[int, FacilityCreate]]:
    """Validate every row; raise ImportRejected listing every bad row (1-based, header = 1).

    Rows are numbered as in the spreadsheet the file came from: a cell with line breaks is one
    row, a blank line is a row. Empty rows (blank, or only separators: what a spreadsheet saves
    for rows once used or formatted) are skipped."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    header = next(reader, [])
    errors: list[RowError] = []
    # columns without a name: the empty cells a spreadsheet saves after the last column when
    # its used range is wider (a note once typed further right), skipped as empty rows are
    unnamed = {i for i, h in enumerate(header) if not h.strip()}
    unknown = [
        h for i, h in enumerate(header) if i not in unnamed and h not in BASE | POLICY_FIELDS
    ]
    missing = [h for h in ("operator", "alias", "municipality", "intake_phone") if h not in header]
    if unknown or missing or len(unnamed) == len(header):
        msg = []
        if unknown:
            msg.append(f"unknown columns: {', '.join(unknown)}")
        if missing:
            msg.append(f"missing columns: {', '.join(missing)}")
        raise ImportRejected(
            "The header is not right (" + "; ".join(msg or ["empty file"]) + ").",
            errors=[RowError(1, None, "; ".join(msg or ["empty file"]))],
        )
    out: list[tuple[int, FacilityCreate]] = []
    seen: set[tuple[str, str]] = set()
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if line - 1 > MAX_ROWS:
            raise ImportRejected(f"At most {MAX_ROWS} rows per file.", errors=[])
        row: dict[Any, Any] = {
            h: (cells[i] if i < len(cells) else None)
            for i, h in enumerate(header)
            if i not in unnamed
        }
        if len(cells) > len(header):
            row[None] = cells[len(header) :]
        try:
            if any(i < len(cells) and cells[i].strip() for i in unnamed):
                raise ValueError("the row has a value in a column without a name in the header")
            cmd = parse_row(row)
            if cmd.template is not None and cmd.template not in TEMPLATES:
                raise ValueError(f"unknown template {cmd.template!r}")
            if cmd.template is None and cmd.kind is None:
                raise ValueError("give a template or a kind")
            key = (cmd.operator, cmd.alias)
            if key in seen:
                raise ValueError(f"alias {cmd.alias!r} appears twice for {cmd.operator!r}")
            seen.add(key)
            out.append((line, cmd))
        except (ValueError, msgspec.ValidationError, AbriError) as exc:
            field = getattr(exc, "field", None)
            errors.append(RowError(line, field, str(exc)))
    if errors:
        raise ImportRejected(
            f"{len(errors)} row(s) are not valid; nothing was imported.", errors=errors
        )
    if not out:
        raise ImportRejected("The file has no rows.", errors=[])
    return out


async def import_csv(
    db: Database, text: str, *, actor: Actor, now: datetime, cipher: AddressCipher
) -> list[int]:
    rows = parse_csv_rows(text)
    cmds = [cmd for _, cmd in rows]
    try:
        return await add_facilities(db, cmds, actor=actor, now=now, cipher=cipher, source="import")
    except AbriError as exc:

        def line_of(row: object) -> int | None:
            return rows[row - 1][0] if isinstance(row, int) and 0 < row <= len(rows) else None

        failures = exc.extra.pop("failures", None) or [(exc.extra.get("row"), exc)]
        errors = [RowError(line_of(i) or 0, e.field, e.detail) for i, e in failures]
        more = (
            f" {len(errors) - 1} more row(s) cannot be imported either." if len(errors) > 1 else ""
        )
        raise ImportRejected(
            f"Row {line_of(exc.extra.get('row'))}: {exc.detail}{more} Nothing was imported.",
            errors=errors,
        ) from exc
