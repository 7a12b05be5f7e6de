"""kb/quantities.py: figures with units, ranges and qualifiers; consistency of a claimed figure
with a source's (made-up sentences), and exact offsets for any text (hypothesis)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.quantities import Quantity, comparable, consistent, quantities


def one(text: str) -> Quantity:
    found = quantities(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("text, phrase, low, high, unit, kind, qualifier", [
    ("Remission occurred in 40-50% of cases.", "40-50%", 40, 50, "%", "percent", ""),
    ("Give 0.05-0.1 mg/kg/day orally.", "0.05-0.1 mg/kg/day", 0.05, 0.1, "mg/kg/day", "dose", ""),
    ("Taken 4-5 mg/kg every day.", "4-5 mg/kg every day", 4, 5, "mg/kg/day", "dose", ""),
    ("a dose of 3 mg/kg per day", "3 mg/kg per day", 3, 3, "mg/kg/day", "dose", ""),
    ("keep the dose to 5 mg/kg or less", "5 mg/kg or less", 5, 5, "mg/kg", "dose", "<="),
    ("for at least 12 months", "at least 12 months", 12, 12, "month", "duration", ">="),
    ("ineffective for more than 6 months", "more than 6 months", 6, 6, "month", "duration", ">"),
    ("trough 100-175 ng/ml", "100-175 ng/ml", 100, 175, "ng/ml", "concentration", ""),
    ("trough 5–10 ng/mL", "5–10 ng/mL", 5, 10, "ng/ml", "concentration", ""),
    ("protein ≥ 3.5g /d", "≥ 3.5g /d", 3.5, 3.5, "g/day", "dose", ">="),
    ("MMF 1-2 g/d", "1-2 g/d", 1, 2, "g/day", "dose", ""),
    ("prednisone 30-40 mg/m² on alternate days", "30-40 mg/m²", 30, 40, "mg/m2", "dose", ""),
    ("between 40 and 50 percent responded", "between 40 and 50 percent", 40, 50, "%", "percent", ""),
    ("after 16 weeks of steroids", "16 weeks", 16, 16, "week", "duration", ""),
    ("a 5-year survival", "5-year", 5, 5, "year", "duration", ""),
    ("about 70% of them", "about 70%", 70, 70, "%", "percent", "~"),
    ("in 1,200 patients", "1,200 patients", 1200, 1200, "patients", "count", ""),
    ("41 consecutive patients with SRNS", "41 consecutive patients", 41, 41, "patients", "count", ""),
    ("in 2 divided doses", "2 divided doses", 2, 2, "doses", "count", ""),
    ("a total of 2.4g", "2.4g", 2.4, 2.4, "g", "dose", ""),
    ("less than 3 months", "less than 3 months", 3, 3, "month", "duration", "<"),
    ("up to 26 weeks", "up to 26 weeks", 26, 26, "week", "duration", "<="),
])
def test_parses_figures(text: str, phrase: str, low: float, high: float, unit: str, kind: str,
                        qualifier: str) -> None:
    q = one(text)
    assert (q.text, q.low, q.high, q.unit, q.kind, q.qualifier) == (phrase, low, high, unit, kind, qualifier)
    assert text[q.start:q.end] == q.text


def test_several_figures_and_names_that_are_not_figures() -> None:
    text = "COVID-19 and parvovirus B19 raise COL4A3 risk; 94% vs 53% at 5 years (p. 234-41)."
    found = [(q.text, q.unit) for q in quantities(text)]
    assert ("94%", "%") in found and ("53%", "%") in found and ("5 years", "year") in found
    assert not any(t in ("19", "3", "4A3") for t, _ in found)
    assert ("234", "") in found  # a descending "range" is a page number, not 234 to 41


def test_offsets_are_absolute_with_a_window() -> None:
    text = "Intro 12 months. Then 40-50% remission. Tail 7 days."
    a = text.index("Then")
    b = text.index(" Tail")
    found = quantities(text, a, b)
    assert [q.text for q in found] == ["40-50%"]
    assert text[found[0].start:found[0].end] == "40-50%"


def q(text: str) -> Quantity:
    return one(text)


@pytest.mark.parametrize("claim, source, ok", [
    ("70%", "40-50%", False),  # the example: 70% is outside 40-50%
    ("45%", "40-50%", True),
    ("40-50%", "40-50%", True),
    ("30-50%", "40-50%", False),  # a wider claimed range is not within the source's
    ("0.1 mg/kg/day", "0.05-0.1 mg/kg/day", True),
    ("0.2 mg/kg/day", "0.05-0.1 mg/kg/day", False),
    ("5 mg/kg/day", "4-5 mg/kg", True),  # a dose per kg with or without /day
    ("6 months", "26 weeks", True),  # durations are converted
    ("16 weeks", "4 months", False),
    ("1 year", "12 months", True),
    ("12 months", "at least 12 months", True),
    ("at least 12 months", "12 months", False),  # a qualifier the source does not give
    ("18 months", "at least 12 months", True),
    ("at least 24 months", "at least 12 months", False),  # another threshold
    ("more than 12 months", "at least 12 months", True),
    ("less than 3 months", "up to 6 months", False),
    ("8 months", "more than 6 months", True),
    ("4 months", "more than 6 months", False),
    ("3 mg/kg", "5 mg/kg or less", True),
    ("6 mg/kg", "5 mg/kg or less", False),
    ("about 70%", "70%", True),
    ("72%", "about 70%", True),  # "about" on the source side allows a nearby figure
    ("90%", "about 70%", False),
    ("1000 mg", "1 g", True),  # masses are converted
    ("10 ng/ml", "5-10 ng/ml", True),
])
def test_consistent(claim: str, source: str, ok: bool) -> None:
    assert consistent(q(claim), q(source)) is ok


def test_comparable_units_only() -> None:
    assert comparable(q("6 months"), q("26 weeks"))
    assert comparable(q("2 g"), q("500 mg"))
    assert not comparable(q("70%"), q("70 patients"))
    assert not comparable(q("5 mg/kg"), q("5 ng/ml"))
    assert not consistent(q("70%"), q("70 mg"))  # same number, other dimension


_PIECES = st.sampled_from([
    "40-50%", "0.05-0.1 mg/kg/day", " at least ", "12 months", " or less", "≥", "3.5g /d", "between 4 and 5 ",
    "COVID-19", " B19 ", "-", "–", " to ", "/", "mg", "kg", "%", ".", ",", " ", "\n", "1,000", "weeks",
    "about ", "per day", "FSGS", "(", ")", "2003;23(2):234-41", "half", "5-year", "x",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=14), st.integers(0, 40), st.integers(0, 80))
def test_offsets_property(parts: list[str], a: int, b: int) -> None:
    text = "".join(parts)
    start, end = min(a, len(text)), min(max(a, b), len(text))
    found = quantities(text, start, end)
    for x in found:
        assert text[x.start:x.end] == x.text
        assert start <= x.start < x.end <= end
        assert x.low <= x.high
        assert x.kind in ("percent", "dose", "concentration", "duration", "count", "ratio", "other")
    assert [x.start for x in found] == sorted(x.start for x in found)


def test_a_mass_per_mass_of_another_substance_is_a_ratio_not_a_dose() -> None:
    from kb.quantities import quantities

    [q] = quantities("a urine ratio of at least 3 mg protein/mg creatinine")
    assert q.kind == "ratio" and q.low == 3
    [q] = quantities("albuminuria above 30 mg albumin/g creatinine")
    assert q.kind == "ratio"
    [q] = quantities("zorvastatin 80 mg twice weekly")
    assert q.kind == "dose"
