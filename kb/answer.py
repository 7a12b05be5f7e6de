"""Extractive answers: source sentences quoted verbatim, each followed by its citation [n].

Nothing in an answer is written by the program except structure: section headings naming the
entities a question compares, "Sources differ:" with the differing figures (each verbatim from
its cited quote), and the evidence label of each source. When the corpus does not cover the
question, the answer abstains and lists the closest passages instead.

Pipeline: kb.query.analyse -> hybrid retrieval (+ BM25 per compared entity) -> sentence scoring
(kb.answer_select) -> abstention checks -> per-entity sections -> disagreements
(kb.answer_facts) -> rendering with exact quote spans (this module).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from kb.answer_facts import Disagreement, find_disagreements
from kb.answer_select import CONTEXT as CONTEXT_WEIGHT
from kb.answer_select import TITLE as TITLE_WEIGHT
from kb.answer_select import Annotated, CorpusView, Scored, candidates, corpus_view, need_for, score_all, select
from kb.answer_text import REF_MARK, Sentence, normalise_space
from kb.config import AnswerSettings
from kb.query import Concept, QuestionAnalysis, analyse, load_vocabulary, query_for
from kb.query import stems as tokens
from kb.types import Answer, AnswerSentence, Chunk, Citation, ComparisonRow, DocMeta, Filters, Hit, Query

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)

_JOINABLE_GAP = re.compile(r"[\s\d•▪◦●*\-–.)]{0,12}")  # whitespace, list markers, footnote digits


# ---------------------------------------------------------------------------- entry point

def answer(base: "KnowledgeBase", question: str, filters: Filters | None = None) -> Answer:
    """Answer `question` from the index behind `base` (see module docstring). Never raises
    for a bad question: empty or over-long ones get an Answer with `error` set."""
    settings = base.settings.answer
    rejected = _reject(question, settings)
    if rejected is not None:
        return rejected
    return _Builder(base, question, " ".join(question.split()), filters or Filters(), settings).build()


def _reject(question: object, settings: AnswerSettings) -> Answer | None:
    if not isinstance(question, str) or not question.strip():
        text = "Please type a question: this one is empty."
        return Answer(question=question if isinstance(question, str) else "", text=text,
                      error="empty question")
    if len(question) > settings.max_question_chars:
        text = (f"The question is too long ({len(question):,} characters; the limit is "
                f"{settings.max_question_chars:,}). Please ask the clinical question itself.")
        return Answer(question=question[: settings.max_question_chars] + "…", text=text,
                      error="question too long")
    return None


# ---------------------------------------------------------------------------- building

def evidence_label(meta: DocMeta) -> str:
    """What kind of source this is, as shown next to every quote (no figures)."""
    label = meta.shown_evidence or meta.doc_type or "source type not catalogued"
    return re.sub(r"\d", "", label).strip()


@dataclass
class _Quote:
    """One cited span: the sentences chosen from it, merged when adjacent."""

    source: str
    sentences: list[Sentence]
    score: float
    section: str = ""

    def pieces(self) -> list[tuple[int, int]]:
        spans = set()
        for s in self.sentences:
            for sp in (s.intro, s.lead, (s.start, s.end)):
                if sp:
                    spans.add(sp)
        ordered = sorted(spans)
        out: list[tuple[int, int]] = []
        for a, b in ordered:  # drop spans inside another
            if out and a >= out[-1][0] and b <= out[-1][1]:
                continue
            out.append((a, b))
        return out

    @property
    def span(self) -> tuple[int, int]:
        p = self.pieces()
        return p[0][0], p[-1][1]


@dataclass
class _Section:
    key: str  # concept id ("" = the whole question)
    label: str
    quotes: list[_Quote] = field(default_factory=list)
    missing: bool = False


class _Builder:
    def __init__(self, base: "KnowledgeBase", question: str, text: str, filters: Filters,
                 settings: AnswerSettings) -> None:
        self.base = base
        self.question = question
        self.text = text
        self.filters = filters
        self.settings = settings
        self.vocab = load_vocabulary()
        self.view: CorpusView = corpus_view(base)
        self.analysis: QuestionAnalysis = analyse(text)
        self.query: Query = query_for(self.analysis, filters)
        self.q_ids = self.vocab.with_members(c for c in self.analysis.concepts if not self.vocab.concepts[c].generic)
        self.q_stems = {s for s, _ in need_for(self.view, self.analysis).stems}

    # -- what the question names that the corpus has / lacks -------------------------
    def _entity(self, eid: str) -> Concept:
        if eid in self.vocab.concepts:
            return self.vocab.concepts[eid]
        return next(d for d in self.analysis.unknown_drugs if d.id == eid)

    def _coverage(self) -> tuple[list[str], list[str]]:
        present, missing = [], []
        for eid in (*self.analysis.entities, *(d.id for d in self.analysis.unknown_drugs)):
            (present if self.view.has_concept(self._entity(eid)) else missing).append(eid)
        missing += [t for t in self.analysis.unknown_terms if not self.view.has_word(t)]
        return present, missing

    def _label(self, eid: str) -> str:
        return self._entity(eid).label if (eid in self.vocab.concepts or eid.startswith("drug:")) else eid

    def _about(self, eid: str) -> Callable[[Annotated], bool]:
        if eid in self.vocab.concepts:
            ids = self.vocab.with_members([eid])
            return lambda a: a.about(ids) > 0
        terms = self._entity(eid).terms
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
        return lambda a: bool(pattern.search(a.sent.text))

    # -- main -------------------------------------------------------------------------
    def build(self) -> Answer:
        s, a = self.settings, self.analysis
        present, missing = self._coverage()
        sectioned = [e for e in a.section_entities if e in present]
        missing_sections = [e for e in a.section_entities if e in missing]
        # One section per entity for comparisons ("X vs Y", "X or Y", "X and Y doses"); an
        # entity the corpus lacks gets a heading saying so.
        use_sections = a.comparative and bool(sectioned) and len(sectioned) + len(missing_sections) >= 2
        extra = [self._entity_query(e) for e in sectioned] if use_sections else []
        hits, chunks = candidates(self.base, self.query, a, s.retrieval_k, extra)
        scored = score_all(self.base, chunks, hits, need_for(self.view, a))

        reason = self._abstain_reason(hits, missing, set(missing_sections) if use_sections else set())
        if not reason and not use_sections:
            reason = self._uncovered_aspect(scored, present)
        sections: list[_Section] = []
        pool: list[Scored] = []
        if not reason:
            if use_sections:
                sections, pool = self._sections(sectioned, missing_sections, chunks, hits)
            else:
                sections, pool = self._plain(scored)
            if not any(sec.quotes for sec in sections):
                reason = "no passage scores high enough on it"
        if reason:
            logger.debug("abstained on %r: %s", self.question[:200], reason)
            return self._abstain(reason, scored)
        return self._render(sections, self._disagreements(pool, sections))

    def _abstain_reason(self, hits: list[Hit], missing: list[str], tolerated: set[str]) -> str:
        """Why the corpus cannot answer, or "" (see the module docstring of kb/query.py)."""
        a, s = self.analysis, self.settings
        lacking = [m for m in missing if m not in tolerated]
        if lacking:  # a drug, disease or name no passage mentions: "sparsentan", "IgA nephropathy"
            return "no source mentions " + _join([self._label(m) for m in lacking])
        named = [c for c in a.concepts if not self.vocab.concepts[c].generic]
        unknown_words = [w for w in a.content_words if not self.view.has_word(w)]
        if not named and unknown_words:  # "bake bread", "does FSGS affect pregnancy"
            return "no source uses its terms (" + ", ".join(unknown_words) + ")"
        dense = [h.dense_score for h in hits if h.dense_score is not None]
        if not named and dense and max(dense) < s.min_dense_score:
            return "no passage is close to it"  # off-topic, and names nothing the vocabulary knows
        return ""

    def _uncovered_aspect(self, scored: list[Scored], present: list[str]) -> str:
        """A drug the corpus names, asked about in a respect no passage covers ("risks of
        rituximab": rituximab passages exist, none on its risks) -> the reason to abstain."""
        entities = [self.vocab.with_members([e]) for e in present if e in self.vocab.concepts]
        aspects = [c for c in self.analysis.concepts
                   if self.vocab.concepts[c].kind in ("outcome", "measure") and not self.vocab.concepts[c].generic]
        if not entities or not aspects:
            return ""
        relevant = [x for x in scored if x.score >= self.settings.abstain_threshold]
        for aspect in aspects:
            ids = self.vocab.with_members([aspect])
            if not any(x.ann.about(ids) >= CONTEXT_WEIGHT and all(x.ann.about(e) >= TITLE_WEIGHT for e in entities)
                       or any(self.vocab.attributes[m.attribute].concept in ids for m in x.ann.measures)
                       and all(x.ann.about(e) >= TITLE_WEIGHT for e in entities) for x in relevant):
                names = _join([self.vocab.concepts[e].label for e in present if e in self.vocab.concepts])
                return f"no passage covers {self.vocab.concepts[aspect].label.lower()} of {names}"
        return ""

    def _plain(self, scored: list[Scored]) -> tuple[list[_Section], list[Scored]]:
        s = self.settings
        picks = select(scored, limit=s.max_sentences, per_source=s.per_source,
                       min_score=s.abstain_threshold, relative=s.relative_floor)
        return [_Section("", "", self._quotes(picks, ""))], self._pool(scored)

    def _sections(self, present: list[str], missing: list[str], chunks: list[Chunk],
                  hits: list[Hit]) -> tuple[list[_Section], list[Scored]]:
        s, a = self.settings, self.analysis
        sections: list[_Section] = []
        pool: list[Scored] = []
        for e in present:
            others = [x for x in a.section_entities if x != e]
            about = self._about(e)
            scored = [x for x in score_all(self.base, chunks, hits, need_for(self.view, a, only_entity=e, drop=others))
                      if about(x.ann)]
            picks = select(scored, limit=s.section_sentences, per_source=s.section_per_source,
                           min_score=s.abstain_threshold, relative=s.relative_floor)
            quotes = self._quotes(picks, self._label(e))
            sections.append(_Section(e, self._label(e), quotes, missing=not quotes))
            pool += self._pool(scored)
        sections += [_Section(e, self._label(e), missing=True) for e in missing]
        return sections, pool

    def _pool(self, scored: list[Scored]) -> list[Scored]:
        """Sentences relevant enough for their figures to be compared across sources."""
        s = self.settings
        best = scored[0].score if scored else 0.0
        return [x for x in scored if x.score >= max(s.abstain_threshold, s.relative_floor * best)]

    def _entity_query(self, eid: str) -> Query:
        ids = self.vocab.with_members([eid]) if eid in self.vocab.concepts else set()
        terms = [t for i in sorted(ids) for t in self.vocab.concepts[i].terms] or list(self._entity(eid).terms)
        rest = " ".join(w for w in self.analysis.content_words)
        attrs = " ".join(self.vocab.attributes[x].label for x in self.analysis.attributes)
        return Query(text=f"{self._label(eid)} {rest} {attrs}".strip(), bm25_terms=tuple(terms),
                     filters=self.filters)

    def _whole_list(self, sent: Sentence) -> list[Sentence]:
        """All items under a picked item's intro, when the intro is what the question asks
        about ("What monitoring...?" -> "Monitoring:" and every item under it)."""
        doc = self.base.document(sent.source).text
        for intro in sent.intros:
            intro_text = doc[intro[0]:intro[1]]
            if not (self.vocab.concepts_in(intro_text) & self.q_ids or set(tokens(intro_text)) & self.q_stems):
                continue
            family = [a.sent for a in self.view.annotated(self.base.chunk(sent.chunk_id)) if intro in a.sent.intros]
            if family and family[-1].end - intro[0] <= self.settings.max_list_chars:
                return family
        return [sent]

    def _quotes(self, picks: list[Scored], section: str) -> list[_Quote]:
        """Picked sentences as quotes; sentences of one source whose spans touch are merged."""
        quotes: list[_Quote] = []
        expanded = [(sib, p.score) for p in picks for sib in self._whole_list(p.ann.sent)]
        for s, score in expanded:
            a, b = s.quote_span()
            for q in quotes:
                qa, qb = q.span
                if q.source == s.source and self._touch(s.source, (a, b), (qa, qb)):
                    q.sentences.append(s)
                    q.sentences.sort(key=lambda x: x.start)
                    break
            else:
                quotes.append(_Quote(s.source, [s], score, section))
        for q in quotes:  # one sentence picked twice (itself and as a sibling) is quoted once
            q.sentences = sorted(set(q.sentences), key=lambda x: x.start)
        return quotes

    def _touch(self, source: str, x: tuple[int, int], y: tuple[int, int]) -> bool:
        (_, b), (c, _) = sorted([x, y])
        if c <= b:
            return True
        return bool(_JOINABLE_GAP.fullmatch(self.base.document(source).text[b:c]))

    # -- disagreements ----------------------------------------------------------------
    def _disagreements(self, pool: list[Scored], sections: list[_Section]) -> list[Disagreement]:
        """Disagreements on what the question asks (dose, rate, ...), quoting both sides; for a
        question asking no such thing, only among the sentences already in the answer."""
        if not self.analysis.attributes:
            pool = [sc for sc in pool if any(self._contains(q, sc.ann.sent) for sec in sections for q in sec.quotes)]
        in_answer = {m.attribute for sc in pool for m in sc.ann.measures}
        found = find_disagreements(pool, self.analysis, min_score=0.0, attributes=in_answer)
        found = found[: self.settings.max_disagreements]
        for d in found:  # both sides must be quoted in the answer
            for f in d.facts:
                target = next((sec for sec in sections if sec.key == f.subject), sections[0])
                if any(self._contains(q, f.scored.ann.sent) for sec in sections for q in sec.quotes):
                    continue
                merged = self._quotes([f.scored], target.label)
                for q in merged:
                    for existing in target.quotes:
                        if existing.source == q.source and self._touch(q.source, q.span, existing.span):
                            existing.sentences.extend(q.sentences)
                            existing.sentences.sort(key=lambda x: x.start)
                            break
                    else:
                        target.quotes.append(q)
        return found

    @staticmethod
    def _contains(q: _Quote, s: Sentence) -> bool:
        a, b = q.span
        return q.source == s.source and a <= s.start and s.end <= b

    # -- output -------------------------------------------------------------------------
    def _render(self, sections: list[_Section], disagreements: list[Disagreement]) -> Answer:
        citations: dict[tuple[str, int, int], Citation] = {}
        lines: list[str] = []
        sentences: list[AnswerSentence] = []
        rows: list[ComparisonRow] = []
        notes: list[str] = []

        def cite(q: _Quote) -> Citation:
            a, b = q.span
            key = (q.source, a, b)
            if key not in citations:
                doc = self.base.document(q.source)
                citations[key] = Citation(
                    n=len(citations) + 1, source=q.source, title=doc.title, quote=doc.text[a:b], start=a,
                    end=b, score=round(q.score, 4), evidence=doc.meta.shown_evidence,
                    doc_type=doc.meta.doc_type, year=doc.meta.year, section=q.sentences[0].section,
                    chunk_id=q.sentences[0].chunk_id, flags=doc.meta.flags)
            return citations[key]

        for sec in sections:
            if sec.missing:
                said = "no passage in the corpus" if not self.view.has_concept(self._entity(sec.key)) \
                    else "no passage on this question"
                lines.append(f"**{sec.label} — {said}**")
                notes.append(f"{sec.label}: {said}.")  # no table row: a row must cite a source
                continue
            if sec.label:
                lines.append(f"**{sec.label}**")
            for q in sec.quotes:
                c = cite(q)
                display, units = self._display(q, c.n)
                lines.append(f"- {display} — {evidence_label(self.base.document(q.source).meta)}")
                sentences += [AnswerSentence(text=u, citations=(c.n,), section=sec.label) for u in units]
                if sec.label and len([r for r in rows if r.entity == sec.label]) < self.settings.rows_per_entity:
                    rows.append(self._row(sec.label, q, c, units))

        if disagreements:
            lines.append("Sources differ:")
            for d in disagreements:
                parts, ns = [], []
                for f in d.facts:
                    q = next(q for sec in sections for q in sec.quotes if self._contains(q, f.scored.ann.sent))
                    n = cite(q).n
                    parts.append(f"{f.figure.text} [{n}]")
                    ns.append(n)
                line = f"{d.label}: " + " vs ".join(parts)
                lines.append("- " + line)
                notes.append("Sources differ on " + line)
                sentences.append(AnswerSentence(text=_strip_markers(line), citations=tuple(ns),
                                                section="Sources differ"))

        by_kind: dict[str, list[int]] = {}
        for c in citations.values():
            if c.doc_type in ("case report", "patient information"):
                kind = evidence_label(DocMeta(evidence_level=c.evidence, doc_type=c.doc_type))
                by_kind.setdefault(kind, []).append(c.n)
        for kind, ns in by_kind.items():
            refs = ", ".join(f"[{n}]" for n in ns)
            notes.append(f"{'Sources' if len(ns) > 1 else 'Source'} {refs}: {kind}, not a guideline.")
        comparison = tuple(rows) if len([s for s in sections if s.label]) >= 2 else ()
        return Answer(question=self.question, text="\n".join(lines),
                      citations=tuple(sorted(citations.values(), key=lambda c: c.n)),
                      sentences=tuple(sentences), comparison=comparison, notes=tuple(dict.fromkeys(notes)),
                      search_terms=self._search_terms())

    def _display(self, q: _Quote, n: int) -> tuple[str, list[str]]:
        """The quote as shown: its pieces (intros, leads, sentences) verbatim with whitespace
        collapsed, list items after " • ", " … " where source text is left out, and a marker
        after each sentence or run of list items."""
        text = self.base.document(q.source).text
        items = {(a.sent.start, a.sent.end) for cid in {s.chunk_id for s in q.sentences}
                 for a in self.view.annotated(self.base.chunk(cid)) if a.sent.is_list_item}
        out, units, unit = [], [], []
        pieces = q.pieces()
        for i, (a, b) in enumerate(pieces):
            shown = normalise_space(REF_MARK.sub("", text[a:b]))
            if i:
                gap = text[pieces[i - 1][1]:a]
                sep = (" • " if (a, b) in items else " ") if _JOINABLE_GAP.fullmatch(gap) else " … "
                out.append(sep)
                unit.append(sep.strip())
            out.append(shown)
            unit.append(shown)
            last = i == len(pieces) - 1
            next_is_item = not last and pieces[i + 1] in items
            # Short items ("Hypertension") share one marker; an item that is a sentence has its own.
            in_run = (a, b) in items and next_is_item and not shown.endswith(".")
            if last or not (shown.endswith(":") or in_run):
                out.append(f" [{n}]")
                units.append(" ".join(x for x in unit if x))
                unit = []
        return "".join(out), units

    def _row(self, entity: str, q: _Quote, c: Citation, units: list[str]) -> ComparisonRow:
        figs: list[str] = []
        for s in q.sentences:
            ann = next((x for x in self.view.annotated(self.base.chunk(s.chunk_id)) if x.sent == s), None)
            if ann is None:
                continue
            wanted = [m.figure.text for m in ann.measures if m.attribute in self.analysis.attributes]
            figs += wanted or ([] if self.analysis.attributes else [f.text for f in ann.figures])
        finding = units[-1] if units else ""
        if len(finding) > 240:
            finding = finding[:240].rsplit(" ", 1)[0] + " …"
        return ComparisonRow(entity=entity, finding=finding, figure="; ".join(dict.fromkeys(figs)),
                             source=q.source, evidence=c.evidence or c.doc_type, n=c.n)

    def _search_terms(self) -> tuple[str, ...]:
        words = [w for w in re.findall(r"[\w\-/]+", self.text)
                 if w.lower() not in self.vocab.question_words and len(w) > 1]
        return tuple(dict.fromkeys([*words, *self.query.bm25_terms]))

    def _abstain(self, reason: str, scored: list[Scored]) -> Answer:
        closest: list[Citation] = []
        seen: set[str] = set()
        for sc in scored:
            s = sc.ann.sent
            if s.is_question or s.ends_with_colon or s.source in seen:
                continue
            seen.add(s.source)
            doc = self.base.document(s.source)
            a, b = s.quote_span()
            closest.append(Citation(n=len(closest) + 1, source=s.source, title=doc.title, quote=doc.text[a:b],
                                    start=a, end=b, score=round(sc.score, 4), evidence=doc.meta.shown_evidence,
                                    doc_type=doc.meta.doc_type, year=doc.meta.year, section=s.section,
                                    chunk_id=s.chunk_id, flags=doc.meta.flags))
            if len(closest) >= self.settings.closest:
                break
        terms = [t for t in self._search_terms() if not re.search(r"\d", t)]
        text = (f"The corpus has no passage that answers this question: {reason}. "
                "The closest passages found are listed with this answer; they do not answer it. "
                f"Search terms used: {', '.join(terms) if terms else '(none)'}.")
        return Answer(question=self.question, text=text, abstained=True, closest=tuple(closest),
                      search_terms=tuple(self._search_terms()),
                      notes=(f"Abstained: {reason}.",))


def _strip_markers(s: str) -> str:
    return normalise_space(re.sub(r"\s*\[\d+\]", "", s))


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
