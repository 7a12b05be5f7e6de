"""Disagreements between sources: the same attribute (dose, trough level, remission rate,
definition of steroid resistance) of the same subject given with different figures.

Detected generally, not from a list of known cases: every figure of a relevant sentence is
tied to the attribute its nearest cue word names (vocabulary.yaml `attributes`) and to the drug
named nearest to it; figures are compared after unit conversion. Case reports take no part:
one patient's course is an observation, not a value for the same thing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from kb.answer_text import Figure
from kb.evidence import CONTEXT, Annotated, Candidate
from kb.query import SECTION_KINDS, QuestionAnalysis, Vocabulary

# unit as written -> (comparable unit, factor)
_UNITS: dict[str, tuple[str, float]] = {  # kb.quantities' normalised unit -> (comparable unit, factor)
    "mg/kg": ("mg/kg", 1), "mg/kg/day": ("mg/kg", 1), "g/kg": ("mg/kg", 1000),
    "mg/m2": ("mg/m2", 1), "mg": ("mg", 1), "g": ("mg", 1000),
    "g/day": ("mg/d", 1000), "mg/day": ("mg/d", 1), "ng/ml": ("ng/ml", 1), "%": ("%", 1),
    "day": ("days", 1), "week": ("days", 7), "month": ("days", 30), "year": ("days", 365),
}
_QUALIFIER = re.compile(r"\b(or less|or more|at least|more than|less than|not more than|up to)\b|[<>≤≥]",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Measure:
    """A figure of a sentence that measures a known attribute, with the drug it is about."""

    figure: Figure
    attribute: str
    drugs: frozenset[str]  # the drug named nearest the figure (with its classes), else context's


def figure_attribute(vocab: Vocabulary, a: Annotated, fig: Figure, text: str) -> str | None:
    """The attribute a figure measures: its unit must fit, and the nearest cue word in the
    sentence (or its list intro) decides; figures chained by "vs" share the first one's."""
    best, best_d = None, 10 ** 9
    s = a.sent
    intro_text = text[s.intro[0]:s.intro[1]] if s.intro else ""
    for attr in vocab.attributes.values():
        if not vocab.unit_matches(attr.id, fig.unit):
            continue
        if attr.requires and a.about([attr.requires]) < CONTEXT:
            continue
        d = _cue_distance(vocab, attr.id, text, s.start, s.end, fig)
        if d is None and intro_text and vocab.has_cue(attr.id, intro_text):
            d = 200
        if d is None and vocab.unit_is_evident(attr.id, fig.unit):
            d = 300  # "1-2 g/d" is a dose even with no cue word; a nearer cue still wins
        if d is not None and d < best_d:
            best, best_d = attr.id, d
    return best


def _cue_distance(vocab: Vocabulary, attr: str, text: str, start: int, end: int, fig: Figure) -> int | None:
    """Characters between the figure and the nearest cue word of `attr` (within 90), or None."""
    best = None
    for a, b in vocab.cue_spans(attr, text, start, end):
        d = fig.start - b if b <= fig.start else a - fig.end if a >= fig.end else 0
        if d <= 90 and (best is None or d < best):
            best = d
    return best


_OF_DRUG = re.compile(r"\s+of\s+(?:(?:intravenous|oral|iv|i\.v\.|subcutaneous)\s+)?", re.IGNORECASE)


def nearest_drug(vocab: Vocabulary, a: Annotated, fig: Figure, text: str) -> set[str]:
    """The drug named nearest before the figure in its sentence (else nearest after), with its
    classes; else the drugs of the sentence's context (list intro, heading, title)."""
    s = a.sent
    best: tuple[int, str] | None = None
    for m in vocab.find(text[s.start:s.end]):
        if vocab.concepts[m.concept].kind not in SECTION_KINDS:
            continue
        start, end = s.start + m.start, s.start + m.end
        d = fig.start - end if end <= fig.start else (start - fig.end) + 1000
        if start >= fig.end and _OF_DRUG.fullmatch(text[fig.end:start]):
            d = -1  # "1.5g of intravenous Drugname": the figure is that drug's
        if best is None or d < best[0]:
            best = (d, m.concept)
    if best is not None:
        return vocab.with_classes([best[1]])
    return set(a.drugs)


