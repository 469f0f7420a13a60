"""The text rule (``capacity.text``) runs on every JSON body of the API (``api.body``): what
it costs on the hot routes (``POST /placements/search``, ``POST /holds``), and that its
shortcuts refuse exactly what the rule refuses."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import body
from capacity.errors import InvalidInput
from capacity.text import CODES, MULTI_LINE, leaf, refused_char

HOLD = {
    "poolRef": "pool_3f9a1c2b7d4e",
    "need": "ipv",
    "household": {"adults": [{"gender": "female"}], "children": [{"age": 4}]},
    "episodeToken": "PV-2026-123456",
    "callback": "Zone Bruxelles-Ixelles, inspectrice Hélène Dubois, +32 2 555 00 00",
}


def _no_walk(_value: Any) -> Any:
    raise AssertionError("the body was walked path by path")


@pytest.mark.parametrize(
    "raw",
    [
        # pretty-printed, as curl -d '…' from the README or an integrator's JSON library sends
        # it: the line breaks and indentation are between tokens, never inside a text (JSON
        # does not allow a raw control character in a string)
        msgspec.json.format(msgspec.json.encode(HOLD), indent=2),
        # texts in French and Dutch, as sent (UTF-8) or escaped (Python's json.dumps)
        msgspec.json.encode(HOLD),
        b'{"callback": "Zone Bruxelles, inspectrice H\\u00e9l\\u00e8ne"}',
    ],
)
def test_a_body_with_nothing_refused_is_not_walked_path_by_path(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line break between tokens of a pretty-printed body, every accent of a name in a
    callback, sent each text through the field lookup (~70 µs a hold, ~10 % of its CPU). A
    body whose texts are all printable holds nothing the rule refuses."""
    monkeypatch.setattr(body, "texts", _no_walk)
    body.refuse_bad_text(msgspec.json.decode(raw), raw)


def test_a_refused_character_is_still_named_with_its_path() -> None:
    raw = msgspec.json.encode({**HOLD, "household": {"adults": [{"gender": "fe\u202emale"}]}})
    with pytest.raises(InvalidInput) as caught:
        body.refuse_bad_text(msgspec.json.decode(raw), raw)
    assert caught.value.field == "household.adults[0].gender"
    assert "U+202E" in str(caught.value)


_ONE_LINE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\t\n\r\u2028\u2029]"
)
_MULTI = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _rule(value: str, field: str) -> str | None:
    """The rule as the module documents it, without shortcuts."""
    name = leaf(field)
    found = (_MULTI if name in MULTI_LINE else _ONE_LINE).search(value)
    if found is not None:
        return found.group()
    if name in CODES:
        return next((c for c in value if unicodedata.category(c) == "Cf"), None)
    return None


@given(
    value=st.text(
        st.characters(blacklist_categories=("Cs",))
        | st.sampled_from("\t\n\r\x07\x1b\x7f\x85\u00a0\u00ad\u200b\u200e\u2028\u2029\u202e\u2066")
    ),
    field=st.sampled_from(["label", "reason", "callback", "pools[0].label", "a.notes"]),
)
def test_the_shortcuts_refuse_what_the_rule_refuses(value: str, field: str) -> None:
    assert refused_char(value, field) == _rule(value, field)
