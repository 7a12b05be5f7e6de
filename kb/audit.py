"""Audit a draft: every sentence of someone's text checked against the corpus.

For each sentence: its citations are resolved (kb/audit_cite.py); evidence passages are found
with the answerer's evidence code (kb/evidence.py), first in the cited documents, then in the
whole corpus; the sentence's figures are compared with the passages' (kb/quantities.py); and it
gets exactly one verdict of kb.audit_types.VERDICTS with the reason.

What the verdicts rest on: exact evidence only (key-term coverage, named drugs and entities,
figures with their units and ranges, and embedding similarity for paraphrases). There is no
entailment model: a sentence that reuses a passage's words with a negation added or the
direction reversed ("X increased" vs "X decreased") is not detected, and is called supported.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from kb.audit_cite import Resolver, find_citations, resolve_references, split_references, strip_citations
from kb.audit_types import (NO_CLAIM, NOT_FOUND, NUMBERS_DIFFER, SUPPORTED_BY_CITED, SUPPORTED_ELSEWHERE,
                            AuditCitation, AuditReport, AuditSentence, FigureCheck)
from kb.config import AuditSettings
from kb.answer_text import chunk_sentences
from kb.evidence import Evidence, find_evidence, needs_for, requirement_terms, term_pattern
from kb.quantities import Quantity, comparable, consistent, quantities
from kb.query import stems
from kb.sentences import sentence_spans
from kb.types import Span

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)

_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*•▪◦●+]|\d{1,3}[.)]|[a-z][.)])[ \t]+")
_HEADING_MD = re.compile(r"^[ \t]*#{1,6}[ \t]")
_BOLD_LINE = re.compile(r"^[ \t]*(?:\*\*|__)[^*_]+(?:\*\*|__)[ \t]*:?[ \t]*$")


# ---------------------------------------------------------------------------- the draft's units

@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    heading: bool = False


def _is_heading_line(line: str) -> bool:
    s = line.strip()
    if _HEADING_MD.match(line) or _BOLD_LINE.match(line):
        return True
    words = s.split()
    return 0 < len(words) <= 10 and s[-1] not in ".!?;:,)]" and not re.search(r"\d", s) and s[0].isupper()


def draft_units(text: str, end: int | None = None) -> list[Unit]:
    """Sentences and headings of text[:end]. Blank lines separate paragraphs; list items and
    heading lines are units of their own; paragraphs are split with the project's Punkt
    splitter (kb/sentences.py). List markers are left out of the units."""
    end = len(text) if end is None else end
    units: list[Unit] = []
    blocks: list[tuple[int, int, bool]] = []  # (start, end, is_heading)
    pos = 0
    para: list[tuple[int, int]] = []

    def flush() -> None:
        if para:
            blocks.append((para[0][0], para[-1][1], False))
            para.clear()

    for line in text[:end].splitlines(keepends=True):
        a, b = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        body = text[a:b]
        if not body.strip():
            flush()
            continue
        marker = _LIST_MARKER.match(body)
        if marker or _HEADING_MD.match(body) or _BOLD_LINE.match(body):
            flush()
            if marker:
                a += marker.end()
            blocks.append((a, b, not marker and _is_heading_line(body)))
            continue
        if not para and _is_heading_line(body):
            blocks.append((a, b, True))
            continue
        para.append((a, b))
    flush()
    for a, b, heading in blocks:
        if heading:
            s = text[a:b]
            lead = len(s) - len(s.lstrip(" \t#*_"))
            trail = len(s.rstrip(" \t*_:"))
            if trail > lead:
                units.append(Unit(a + lead, a + trail, heading=True))
            continue
        for x, y in sentence_spans(text, a, b):
            if text[x:y].strip():
                units.append(Unit(x, y))
    return units


# ---------------------------------------------------------------------------- figures

def _claim_figures(claim: str) -> list[Quantity]:
    return quantities(claim)


def _key_terms(claim: str) -> list[str]:
    """The claim's word stems without numbers: what makes it a checkable statement."""
    return [t for t in dict.fromkeys(stems(claim)) if not re.fullmatch(r"[\d.,]+", t)]


def _figure_spans(base: "KnowledgeBase", ev: Evidence) -> list[Span]:
    """Where the passage's figures may come from: the evidence sentence itself and the spans
    it depends on (its list intros, the sentence its pronoun refers to), never the sibling
    list items a quote from an intro to an item passes over (the cyclosporine trough is not
    the tacrolimus trough)."""
    try:
        chunk = base.chunk(ev.chunk_id)
    except Exception:  # an evidence row without its chunk: its own span only
        return [(ev.start, ev.end)]
    for s in chunk_sentences(base.document(ev.source).text, chunk):
        if s.end == ev.end and s.start >= ev.start:
            return [(s.start, s.end), *s.context]
    return [(ev.start, ev.end)]


