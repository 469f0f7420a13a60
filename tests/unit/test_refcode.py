"""Reference codes: well-formed, self-checking, and drawn from the whole alphabet everywhere."""

from __future__ import annotations

from placement.refcode import ALPHABET, BODY, check_symbol, new_code, normalise


def test_new_codes_are_valid_and_use_every_symbol_in_every_position() -> None:
    codes = [new_code() for _ in range(5000)]
    seen: list[set[str]] = [set() for _ in range(BODY)]
    for code in codes:
        assert normalise(code) == code
        body = code.replace("-", "")[:BODY]
        assert check_symbol(body) == code[-1]
        for i, ch in enumerate(body):
            seen[i].add(ch)
    # 5,000 draws: a symbol missing from a position by chance has probability < 1e-90.
    assert all(s == set(ALPHABET) for s in seen)
    assert len(set(codes)) > 4990  # 22**7 codes: collisions are rare


def test_a_single_wrong_symbol_is_caught() -> None:
    code = new_code()
    i = 2
    wrong = ALPHABET[(ALPHABET.index(code[i]) + 1) % len(ALPHABET)]
    assert normalise(code[:i] + wrong + code[i + 1 :]) is None


def test_the_example_codes_we_print_are_real_codes() -> None:
    """The README and the link page's hint gave KM4T-9RCX, which Abri itself refuses (its
    check symbol is wrong): a user copying the example got "not a reference code". The API's own
    refusal (``bad-reference``) still suggested it, so an officer who retyped the code the
    error offered was refused again."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    texts = [(root / "README.md").read_text(encoding="utf-8")]
    texts += [
        p.read_text(encoding="utf-8")
        for package in ("api", "placement", "capacity", "clients", "ops")
        for p in (root / package).rglob("*.py")
    ]
    symbols = f"[{ALPHABET}]"
    code = rf"\b{symbols}{{4}}-{symbols}{{4}}\b"  # EDXL-HAVE is not one: no L, no 0, no O
    # ``XXXX-XXXX`` describes the form, it is no example
    shown = {c for t in texts for c in re.findall(code, t) if len(set(c) - {"-"}) > 1}
    assert shown, "no example code found"
    for code in shown:
        assert normalise(code) == code, code