def measures(vocab: Vocabulary, a: Annotated, text: str) -> tuple[Measure, ...]:
    """Every figure of the sentence that measures a known attribute; a figure after "vs" takes
    the attribute of the figure before it ("94% vs 53%")."""
    out: list[Measure] = []
    prev: tuple[Figure, str] | None = None
    for fig in a.figures:
        attr = figure_attribute(vocab, a, fig, text)
        if prev is not None and re.fullmatch(r"\s*(?:vs\.?|versus)\s*", text[prev[0].end:fig.start]):
            attr = prev[1] if prev[0].unit == fig.unit else attr
        if attr:
            out.append(Measure(fig, attr, frozenset(nearest_drug(vocab, a, fig, text))))
            prev = (fig, attr)
        else:
            prev = None
    return tuple(out)


@dataclass(frozen=True)
class Fact:
    scored: Candidate
    figure: Figure
    attribute: str
    subject: str  # concept id the figure is about ("" = the disease as a whole)
    value: tuple[str, tuple[float, ...], str]  # (unit, values, qualifier), comparable

    @property
    def source(self) -> str:
        return self.scored.ann.sent.source


@dataclass(frozen=True)
class Disagreement:
    attribute: str
    label: str  # e.g. "dose (Cyclosporine)"
    facts: tuple[Fact, ...]  # one per source, in order of relevance


def _value(fig: Figure) -> tuple[str, tuple[float, ...], str] | None:
    unit = _UNITS.get(fig.unit.lower())
    if unit is None:
        return None
    q = _QUALIFIER.search(fig.text)
    return unit[0], tuple(round(v * unit[1], 6) for v in fig.values), (q.group(0).lower() if q else "")


def _subject(vocab: Vocabulary, drugs: frozenset[str], attribute: str, entities: list[str]) -> str | None:
    """Group key for a fact; None = not comparable. Doses and trough levels are compared per
    drug, never per class (a cyclosporine and a tacrolimus level are not a disagreement); other
    attributes per question entity (a CNI rate and a cyclosporine rate are), or all together
    when the question names none (remission rates of the disease)."""
    if entities and not any(vocab.with_members([e]) & drugs or e in drugs for e in entities):
        return None
    if vocab.attributes[attribute].per_drug:
        specific = sorted(d for d in drugs if not (vocab.with_members([d]) - {d}) & drugs)
        return "+".join(specific) if specific else None
    for e in entities:
        if vocab.with_members([e]) & drugs or e in drugs:
            return e
    return ""


def find_disagreements(scored: Iterable[Candidate], analysis: QuestionAnalysis, vocab: Vocabulary,
                       doc_text: "Callable[[str], str]", *, min_score: float,
                       attributes: Iterable[str] = ()) -> list[Disagreement]:
    """Disagreements among sentences scoring at least `min_score` on the question, for the
    attributes the question asks about (or, if none, `attributes`: those in the answer)."""
    wanted = {a for a in (set(analysis.attributes) or set(attributes)) if vocab.attributes[a].compare}
    if not wanted:
        return []
    entities = [e for e in analysis.entities if e in vocab.concepts]
    entities += [d.id for d in analysis.unknown_drugs]
    groups: dict[tuple[str, str, str], dict[str, Fact]] = {}
    for sc in scored:
        if sc.score < min_score or sc.ann.meta.doc_type == "case report":
            continue
        for m in measures(vocab, sc.ann, doc_text(sc.ann.sent.source)):
            fig, attr = m.figure, m.attribute
            if attr not in wanted:
                continue
            value = _value(fig)
            if value is None:
                continue
            subject = _subject(vocab, m.drugs, attr, entities)
            if subject is None:
                continue
            key = (attr, subject, value[0])
            per_source = groups.setdefault(key, {})
            current = per_source.get(sc.ann.sent.source)
            if current is None or sc.score > current.scored.score:
                per_source[sc.ann.sent.source] = Fact(sc, fig, attr, subject, value)
    out = []
    for (attr, subject, _), per_source in groups.items():
        facts = sorted(per_source.values(), key=lambda f: -f.scored.score)
        if len(facts) >= 2 and len({f.value for f in facts}) >= 2:
            label = vocab.attributes[attr].label
            names = [vocab.concepts[s].label if s in vocab.concepts else s.split(":", 1)[-1]
                     for s in subject.split("+") if s]
            if names:
                label += " (" + ", ".join(names) + ")"
            out.append(Disagreement(attr, label, tuple(facts)))
    out.sort(key=lambda d: -max(f.scored.score for f in d.facts))
    return out
