"""Which characters a text sent to Abri may hold: one rule for the API, the web forms and the
command line.

Texts arrive copied from Word or a PDF by an integrating system: a bell (U+0007), an escape
(U+001B), a C1 "next line" (U+0085), a bidi override (U+202E) that shows a callback number
backwards to the next reader. None of them is ever meant, so they are refused (never
stripped: the sender must see what was wrong), naming the field and the character:

* every text: no C0 or C1 control character (U+0000-U+001F, U+007F-U+009F) except tab, line
  feed and carriage return, and no bidi embedding, override or isolate (U+202A-U+202E,
  U+2066-U+2069);
* a one-line text (a label, an alias, a name): no tab or line break either (U+2028, U+2029);
* a code (a callback number, a reference, a token): no invisible character at all (any
  Unicode format character, e.g. a zero-width space U+200B or a mark U+200E).

Multi-line texts are named in ``MULTI_LINE`` (their names in JSON, the web forms and the
``abri`` commands' options), codes in ``CODES``;
every other text is one line. Stored data is not touched: this applies to what is sent.
"""

from __future__ import annotations

import re
import unicodedata

#: Texts that may span lines (wire names in camelCase, the web forms' and CLI's in snake_case).
MULTI_LINE = frozenset(
    {"reason", "closeReason", "handoverProtocol", "handover_protocol", "handover", "notes"}
)
#: Texts that are codes someone dials or types back: no invisible character at all.
CODES = frozenset(
    {"callback", "intakePhone", "intake_phone", "ref", "poolRef", "pool_ref", "episodeToken",
     "episode", "token", "code"}
)  # fmt: skip

_ALWAYS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_REFUSED_MULTI_LINE = re.compile(f"[{_ALWAYS}]")
_REFUSED_ONE_LINE = re.compile(f"[{_ALWAYS}\t\n\r\u2028\u2029]")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE = frozenset("\t\n\r\u2028\u2029")


def leaf(field: str) -> str:
    """The last name of a field's path (``pools[0].label`` -> ``label``)."""
    return re.sub(r"\[\d+\]$", "", field.rsplit(".", 1)[-1])


def refused_char(value: str, field: str) -> str | None:
    """The first character of ``value`` the field ``field`` may not hold, else None."""
    if value.isprintable():  # no control, format (bidi, invisible) or line separator at all
        return None
    name = leaf(field)
    pattern = _REFUSED_MULTI_LINE if name in MULTI_LINE else _REFUSED_ONE_LINE
    found = pattern.search(value)
    if found is not None:
        return found.group()
    if name in CODES and not value.isascii():
        for char in value:
            if unicodedata.category(char) == "Cf":
                return char
    return None


def shown_field(field: str) -> str:
    """``field`` as an answer may name it: a character that is not printable (a refused key
    of a JSON body) as its escape, ``\\u202e``, never itself."""
    if field.isprintable():
        return field
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in field)


def refusal(field: str, char: str) -> str:
    """The sentence for a text holding ``char`` (U+0000 has its own: ``api.body``)."""
    field = shown_field(field)
    code = f"U+{ord(char):04X}"
    if char in _BIDI:
        what = f"a bidirectional text control ({code}) that changes how the text is shown"
    elif char in _LINE:
        what = f"a tab or line break ({code}), and this field is one line"
    elif unicodedata.category(char) == "Cc":
        what = f"a control character ({code})"
    else:
        what = f"an invisible character ({code}), and this field is a code to dial or type"
    return f"{field}: the text contains {what}; remove it and send it again. Nothing was saved."


def check_text(value: str, field: str) -> str | None:
    """``refusal`` for the first character ``field`` may not hold, else None."""
    char = refused_char(value, field)
    return None if char is None else refusal(field, char)
