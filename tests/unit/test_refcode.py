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
