"""The matcher's reasons for an option, in the page's language.

The matcher (``placement.matcher._build_option``) explains each option with English sentences
from a closed set of templates, and the API returns them as they are. The console shows them
in the operator's language: each template is recognised here and rebuilt from a translated
msgid with its figures; codes inside (specialisations, languages) are shown by their labels. A
sentence that matches no template is shown translated if the catalogue has it, else as it
came. ``tests/integration/test_web_reasons.py`` checks that every sentence the matcher makes is
recognised, so a new or changed sentence in the matcher fails there, not silently in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

#: template name -> (pattern of the matcher's English sentence, msgid with the same figures)
TEMPLATES: dict[str, tuple[re.Pattern[str], str]] = {
    "specialised": (
        re.compile(r"Specialised care: (?P<what>[a-z_, ]+)\."),
        "Specialised care: %(what)s.",
    ),
    "beds": (
        re.compile(r"(?P<n>\d+) beds in one place for the household of (?P<size>\d+)\."),
        "%(n)s beds in one place for the household of %(size)s.",
    ),
    "room": (
        re.compile(r"A room for (?P<places>\d+) fits the household of (?P<size>\d+)\."),
        "A room for %(places)s fits the household of %(size)s.",
    ),
    "family_room": (
        re.compile(r"A family room for (?P<places>\d+) fits the household of (?P<size>\d+)\."),
        "A family room for %(places)s fits the household of %(size)s.",
    ),
    "distance": (
        re.compile(r"About (?P<km>\d+) km from the preferred area\."),
        "About %(km)s km from the preferred area.",
    ),
    "languages": (
        re.compile(r"Staff speak (?P<langs>[a-z, ]+)\."),
        "Staff speak %(langs)s.",
    ),
    "confirmed": (
        re.compile(r"Availability confirmed (?P<n>\d+) min ago\."),
        "Availability confirmed %(n)s min ago.",
    ),
}
#: sentences without figures, translated as they are
FIXED: tuple[str, ...] = (
    "One bed for one person.",
    "Free of charge.",
    "Paying.",
    "Cost depends on income.",
    "Low threshold: no conditions on papers, income or referral.",
    "Accepts undocumented people.",
    "Intake possible now.",
    "Interpreters available.",
)
MSGIDS: tuple[str, ...] = (*(msgid for _p, msgid in TEMPLATES.values()), *FIXED)


def recognise(sentence: str) -> tuple[str, dict[str, str]] | None:
    """The template a sentence of the matcher was made from, and its figures."""
    if sentence in FIXED:
        return sentence, {}
    for pattern, msgid in TEMPLATES.values():
        m = pattern.fullmatch(sentence)
        if m is not None:
            return msgid, m.groupdict()
    return None


def localise(
    sentence: str, _: Callable[[str], str], labels: Mapping[str, Mapping[str, str]]
) -> str:
    """One reason in the language of ``_`` (a gettext function)."""
    found = recognise(sentence)
    if found is None:
        return _(sentence)
    msgid, figures = found
    if not figures:
        return _(msgid)

    def names(codes: str, kind: str) -> str:
        table = labels.get(kind, {})
        return ", ".join(
            _(table[c]) if c in table else c for c in (x.strip() for x in codes.split(","))
        )

    if "what" in figures:
        figures["what"] = names(figures["what"], "need")
    if "langs" in figures:
        figures["langs"] = names(figures["langs"], "language")
    return _(msgid) % figures
