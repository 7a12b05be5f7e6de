"""The project's one number/unit parser: figures with their units, ranges and qualifiers
("30-45%", "0.2-0.4 mg/kg/day", "more than 8 weeks", "2 mg/kg or less", "≥ 3.5 g/d"), and
whether a claimed figure is consistent with a source's.

Offsets are absolute into the text passed, so `text[q.start:q.end] == q.text` always holds.
Units are normalised ("mg/kg every day" -> "mg/kg/day", "weeks" -> "week", "percent" -> "%");
durations are compared after conversion to days (6 months ~ 26 weeks), masses in mg.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

KINDS = ("percent", "dose", "concentration", "duration", "count", "ratio", "other")


@dataclass(frozen=True)
class Quantity:
    start: int
    end: int
    text: str  # == the text passed [start:end]: qualifier, number(s) and unit as written
    low: float
    high: float  # == low for a single value
    unit: str  # normalised ("" for a bare number)
    kind: str  # one of KINDS
    qualifier: str = ""  # "<", ">", "<=", ">=", "~" or ""


# -- units: pattern as written -> normalised unit ----------------------------------------------
_PER_DAY = r"(?:\s*/\s*(?:day|d)\b|\s+(?:per|a|every|each)\s+day\b|\s+daily\b)"
_UNITS: tuple[tuple[str, str], ...] = (
    (rf"mg\s*/\s*kg{_PER_DAY}", "mg/kg/day"),
    (r"mg\s*/\s*kg\b", "mg/kg"),
    (r"g\s*/\s*kg\b", "g/kg"),
    (r"mg\s*/\s*m(?:²|2|\^2)", "mg/m2"),
    (r"mg\s*/\s*d[lL]\b", "mg/dl"),
    (r"(?:ng|µg|ug|mcg)\s*/\s*m[lL]\b", "ng/ml"),
    (r"(?:µg|ug|mcg)\s*/\s*[lL]\b", "ng/ml"),
    (r"ml\s*/\s*min(?:\s*/\s*1\.73\s*m(?:²|2))?", "ml/min"),
    (r"mm\s*Hg\b", "mmHg"),
    (r"g(?:\s*/\s*(?:day|d)\b|\s+(?:per|a|every|each)\s+day\b|\s+daily\b)", "g/day"),
    (rf"mg{_PER_DAY}", "mg/day"),
    (r"mg\b", "mg"),
    (r"g\b", "g"),
    (r"(?:%|percent\b|per\s+cent\b)", "%"),
    (r"(?:weeks?|wks?)\b", "week"),
    (r"(?:months?|mos?)\b", "month"),
    (r"(?:years?|yrs?)\b", "year"),
    (r"days?\b", "day"),
    (r"(?:hours?|hrs?|h)\b", "hour"),
    (r"(?:units?|IU|U)(?:\s*/\s*(?:1\.73\s*)?m(?:²|2)\b|\s*/\s*kg\b)?(?![A-Za-z])", "units"),
    # A count may carry one adjective: "41 consecutive patients", "2 divided doses".
    (r"(?:(?!(?:of|in|to|and|or|per|with|for|the|a|an)\b)[a-z]{3,}[ \t]+)?"
     r"(?:patients?|participants?|subjects?|children|adults?|cases?|people|persons?)\b", "patients"),
    (r"(?:(?!(?:of|in|to|and|or|per|with|for|the|a|an)\b)[a-z]{3,}[ \t]+)?(?:doses?|courses?|cycles?|infusions?)\b",
     "doses"),
    (r"(?:-\s*)?fold\b", "fold"),
)
_UNIT_RE = "|".join(f"(?:{p})" for p, _ in _UNITS)
_UNIT_COMPILED = [(re.compile(p, re.IGNORECASE), u) for p, u in _UNITS]

_KIND = {"%": "percent", "mg/kg/day": "dose", "mg/kg": "dose", "g/kg": "dose", "mg/m2": "dose",
         "mg": "dose", "g": "dose", "g/day": "dose", "mg/day": "dose", "units": "dose",
         "ng/ml": "concentration", "mg/dl": "concentration", "ml/min": "other", "mmHg": "other",
         "week": "duration", "month": "duration", "year": "duration", "day": "duration",
         "hour": "duration", "patients": "count", "doses": "count", "fold": "ratio", "": "other"}

# Same dimension -> (dimension, factor to its base unit).
_DIMENSION = {
    "%": ("percent", 1.0), "": ("bare", 1.0), "fold": ("fold", 1.0),
    "mg": ("mass", 1.0), "g": ("mass", 1000.0),
    # A dose per kg is written with or without "/day" for the same daily dose.
    "mg/kg/day": ("mass/kg", 1.0), "mg/kg": ("mass/kg", 1.0), "g/kg": ("mass/kg", 1000.0),
    "mg/day": ("mass/day", 1.0), "g/day": ("mass/day", 1000.0),
    "mg/m2": ("mass/m2", 1.0), "ng/ml": ("ng/ml", 1.0), "mg/dl": ("mg/dl", 1.0),
    "ml/min": ("ml/min", 1.0), "mmHg": ("mmHg", 1.0), "units": ("units", 1.0),
    "hour": ("time", 1 / 24), "day": ("time", 1.0), "week": ("time", 7.0),
    "month": ("time", 365.25 / 12), "year": ("time", 365.25),
    "patients": ("patients", 1.0), "doses": ("doses", 1.0),
}
# Relative tolerance: written figures are rounded; converted durations are approximate
# (6 months = 182.6 days vs 26 weeks = 182 days).
_TOLERANCE = 1e-6
_CONVERTED_TOLERANCE = 0.03
_APPROX = 0.1  # "about 70%" on the source side: within 10%

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_PREFIX = (
    (r"≥|>=|=>|at\s+least|no\s+less\s+than|not\s+less\s+than|a\s+minimum\s+of|minimum(?:\s+of)?", ">="),
    (r"≤|<=|=<|up\s+to|at\s+most|no\s+more\s+than|not\s+more\s+than|a\s+maximum\s+of|maximum(?:\s+of)?", "<="),
    (r">|more\s+than|greater\s+than|over|above|exceeding|in\s+excess\s+of", ">"),
    (r"<|less\s+than|fewer\s+than|under|below", "<"),
    (r"~|≈|about|approximately|approx\.?|around|roughly|nearly|circa", "~"),
)
_SUFFIX = ((r"or\s+(?:more|greater|longer|above)", ">="), (r"or\s+(?:less|fewer|lower|below|shorter)", "<="))
_PREFIX_RE = "|".join(f"(?P<p{i}>{p})" for i, (p, _) in enumerate(_PREFIX))
_SUFFIX_RE = "|".join(f"(?P<s{i}>{p})" for i, (p, _) in enumerate(_SUFFIX))
# A range joiner: "40-50", "40 – 50", "40 to 50"; "and" only after "between".
_JOIN = r"\s*(?:-|–|—|to\b)\s*"

PATTERN = re.compile(
    rf"(?:(?<![\w])(?:{_PREFIX_RE})\s*)?"
    rf"(?P<btw>between\s+)?"
    rf"(?<![\w.,/])(?P<a>{_NUM})(?:\s*(?P<ua>{_UNIT_RE}))?"
    rf"(?:(?:{_JOIN}|(?(btw)\s+and\s+|(?!)))(?P<b>{_NUM})(?![\d])(?:\s*-?\s*(?P<ub>{_UNIT_RE}))?)?"
    rf"(?(ua)|(?:\s*-?\s*(?P<u>{_UNIT_RE}))?)"  # a unit after the first number is the unit
    rf"(?![\w])"
    rf"(?:\s+(?:{_SUFFIX_RE})\b)?",
    re.IGNORECASE)


def _unit_of(raw: str | None) -> str:
    if not raw:
        return ""
    for pattern, unit in _UNIT_COMPILED:
        if pattern.fullmatch(raw.strip()):
            return unit
    return ""


def _value(raw: str) -> float:
    return float(raw.replace(",", ""))


def _glued(text: str, i: int) -> bool:
    """Is the number at i part of a name ("COVID-19", "B19", "COL4A3")?"""
    return i > 0 and (text[i - 1].isalpha() or (text[i - 1] == "-" and i > 1 and text[i - 2].isalnum()))


# A mass of one thing per mass of another, written with the substance between: a ratio, not a dose.
_PER_MASS = re.compile(r"\s*[A-Za-z]+\s*/\s*(?:mg|g|mmol)\b")


def quantities(text: str, start: int = 0, end: int | None = None) -> list[Quantity]:
    """Every figure in text[start:end], with absolute offsets. Numbers glued to letters
    (COL4A3, COVID-19, B19) are identifiers, not figures; "between 40 and 50" and "40-50" are
    ranges; a descending "range" (page numbers "234-41") or one joining different units is
    read as two figures."""
    end = len(text) if end is None else end
    out: list[Quantity] = []
    pos = start
    while pos < end:
        m = PATTERN.search(text, pos, end)
        if m is None:
            break
        if _glued(text, m.start("a")):
            pos = m.end("a")
            continue
        qualifier = ""
        for i, (_, q) in enumerate(_PREFIX):
            if m.group(f"p{i}"):
                qualifier = q
        low = _value(m.group("a"))
        ua, ub, u = _unit_of(m.group("ua")), _unit_of(m.group("ub")), _unit_of(m.group("u"))
        q_end = m.end()
        if m.group("b"):
            high = _value(m.group("b"))
            other = ub or u
            if high < low or (ua and other and _DIMENSION[ua][0] != _DIMENSION[other][0]):
                # Not a range: the first figure alone; the rest is scanned again.
                high, ub, u = low, "", ""
                q_end = m.end("ua") if m.group("ua") else m.end("a")
        else:
            high = low
        for i, (_, q) in enumerate(_SUFFIX):
            if m.group(f"s{i}") and q_end == m.end():
                qualifier = q
        unit = u or ub or ua
        a, b = m.start(), q_end
        while b > a and text[b - 1].isspace():
            b -= 1
        kind = "ratio" if unit == "" and text[b:b + 1] == "/" else _KIND.get(unit, "other")
        if kind == "dose" and _PER_MASS.match(text, b):
            kind = "ratio"  # "3 mg protein/mg creatinine", "30 mg albumin/g creatinine": a urine ratio
        out.append(Quantity(start=a, end=b, text=text[a:b], low=low, high=high, unit=unit, kind=kind,
                            qualifier=qualifier))
        pos = max(b, m.start() + 1)
    return out


# -- comparison ----------------------------------------------------------------------------------

def duration_equivalents(value: float, unit: str) -> tuple[str, ...]:
    """`value` as written, and for a duration its whole-number equivalents in the other units
    of a day or longer, within the conversion tolerance (52 weeks: 364 days, 12 months, 1 year)."""
    out = [f"{value:g}"]
    dim, factor = _DIMENSION.get(unit, ("", 1.0))
    if dim == "time":
        days = value * factor
        for other, (other_dim, size) in _DIMENSION.items():
            x = days / size
            if other_dim == "time" and size >= 1.0 and other != unit and round(x) >= 1 \
                    and abs(x - round(x)) <= _CONVERTED_TOLERANCE * x:
                out.append(f"{round(x):g}")
    return tuple(dict.fromkeys(out))


def comparable(a: Quantity, b: Quantity) -> bool:
    """Same dimension: both percentages, both doses per kg, both durations, ..."""
    da, db = _DIMENSION.get(a.unit), _DIMENSION.get(b.unit)
    return da is not None and db is not None and da[0] == db[0]


def _interval(q: Quantity, *, source: bool) -> tuple[float, float]:
    factor = _DIMENSION[q.unit][1]
    lo, hi = q.low * factor, q.high * factor
    if q.qualifier in (">", ">="):
        return lo, math.inf
    if q.qualifier in ("<", "<="):
        return (-math.inf if q.kind != "percent" and q.unit != "" else 0.0), hi
    if q.qualifier == "~" and source:
        return lo * (1 - _APPROX), hi * (1 + _APPROX)
    return lo, hi


def consistent(claim: Quantity, source: Quantity) -> bool:
    """Does the source's figure allow the claimed one? Comparable units (durations and masses
    converted), and the claim's range within the source's: "0.2-0.4 mg/kg/day" allows 0.4
    mg/kg/day, "30-45%" does not allow 60%, "at least 9 months" allows 9 months but "9
    months" does not allow "at least 9 months". A claimed "about X" is read as X."""
    if not comparable(claim, source):
        return False
    c_lo, c_hi = _interval(claim, source=False)
    s_lo, s_hi = _interval(source, source=True)
    tol = _CONVERTED_TOLERANCE if claim.unit != source.unit else _TOLERANCE

    def le(x: float, y: float) -> bool:  # x <= y within the tolerance
        if math.isinf(x) or math.isinf(y):
            return x <= y
        return x <= y + tol * max(abs(x), abs(y), 1e-12)

    # Two thresholds in the same direction name a bound, not a range of values: "at least 24
    # months" is another rule than "at least 12 months", though every value of it is >= 12.
    for side in ((">", ">="), ("<", "<=")):
        if claim.qualifier in side and source.qualifier in side:
            c, s_ = (c_lo, s_lo) if side[0] == ">" else (c_hi, s_hi)
            return le(c, s_) and le(s_, c)
    return le(s_lo, c_lo) and le(c_hi, s_hi)
