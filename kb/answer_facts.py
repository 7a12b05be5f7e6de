"""Disagreements between sources: the same attribute (dose, trough level, remission rate,
definition of steroid resistance) of the same subject given with different figures.

Detected generally, not from a list of known cases: every figure of a relevant sentence is
tied to the attribute its nearest cue word names (vocabulary.yaml `attributes`) and to the drug
named nearest to it; figures are compared after unit conversion. Case reports take no part:
one patient's course is an observation, not a value for the same thing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from kb.answer_select import Scored
from kb.answer_text import Figure
from kb.query import QuestionAnalysis, Vocabulary, load_vocabulary

# unit as written -> (comparable unit, factor)
_UNITS: dict[str, tuple[str, float]] = {
    "mg/kg": ("mg/kg", 1), "mg/kg/day": ("mg/kg", 1), "g/kg": ("mg/kg", 1000),
    "mg/m²": ("mg/m2", 1), "mg/m2": ("mg/m2", 1), "mg": ("mg", 1), "g": ("mg", 1000),
    "g/d": ("mg/d", 1000), "ng/ml": ("ng/ml", 1), "%": ("%", 1),
    "day": ("days", 1), "days": ("days", 1), "week": ("days", 7), "weeks": ("days", 7),
    "month": ("days", 30), "months": ("days", 30), "year": ("days", 365), "years": ("days", 365),
}
_QUALIFIER = re.compile(r"\b(or less|or more|at least|more than|less than|not more than|up to)\b|[<>≤≥]",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    scored: Scored
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


def find_disagreements(scored: Iterable[Scored], analysis: QuestionAnalysis,
                       *, min_score: float, attributes: Iterable[str] = ()) -> list[Disagreement]:
    """Disagreements among sentences scoring at least `min_score` on the question, for the
    attributes the question asks about (or, if none, `attributes`: those in the answer)."""
    vocab = load_vocabulary()
    wanted = {a for a in (set(analysis.attributes) or set(attributes)) if vocab.attributes[a].compare}
    if not wanted:
        return []
    entities = [e for e in analysis.entities if e in vocab.concepts]
    entities += [d.id for d in analysis.unknown_drugs]
    groups: dict[tuple[str, str, str], dict[str, Fact]] = {}
    for sc in scored:
        if sc.score < min_score or sc.ann.meta.doc_type == "case report":
            continue
        for m in sc.ann.measures:
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
