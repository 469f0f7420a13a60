"""The console shows the matcher's reasons in the operator's language (api/web/reasons.py).

Every sentence the matcher makes must be recognised: a new or reworded reason in
``placement.matcher`` fails here instead of reaching a French- or Dutch-speaking operator in
English."""

from __future__ import annotations

import itertools

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
]
NEEDS = ["ipv", "family_violence", "sexual_violence", "trafficking", "homelessness", "other"]


def _all_reasons() -> set[str]:
    index = MatcherIndex(synthetic_facilities(400, 7))
    seen: set[str] = set()
    for hh, need, preferred in itertools.product(HOUSEHOLDS, NEEDS, [None, "21004", "44021"]):
        req = SearchRequest(
            household=hh, need=need, preferred_municipality_nis=preferred, limit=100
        )  # type: ignore[arg-type]
        for kind in ("police", "helpline"):
            result = index.search(req, requester_kind=kind, now=SYNTHETIC_NOW)
            for option in result.options:
                seen.update(option.reasons)
    return seen


SENTENCES = sorted(_all_reasons())


def test_the_sweep_meets_every_template() -> None:
    used = {reasons.recognise(s)[0] for s in SENTENCES if reasons.recognise(s)}  # type: ignore[index]
    assert set(reasons.MSGIDS) - used <= {"Paying."}, set(reasons.MSGIDS) - used
    assert len(SENTENCES) > 40


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
