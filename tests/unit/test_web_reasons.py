"""The console shows the matcher's reasons and warnings in the operator's language
(api/web/reasons.py).

Every sentence the matcher makes must be recognised: a new or reworded reason or warning in
``placement`` fails here instead of reaching a French- or Dutch-speaking operator in English
(or, for a warning, losing its figures: the hour intake opens, the scheme's end date)."""

from __future__ import annotations

import itertools
import re

import pytest

from api.web import i18n, reasons
from api.web.controllers import LABELS
from placement.household import Adult, Child, Household, SearchRequest
from placement.matcher import MatcherIndex
from placement.synthetic import SYNTHETIC_NOW, synthetic_facilities

HOUSEHOLDS = [
    Household(adults=[Adult(gender="female")]),
    Household(adults=[Adult(gender="female")], children=[Child(age=4), Child(age=9)]),
    Household(
        adults=[Adult(gender="female"), Adult(gender="female")],
        children=[Child(age=1)],
        residence_status="undocumented",
        languages=["ar", "fr"],
    ),
    Household(adults=[Adult(gender="male")], languages=["nl", "en", "ru"], income="no"),
    Household(
        adults=[Adult(gender="female")],
        children=[Child(age=15, gender="male"), Child(age=12), Child(age=2)],
        languages=["de"],
    ),
    Household(
        adults=[Adult(gender="female", age_band="18-24"), Adult(gender="male")],
        children=[Child(age=14)],
        residence_status="unknown",
        income="unknown",
        languages=["tr"],
    ),
    Household(adults=[Adult(gender="nonbinary", age_band="16-17")], languages=["uk"]),
    Household(  # too large for one room: several rooms side by side where a place allows it
        adults=[Adult(gender="female")],
        children=[Child(age=a) for a in (1, 3, 6, 9, 11)],
        languages=["fr"],
    ),
    Household(adults=[Adult(gender="female", age_band="18-24")], children=[Child(age=15)]),
]
NEEDS = ["ipv", "family_violence", "sexual_violence", "trafficking", "homelessness", "other"]


def _sweep() -> tuple[set[str], set[tuple[str, str]]]:
    index = MatcherIndex(synthetic_facilities(400, 7))
    seen: set[str] = set()
    warned: set[tuple[str, str]] = set()
    for hh, need, preferred, nights in itertools.product(
        HOUSEHOLDS, NEEDS, [None, "21004", "44021"], [1, 90]
    ):
        req = SearchRequest(
            household=hh, need=need, preferred_municipality_nis=preferred, nights=nights, limit=100
        )  # type: ignore[arg-type]
        for kind in ("police", "helpline"):
            for when in (SYNTHETIC_NOW, SYNTHETIC_NOW.replace(hour=5)):  # 06:00 in Brussels
                result = index.search(req, requester_kind=kind, now=when)
                for option in result.options:
                    seen.update(option.reasons)
                    warned.update((w.code, w.message) for w in option.warnings)
    return seen, warned


_SEEN, _WARNED = _sweep()
SENTENCES = sorted(_SEEN)
WARNED = sorted(_WARNED)


def test_the_sweep_meets_every_template() -> None:
    used = {found[0] for s in SENTENCES if (found := reasons.recognise(s))}
    used |= {found[0] for c, m in WARNED if (found := reasons.recognise_warning(c, m))}
    rare = {  # forms the synthetic world does not produce; tested by hand below
        "Paying.",
        "Availability may be out of date (never reported).",
        "The scheme is planned to end before the %(nights)s nights asked.",
        "Temporarily reduced capacity: call first.",
        "Temporarily reduced capacity until %(date)s, %(time)s (Belgian time): call first.",
        "Admission condition to meet: %(conditions)s.",
        "Adults must be at least %(age)s.",
    }
    assert set(reasons.MSGIDS) - used <= rare, set(reasons.MSGIDS) - used
    assert len(SENTENCES) > 40 and len(WARNED) > 20


def test_every_warning_the_matcher_makes_is_recognised() -> None:
    unknown = [(c, m) for c, m in WARNED if reasons.recognise_warning(c, m) is None]
    assert not unknown, unknown


