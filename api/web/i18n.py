"""Translations for the web pages: gettext catalogues (``locale/<lang>/LC_MESSAGES/messages.po``)
read at start-up with Babel, so an editable install needs no compile step."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGS = ("fr", "nl", "de", "en")
LANG_NAMES = {"fr": "Français", "nl": "Nederlands", "de": "Deutsch", "en": "English"}
DEFAULT_LANG = "fr"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> msgstr for one language (untranslated or fuzzy entries left out)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        cat = read_po(fh, locale=lang)
    return {
        str(m.id): str(m.string)
        for m in cat
        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
    }


def translator(lang: str) -> Callable[[str], str]:
    table = catalogue(lang if lang in LANGS else DEFAULT_LANG)

    def gettext(message: str) -> str:
        return table.get(message, message)

    return gettext


def colon(lang: str) -> str:
    """What goes between a label and its value: French writes a narrow no-break space before
    the colon ("Adultes : 1"), the other languages none ("Adults: 1")."""
    return "\u202f:" if lang == "fr" else ":"


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language cookie if valid, else the first supported Accept-Language, else French."""
    if cookie in LANGS:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return DEFAULT_LANG