def _figure_checks(base: "KnowledgeBase", claim_qs: Sequence[Quantity], ev: Evidence) -> list[FigureCheck]:
    """Each figure of the sentence against the passage's: a consistent one if there is one,
    else the first comparable one (a conflict), else none (not stated there)."""
    text = base.document(ev.source).text
    source_qs = [q for a, b in _figure_spans(base, ev) for q in quantities(text, a, b)]
    out = []
    for q in claim_qs:
        same = [s for s in source_qs if comparable(q, s)]
        ok = [s for s in same if consistent(q, s)]
        pick = ok[0] if ok else same[0] if same else None
        out.append(FigureCheck(claim=q.text, source_figure=pick.text if pick else "", source=ev.source,
                               start=pick.start if pick else ev.start, end=pick.end if pick else ev.start,
                               consistent=bool(ok)))
    return out


@dataclass(frozen=True)
class _Judged:
    ev: Evidence
    figures: tuple[FigureCheck, ...]
    supports: bool
    conflicts: bool  # on the subject, with a figure that differs


def _entity_patterns(base: "KnowledgeBase", claim: str) -> list["re.Pattern[str]"]:
    """One pattern per drug, class, therapy or disease the claim requires of its evidence. Trial
    and gene names are left to find_evidence's document-level check: every sentence of a
    trial's report is about that trial, while a drug in a title is not what each sentence is about."""
    vocab = base.vocabulary
    out = []
    for r in needs_for(base, claim).requirements:
        if r.kind != "entity":
            continue
        pattern = term_pattern(requirement_terms(vocab, r))
        if pattern is not None:
            out.append(pattern)
    return out


def _names_them(base: "KnowledgeBase", ev: Evidence, patterns: Sequence["re.Pattern[str]"]) -> bool:
    """Does the evidence sentence itself (or a span it depends on) name every required entity?
    A document that names a drug elsewhere does not make a close-sounding sentence about it."""
    text = base.document(ev.source).text
    spans = " ".join(text[a:b] for a, b in _figure_spans(base, ev))
    return all(p.search(spans) for p in patterns)


def _judge(base: "KnowledgeBase", claim_qs: Sequence[Quantity], ev: Evidence, s: AuditSettings,
           entities: Sequence["re.Pattern[str]"] = ()) -> _Judged:
    figs = tuple(_figure_checks(base, claim_qs, ev))
    on_topic = not ev.missing and (ev.coverage >= s.topic_coverage)
    # A paraphrase (fewer shared words, close meaning) must also name the claim's entities itself.
    terms_ok = ev.coverage >= s.support_coverage or (on_topic and ev.dense >= s.support_dense
                                                     and _names_them(base, ev, entities))
    all_figures = all(f.consistent for f in figs)
    conflict = any(f.source_figure and not f.consistent for f in figs)
    return _Judged(ev, figs, supports=not ev.missing and terms_ok and all_figures,
                   conflicts=on_topic and conflict)


# ---------------------------------------------------------------------------- one sentence

def _title(base: "KnowledgeBase", source: str) -> str:
    try:
        return base.document(source).title or source
    except Exception:  # a source the index no longer has: show its path
        return source


def _quote(ev: Evidence, n: int = 160) -> str:
    q = " ".join(ev.quote.split())
    return q if len(q) <= n else q[: n - 1] + "…"


def _citation_note(citations: Sequence[AuditCitation]) -> str:
    if not citations:
        return "no citation"
    bad = [c for c in citations if not c.sources]
    if bad and len(bad) == len(citations):
        return "citation " + " ".join(c.text for c in bad) + " not resolved"
    return ""


