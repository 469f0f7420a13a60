"""Every environment variable the code reads is documented in ops/ENVIRONMENT.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("api", "capacity", "placement", "clients", "ops")


def test_every_variable_read_is_documented() -> None:
    doc = (ROOT / "ops" / "ENVIRONMENT.md").read_text()
    documented = set(re.findall(r"`((?:ABRI|PROMETHEUS)_[A-Z0-9_]+)`", doc))
    read: set[str] = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            if "bench" in path.parts:
                continue  # benchmarks take their own flags
            text = path.read_text()
            read |= set(re.findall(r"[\"']((?:ABRI|PROMETHEUS)_[A-Z0-9_]+)[\"']", text))
            for prefix in re.findall(r"f[\"']((?:ABRI)_[A-Z_]+)\{", text):
                read |= {v for v in documented if v.startswith(prefix)}
    assert read, "no variables found: the scan is broken"
    missing = sorted(read - documented)
    assert not missing, f"read by the code but not in ops/ENVIRONMENT.md: {missing}"
