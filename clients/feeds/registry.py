"""Format name -> adapter module. Adding a format is one new module and one line here."""

from __future__ import annotations

from types import ModuleType

from clients.feeds import csv_export, edxl_have, json_inventory

ADAPTERS: dict[str, ModuleType] = {m.FORMAT: m for m in (json_inventory, csv_export, edxl_have)}


def adapter(format_name: str) -> ModuleType:
    try:
        return ADAPTERS[format_name]
    except KeyError:
        raise KeyError(f"unknown feed format {format_name!r}") from None