@pytest.mark.parametrize("lang", ["fr", "nl", "de"])
def test_warnings_keep_their_figures_in_every_language(lang: str) -> None:
    _ = i18n.translator(lang)
    for code, message in WARNED:
        shown = reasons.localise_warning(code, message, _, LABELS)
        assert shown != message and "%(" not in shown, (lang, code, shown)
        for figure in re.findall(r"\d\d:\d\d|\d{4}-\d\d-\d\d|\d+", message):
            assert figure in shown, (lang, message, shown)


def test_warnings_by_hand() -> None:
    fr = i18n.translator("fr")
    assert reasons.localise_warning(
        "admission_later", "Intake opens at 06:00 (Belgian time).", fr, LABELS
    ) == ("L'accueil ouvre à 06:00 (heure belge) : appelez d'abord.")
    assert reasons.localise_warning(
        "health_condition_to_meet", "Admission condition to meet: negative test.", fr, LABELS
    ) == ("Condition d'admission à remplir : Un test négatif.")
    assert reasons.localise_warning(
        "stale_data", "Availability may be out of date (never reported).", fr, LABELS
    ) == ("Disponibilité peut-être dépassée (jamais communiquée).")
    nl = i18n.translator("nl")
    assert reasons.localise_warning(
        "adult_age_to_check", "Adults must be at least 21.", nl, LABELS
    ) == ("Volwassenen moeten minstens 21 jaar zijn.")
    assert reasons.localise_warning(
        "runs_past_planned_end",
        "The scheme is planned to end, before the 9 nights asked.",
        nl,
        LABELS,
    ) == ("De regeling eindigt naar planning vóór de 9 gevraagde nachten.")
    de = i18n.translator("de")
    reduced = "Temporarily reduced capacity until 2025-01-17 18:00 (Belgian time): call first."
    assert reasons.localise_warning("reduced_capacity", reduced, fr, LABELS) == (
        "Capacité temporairement réduite jusqu'au 2025-01-17, 18:00 (heure belge) : "
        "appelez d'abord."
    )
    assert reasons.localise_warning("reduced_capacity", reduced, nl, LABELS) == (
        "Tijdelijk beperkte capaciteit tot 2025-01-17, 18:00 (Belgische tijd): eerst bellen."
    )
    assert "2025-01-17" in reasons.localise_warning("reduced_capacity", reduced, de, LABELS)
    # not recognised: the code's general label, else the message as it came
    assert reasons.localise_warning("shared_beds", "Something else.", fr, LABELS) == fr(
        LABELS["warning"]["shared_beds"]
    )
    assert reasons.localise_warning("new_code", "Something else.", fr, LABELS) == "Something else."


def test_every_reason_the_matcher_makes_is_recognised() -> None:
    unknown = [s for s in SENTENCES if reasons.recognise(s) is None]
    assert not unknown, unknown


@pytest.mark.parametrize("lang", ["fr", "nl", "de"])
def test_reasons_are_shown_in_the_operators_language(lang: str) -> None:
    _ = i18n.translator(lang)
    for sentence in SENTENCES:
        shown = reasons.localise(sentence, _, LABELS)
        assert shown != sentence, (lang, sentence)
        assert "%(" not in shown and "ipv" not in shown and "_" not in shown, shown


def test_figures_and_codes_survive_translation() -> None:
    fr = i18n.translator("fr")
    assert reasons.localise("Staff speak ar, fr.", fr, LABELS) == (
        f"Le personnel parle : {fr('Arabic')}, {fr('French')}."
    )
    assert reasons.localise("About 37 km from the preferred area.", fr, LABELS) == (
        "À environ 37 km de la zone souhaitée."
    )
    assert reasons.localise("Specialised care: family_violence, ipv.", fr, LABELS) == (
        f"Accompagnement spécialisé : {fr('Family violence')}, {fr('Intimate partner violence')}."
    )
    en = i18n.translator("en")
    assert reasons.localise("A room for 3 fits the household of 2.", en, LABELS) == (
        "A room for 3 fits the household of 2."
    )
    assert reasons.localise("Something new.", fr, LABELS) == "Something new."  # as it came