def audit_sentence(base: "KnowledgeBase", text: str, unit: Unit, index: int,
                   citations: Sequence[AuditCitation], settings: AuditSettings) -> AuditSentence:
    claim = strip_citations(text, unit.start, unit.end, citations)
    common = dict(index=index, text=text[unit.start:unit.end], start=unit.start, end=unit.end, claim=claim,
                  citations=tuple(citations))
    claim_qs = _claim_figures(claim)
    if unit.heading:
        return AuditSentence(verdict=NO_CLAIM, reason="a heading", **common)
    if claim.rstrip().endswith("?"):
        return AuditSentence(verdict=NO_CLAIM, reason="a question", **common)
    if len(_key_terms(claim)) < settings.min_claim_terms and not claim_qs:
        return AuditSentence(verdict=NO_CLAIM, reason="too few content words to check (a transition or fragment)",
                             **common)
    cited = tuple(dict.fromkeys(s for c in citations for s in c.sources))
    k = settings.evidence_k
    entities = _entity_patterns(base, claim)
    cited_ev = [_judge(base, claim_qs, e, settings, entities)
                for e in find_evidence(base, claim, sources=cited, k=k)] if cited else []
    all_ev = [_judge(base, claim_qs, e, settings, entities) for e in find_evidence(base, claim, k=k)]
    others = [j for j in all_ev if j.ev.source not in cited]

    def first(js: list[_Judged], attr: str) -> _Judged | None:
        return next((j for j in js if getattr(j, attr)), None)

    def shown(lead: _Judged | None) -> tuple[Evidence, ...]:
        """The passage the verdict rests on, then others that share some of its key terms."""
        pool = ([lead] if lead else []) + cited_ev + all_ev
        out: list[Evidence] = []
        for j in pool:
            if j is not lead and out and j.ev.coverage < settings.shown_coverage:
                continue
            if all((e.source, e.start) != (j.ev.source, j.ev.start) for e in out):
                out.append(j.ev)
        return tuple(out[: settings.shown])

    note = _citation_note(citations)
    sup_cited = first(cited_ev, "supports")
    if sup_cited:
        ev = sup_cited.ev
        figs = "; figures match" if sup_cited.figures else ""
        return AuditSentence(verdict=SUPPORTED_BY_CITED, evidence=shown(sup_cited), figures=sup_cited.figures,
                             reason=f"{_title(base, ev.source)} says: \"{_quote(ev)}\" (key terms {ev.coverage:.0%}"
                                    f"{figs})", **common)
    conflict_cited = first(cited_ev, "conflicts")
    sup_other = first(others, "supports")
    if conflict_cited:
        return _numbers_differ(base, conflict_cited, sup_other, common, shown, cited=True)
    if sup_other:
        ev = sup_other.ev
        why = note or ("the cited source" + ("s do" if len(cited) > 1 else " does") + " not say it")
        return AuditSentence(verdict=SUPPORTED_ELSEWHERE, evidence=shown(sup_other), figures=sup_other.figures,
                             reason=f"{why}; {_title(base, ev.source)} does: \"{_quote(ev)}\"", **common)
    conflict_other = first(all_ev, "conflicts")
    if conflict_other:
        return _numbers_differ(base, conflict_other, None, common, shown, cited=conflict_other.ev.source in cited)
    best = (cited_ev or all_ev)[:1]
    closest = f"; closest: {_title(base, best[0].ev.source)}: \"{_quote(best[0].ev, 100)}\" " \
              f"(key terms {best[0].ev.coverage:.0%}" + \
              (f", not naming {', '.join(best[0].ev.missing)}" if best[0].ev.missing else "") + ")" if best else ""
    lacking = ""
    if best and best[0].figures and not all(f.consistent for f in best[0].figures):
        lacking = "; figures not stated there: " + ", ".join(f.claim for f in best[0].figures if not f.consistent)
    where = "the cited source" + ("s" if len(cited) > 1 else "") + " nor the rest of the corpus" if cited \
        else "the corpus"
    return AuditSentence(verdict=NOT_FOUND, evidence=shown(None), figures=best[0].figures if best else (),
                         reason=f"no passage of {where} states it{closest}{lacking}"
                                + (f" ({note})" if note else ""), **common)


def _numbers_differ(base: "KnowledgeBase", j: _Judged, elsewhere: _Judged | None, common: dict[str, Any],
                    shown: Callable[[_Judged | None], tuple[Evidence, ...]], *, cited: bool) -> AuditSentence:
    diffs = [f for f in j.figures if f.source_figure and not f.consistent]
    pairs = "; ".join(f"the sentence says {f.claim}, the source says {f.source_figure}" for f in diffs)
    who = ("the cited source " if cited else "") + _title(base, j.ev.source)
    reason = f"{pairs} ({who}: \"{_quote(j.ev)}\")"
    if elsewhere is not None:
        reason += f"; {_title(base, elsewhere.ev.source)} gives the sentence's figure: \"{_quote(elsewhere.ev, 100)}\""
    return AuditSentence(verdict=NUMBERS_DIFFER, evidence=shown(j), figures=j.figures, reason=reason, **common)


# ---------------------------------------------------------------------------- a whole draft

def audit_text(base: "KnowledgeBase", text: str, *, name: str = "",
               settings: AuditSettings | None = None) -> AuditReport:
    """Audit every sentence of `text` (the draft, with its reference list if it has one)."""
    settings = settings or base.settings.audit
    resolver = Resolver(base.documents, base.references())
    body_end, entries = split_references(text)
    references = resolve_references(text, entries, resolver)
    sentences = []
    for i, unit in enumerate(draft_units(text, body_end)):
        cits = [] if unit.heading else find_citations(text, unit.start, unit.end, references, resolver,
                                                      has_reference_list=bool(entries))
        sentences.append(audit_sentence(base, text, unit, i, cits, settings))
    titles = {d.source: d.title or d.source for d in base.documents}
    return AuditReport(name=name, text=text, sentences=tuple(sentences), references=tuple(references),
                       titles=titles)

