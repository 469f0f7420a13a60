"""The matcher's reasons and warnings for an option, in the page's language.

The matcher (``placement.matcher._build_option``) explains each option with English sentences
from a closed set of templates, and the API returns them as they are. The console shows them
in the operator's language: each template is recognised here and rebuilt from a translated
msgid with its figures; codes inside (specialisations, languages) are shown by their labels. A
sentence that matches no template is shown translated if the catalogue has it, else as it
came. Warnings likewise, by their code, keeping their figures (the hour intake opens, the
scheme's end date, the condition to meet); one whose message is not recognised falls back to
the code's general label. ``tests/unit/test_web_reasons.py`` checks that every sentence the
matcher makes is recognised, so a new or changed one fails there, not silently in English.
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
    "rooms": (
        re.compile(
            r"(?P<n>\d+) rooms for (?P<places>\d+), side by side, for the household of "
            r"(?P<size>\d+)\."
        ),
        "%(n)s rooms for %(places)s, side by side, for the household of %(size)s.",
    ),
    "family_rooms": (
        re.compile(
            r"(?P<n>\d+) family rooms for (?P<places>\d+), side by side, for the household of "
            r"(?P<size>\d+)\."
        ),
        "%(n)s family rooms for %(places)s, side by side, for the household of %(size)s.",
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
#: warning code -> the forms of its message (pattern, msgid with the same figures)
WARNINGS: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    code: tuple((re.compile(pattern), msgid) for pattern, msgid in forms)
    for code, forms in {
        "language_mismatch": (
            (
                r"Staff speak (?P<langs>[a-z, ]+); no interpreters\.",
                "Staff speak %(langs)s; no interpreters.",
            ),
        ),
        "health_condition_to_meet": (
            (
                r"Admission condition to meet: (?P<conditions>[a-z ,]+)\.",
                "Admission condition to meet: %(conditions)s.",
            ),
        ),
        "documents_to_check": (
            (
                r"Requires residence documents: check first\.",
                "Requires residence documents: check first.",
            ),
        ),
        "income_to_check": (
            (
                r"Requires an income or charges a fee \((?P<cost>[a-z_]+)\)\.",
                "Requires an income or charges a fee (%(cost)s).",
            ),
        ),
        "boy_age_to_check": (
            (
                r"Takes no boys over (?P<age>\d+); a child's gender is not given\.",
                "Takes no boys over %(age)s; a child's gender is not given.",
            ),
        ),
        "adult_age_to_check": (
            (r"Adults must be at least (?P<age>\d+)\.", "Adults must be at least %(age)s."),
        ),
        "admission_later": (
            (
                r"Intake opens at (?P<time>\d\d:\d\d) \(Belgian time\)\.",
                "Intake opens at %(time)s (Belgian time): call first.",
            ),
        ),
        "not_specialised": (
            (r"No specialised care for (?P<need>[a-z ]+)\.", "No specialised care for %(need)s."),
        ),
        "stale_data": (
            (
                r"Availability may be out of date \(last reported (?P<h>\d+) h ago\)\.",
                "Availability may be out of date (last reported %(h)s h ago).",
            ),
            (
                r"Availability may be out of date \(never reported\)\.",
                "Availability may be out of date (never reported).",
            ),
        ),
        "reduced_capacity": (
            (
                r"Temporarily reduced capacity: call first\.",
                "Temporarily reduced capacity: call first.",
            ),
            (
                r"Temporarily reduced capacity until (?P<date>\d{4}-\d\d-\d\d) "
                r"(?P<time>\d\d:\d\d) \(Belgian time\): call first\.",
                "Temporarily reduced capacity until %(date)s, %(time)s (Belgian time): call first.",
            ),
        ),
        "runs_past_planned_end": (
            (
                r"The scheme is planned to end on (?P<date>\d{4}-\d\d-\d\d), before the "
                r"(?P<nights>\d+) nights asked\.",
                "The scheme is planned to end on %(date)s, before the %(nights)s nights asked.",
            ),
            (
                r"The scheme is planned to end, before the (?P<nights>\d+) nights asked\.",
                "The scheme is planned to end before the %(nights)s nights asked.",
            ),
        ),
        "beyond_one_hour": (
            (
                r"About (?P<km>\d+) km from the preferred area: likely more than an hour's "
                r"journey\.",
                "About %(km)s km from the preferred area: likely more than an hour's journey.",
            ),
        ),
        "shared_beds": (
            (
                r"The household takes (?P<n>\d+) beds in a shared space\.",
                "The household takes %(n)s beds in a shared space.",
            ),
        ),
        "several_rooms": (
            (
                r"The household is spread over (?P<n>\d+) rooms of this place\.",
                "The household is spread over %(n)s rooms of this place.",
            ),
        ),
    }.items()
}
MSGIDS: tuple[str, ...] = (
    *(msgid for _p, msgid in TEMPLATES.values()),
    *FIXED,
    *(msgid for forms in WARNINGS.values() for _p, msgid in forms),
)


def recognise(sentence: str) -> tuple[str, dict[str, str]] | None:
    """The template a sentence of the matcher was made from, and its figures."""
    if sentence in FIXED:
        return sentence, {}
    for pattern, msgid in TEMPLATES.values():
        m = pattern.fullmatch(sentence)
        if m is not None:
            return msgid, m.groupdict()
    return None


def recognise_warning(code: str, message: str) -> tuple[str, dict[str, str]] | None:
    """The form a warning's message was made from, and its figures."""
    for pattern, msgid in WARNINGS.get(code, ()):
        m = pattern.fullmatch(message)
        if m is not None:
            return msgid, m.groupdict()
    return None


# figure -> the label table its codes are shown with (codes may come with spaces for "_")
_CODED = {
    "what": "need",
    "need": "need",
    "langs": "language",
    "conditions": "health",
    "cost": "cost",
}


def _fill(
    msgid: str,
    figures: dict[str, str],
    _: Callable[[str], str],
    labels: Mapping[str, Mapping[str, str]],
) -> str:
    for name, kind in _CODED.items():
        if name in figures:
            table = labels.get(kind, {})
            codes = (x.strip().replace(" ", "_") for x in figures[name].split(","))
            figures[name] = ", ".join(_(table[c]) if c in table else c for c in codes)
    return _(msgid) % figures if figures else _(msgid)


def localise(
    sentence: str, _: Callable[[str], str], labels: Mapping[str, Mapping[str, str]]
) -> str:
    """One reason in the language of ``_`` (a gettext function)."""
    found = recognise(sentence)
    return _(sentence) if found is None else _fill(*found, _, labels)


def localise_warning(
    code: str, message: str, _: Callable[[str], str], labels: Mapping[str, Mapping[str, str]]
) -> str:
    """One warning in the language of ``_``; its code's general label if the message is not
    recognised, else the message as it came."""
    found = recognise_warning(code, message)
    if found is not None:
        return _fill(*found, _, labels)
    general = labels.get("warning", {}).get(code)
    return _(general) if general else message
