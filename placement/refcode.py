"""Hold reference codes that survive a phone line or a police radio.

Eight characters in two groups, e.g. ``KM4T-9RC7``: seven random symbols and a check symbol.
The alphabet leaves out look-alikes and sound-alikes (0/O/Q, 1/I/L, 2/Z, 5/S, 8/B, U/V) so a
code read aloud or scribbled down is not misread. The check symbol (Luhn mod N) catches every
single wrong symbol and every swap of two neighbours, so a typo is reported as a typo rather
than as "unknown hold".
"""

from __future__ import annotations

import secrets

ALPHABET = "3469ACDEFGHJKMNPRTWXY7"
N = len(ALPHABET)
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
BODY = 7


def check_symbol(body: str) -> str:
    """Luhn mod N over ``body`` (each symbol must be in the alphabet)."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // N + addend % N
    return ALPHABET[(N - total % N) % N]


def new_code() -> str:
    # One draw for the whole body (N**BODY < 2**32), read as BODY base-N digits: as uniform
    # as BODY separate draws, without BODY reads of the OS's random source.
    n = secrets.randbelow(N**BODY)
    symbols = []
    for _ in range(BODY):
        n, digit = divmod(n, N)
        symbols.append(ALPHABET[digit])
    body = "".join(symbols)
    full = body + check_symbol(body)
    return f"{full[:4]}-{full[4:]}"


def normalise(raw: str) -> str | None:
    """Canonical ``XXXX-XXXX`` form, or None if it cannot be a valid code (typo, wrong length)."""
    s = "".join(ch for ch in raw.upper() if ch not in " -_.")
    if len(s) != BODY + 1 or any(ch not in _INDEX for ch in s):
        return None
    if check_symbol(s[:BODY]) != s[BODY]:
        return None
    return f"{s[:4]}-{s[4:]}"
