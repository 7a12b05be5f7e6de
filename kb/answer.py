"""Extractive answers: source sentences quoted verbatim, each followed by its citation [n].

Nothing in an answer is written by the program except structure: section headings naming the
entities a question compares, "Sources differ:" with the differing figures (each verbatim from
its cited quote), and the evidence label of each source. When the corpus does not cover the
question, the answer abstains, says which requirement no passage meets, and lists the closest
passages instead.

Pipeline: kb.evidence.needs_for (requirements, answer type, key terms) -> kb.evidence.gather
(hybrid retrieval, + BM25 per compared entity, + chunks naming a trial) -> kb.evidence
.score_candidates (one scoring model) -> selection -> kb.evidence.coverage (the one abstention
rule) -> per-entity sections -> disagreements (kb.answer_facts) -> an `Answer` structure
(sections -> quotes -> citation numbers), rendered to text by kb.render.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from kb.answer_facts import Disagreement, find_disagreements, measures
from kb.answer_text import REF_MARK, Sentence, normalise_space
from kb.config import AnswerSettings
from kb.evidence import (Candidate, Gap, Needs, Requirement, coverage, corpus_view, gather, holds_planted, join_or,
                         lacking_terms, needs_for, score_candidates, term_pattern)
from kb.query import Concept, stems
from kb.question_input import has_words
from kb.render import to_markdown
from kb.types import (Answer, AnswerQuote, AnswerSection, AnswerSentence, Citation, ComparisonRow, DocMeta,
                      Filters, Query)

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)

_JOINABLE_GAP = re.compile(r"[\s\d•▪◦●*\-–.)]{0,12}")  # whitespace, list markers, footnote digits
DIFFER = "Sources differ"


# ---------------------------------------------------------------------------- entry point

def answer(base: "KnowledgeBase", question: str, filters: Filters | None = None) -> Answer:
    """Answer `question` from the index behind `base` (see module docstring). Never raises
    for a bad question: empty, over-long or wordless ones get an Answer with `error` set."""
    settings = base.settings.answer
    rejected = _reject(question, settings)
    if rejected is not None:
        return rejected
    return _Builder(base, question, " ".join(question.split()), filters or Filters()).build()


def _reject(question: str, settings: AnswerSettings) -> Answer | None:
    """An Answer explaining why `question` (as cleaned by kb/question_input.py) is not
    searched: empty, too long, or with no letter or digit; None for a usable question."""
    if not question.strip():
        text = "Please type a question: this one is empty."
        return Answer(question=question, text=text, error="empty question")
    if len(question) > settings.max_question_chars:
        text = (f"The question is too long ({len(question):,} characters; the limit is "
                f"{settings.max_question_chars:,}). Please ask the clinical question itself.")
        return Answer(question=question[: settings.max_question_chars] + "…", text=text,
                      error="question too long")
    if not has_words(question):
        text = ("Please type a question in words: this one has no letters or digits, so there "
                "is nothing to search for.")
        return Answer(question=question, text=text, error="no words in question")
    return None


def evidence_label(meta: DocMeta) -> str:
    """What kind of source this is, as shown next to every quote (no figures)."""
    label = meta.shown_evidence or meta.doc_type or "source type not catalogued"
    return re.sub(r"\d", "", label).strip()


# ---------------------------------------------------------------------------- building

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
        out: list[tuple[int, int]] = []
        for a, b in sorted(spans):  # drop spans inside another
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
    key: str  # entity id ("" = the whole question)
    label: str
    quotes: list[_Quote] = field(default_factory=list)
    note: str = ""
    also: list[_Quote] = field(default_factory=list)  # its evidence already quoted in an earlier section


def select(cands: Sequence[Candidate], *, limit: int, per_source: int, relative: float) -> list[Candidate]:
    """Best eligible sentences: at least `relative` x the best, at most `per_source` quotes per
    document and `limit` in all (a sentence next to a picked one joins its quote for free)."""
    pool = [c for c in cands if c.eligible]
    if not pool:
        return []
    floor = relative * pool[0].score
    picked: list[Candidate] = []
    per: dict[str, int] = {}
    spans: list[tuple[str, int, int]] = []
    quotes = 0
    for c in pool:
        if c.score < floor or quotes >= limit:
            break
        src = c.ann.sent.source
        if per.get(src, 0) >= per_source:
            continue
        a, b = c.ann.sent.quote_span()
        if any(src == x and a >= p and b <= q for x, p, q in spans):
            continue
        joins = any(p.ann.sent.chunk_id == c.ann.sent.chunk_id and (
            abs(p.ann.sent.index - c.ann.sent.index) == 1
            or (c.ann.sent.intro and p.ann.sent.intro == c.ann.sent.intro)) for p in picked)
        picked.append(c)
        spans.append((src, a, b))
        per[src] = per.get(src, 0) + (0 if joins else 1)
        quotes += 0 if joins else 1
    return picked


class _Builder:
    def __init__(self, base: "KnowledgeBase", question: str, text: str, filters: Filters) -> None:
        self.base = base
        self.question = question
        self.text = text
        self.filters = filters
        self.settings = base.settings.answer
        self.scoring = base.settings.scoring
        self.vocab = base.vocabulary
        self.view = corpus_view(base)
        self.needs: Needs = needs_for(base, text, filters)
        self.analysis = self.needs.analysis

    # -- entities -----------------------------------------------------------------------
    def _entity(self, eid: str) -> Concept:
        if eid in self.vocab.concepts:
            return self.vocab.concepts[eid]
        return next(d for d in self.analysis.unknown_drugs if d.id == eid)

    def _label(self, eid: str) -> str:
        return self._entity(eid).label

    def _in_corpus(self, r: Requirement) -> bool:
        """Does any passage (or, for names, the catalogue: title, publisher) mention it?"""
        if r.key in self.vocab.concepts or r.key.startswith("drug:"):
            return self.view.has_concept(self._entity(r.key))
        pattern = term_pattern(r.terms)
        if pattern is None:
            return True
        if self.view.mentions_any(r.terms):
            return True
        return r.kind == "name" and any(pattern.search(f"{d.title} {d.meta.publisher}")
                                        for d in self.base.contents.documents.values())

    def _entity_query(self, eid: str) -> Query:
        ids = self.vocab.with_members([eid]) if eid in self.vocab.concepts else set()
        terms = [t for i in sorted(ids) for t in self.vocab.concepts[i].terms] or list(self._entity(eid).terms)
        rest = " ".join(k.text for k in self.needs.key_terms)
        return Query(text=f"{self._label(eid)} {rest}".strip(), bm25_terms=tuple(terms), filters=self.filters)

    # -- main -------------------------------------------------------------------------
    def build(self) -> Answer:
        a, s = self.analysis, self.settings
        absent = [r for r in self.needs.requirements if not self._in_corpus(r)]
        sectioned = [e for e in a.section_entities if e not in {r.key for r in absent}]
        missing_sections = [e for e in a.section_entities if e in {r.key for r in absent}]
        use_sections = a.comparative and bool(sectioned) and len(sectioned) + len(missing_sections) >= 2
        lacking = [r for r in absent if not (use_sections and r.key in missing_sections)]
        extra = [self._entity_query(e) for e in sectioned] if use_sections else []
        hits, chunks, qvec = gather(self.base, self.needs, s.retrieval_k, extra)
        all_cands = score_candidates(self.base, self.needs, chunks, hits, qvec)
        if lacking:  # a drug, trial or population no passage mentions: "sparsentan", "in pregnancy"
            return self._abstain(Gap("not-in-corpus", "no source mentions " + join_or([r.label for r in lacking]),
                                     tuple(t for r in lacking for t in (r.terms or (r.label,)))), all_cands)
        if use_sections:
            sections, pool, gap = self._sections(sectioned, missing_sections, chunks, hits, qvec)
        else:
            picks = select(all_cands, limit=s.max_sentences, per_source=s.per_source,
                           relative=self.scoring.relative_floor)
            gap = coverage(self.needs, picks, self.scoring)
            sections = [_Section("", "", self._quotes(picks, ""))]
            pool = self._pool(all_cands)
        if gap:
            logger.debug("abstained on %r: %s", self.question[:200], gap)
            return self._abstain(gap, all_cands)
        return self._render(sections, self._disagreements(pool, sections))

    def _sections(self, present: list[str], missing: list[str], chunks: list, hits: list, qvec
                  ) -> tuple[list[_Section], list[Candidate], Gap | None]:
        s = self.settings
        sections: list[_Section] = []
        pool: list[Candidate] = []
        gaps: list[tuple[str, Gap]] = []  # (entity label, why its section has no quote)
        shown: set[tuple[str, int]] = set()  # sentences quoted by an earlier section
        for e in present:
            others = {x for x in self.analysis.section_entities if x != e}
            reqs = [r for r in self.needs.requirements if r.key not in others]
            cands = score_candidates(self.base, self.needs, chunks, hits, qvec, requirements=reqs)
            picks = select(cands, limit=s.section_sentences, per_source=s.section_per_source,
                           relative=self.scoring.relative_floor)
            # The asked figure is required of the answer as a whole, not of every section: a
            # comparison may find a rate for one drug and only a description for the other.
            gap = coverage(Needs(self.needs.text, self.analysis, self.needs.query, tuple(reqs),
                                 self.needs.answer_type, self.needs.key_terms, self.needs.time_points),
                           picks, self.scoring, answer_type=False)
            if gap:
                gaps.append((self._label(e), gap))
                sections.append(_Section(e, self._label(e), note="no passage on this question"))
                continue
            # A sentence naming both compared entities is picked by both sections: quote it once
            # (in the first) and give the later section its next-best sentences instead.
            repeated = [c for c in picks if (c.ann.sent.source, c.ann.sent.start) in shown]
            own = picks
            if repeated:
                floor = self.scoring.relative_floor * picks[0].score
                fresh = [c for c in cands if (c.ann.sent.source, c.ann.sent.start) not in shown]
                own = [c for c in select(fresh, limit=s.section_sentences, per_source=s.section_per_source,
                                         relative=self.scoring.relative_floor) if c.score >= floor]
            label = self._label(e)
            sec = _Section(e, label, self._quotes(own, label), also=self._quotes(repeated, label))
            if not sec.quotes:
                sec.note = "quoted above"
            sections.append(sec)
            shown.update((x.source, x.start) for q in sec.quotes for x in q.sentences)
            pool += self._pool([c for c in cands if c.eligible])
        sections += [_Section(e, self._label(e), note="no passage in the corpus") for e in missing]
        if not any(sec.quotes for sec in sections):
            if not gaps:
                return sections, pool, Gap("no-evidence", "no passage scores high enough on it")
            return sections, pool, Gap(gaps[0][1].rule, "; ".join(f"{label}: {g.reason}" for label, g in gaps))
        whole = coverage(self.needs, pool, self.scoring) if pool else None
        if whole and whole.rule == "answer-type":
            return sections, pool, whole
        return sections, pool, None

    def _pool(self, cands: Sequence[Candidate]) -> list[Candidate]:
        """Sentences relevant enough for their figures to be compared across sources."""
        eligible = [c for c in cands if c.eligible]
        best = eligible[0].score if eligible else 0.0
        return [c for c in eligible if c.score >= max(self.scoring.min_score, self.scoring.relative_floor * best)]

    def _whole_list(self, sent: Sentence) -> list[Sentence]:
        """All items under a picked item's intro, when the intro is what the question asks
        about ("What monitoring...?" -> "Monitoring:" and every item under it)."""
        doc = self.base.document(sent.source).text
        keys = self.needs.key_terms
        for intro in sent.intros:
            intro_text = doc[intro[0]:intro[1]]
            ids = self.vocab.concepts_in(intro_text)
            intro_stems = set(stems(intro_text))
            if not any(k.within(intro_stems) or (k.ids & ids) for k in keys):
                continue
            family = [x.sent for x in self.view.annotated(self.base.chunk(sent.chunk_id)) if intro in x.sent.intros]
            if family and family[-1].end - intro[0] <= self.settings.max_list_chars \
                    and not holds_planted(self.base, sent.chunk_id, intro[0], family[-1].end):
                return family
        return [sent]

    def _quotes(self, picks: Sequence[Candidate], section: str) -> list[_Quote]:
        """Picked sentences as quotes; sentences of one source whose spans touch are merged."""
        quotes: list[_Quote] = []
        expanded = [(sib, p.score) for p in picks for sib in self._whole_list(p.ann.sent)]
        for sent, score in expanded:
            a, b = sent.quote_span()
            for q in quotes:
                if q.source == sent.source and self._touch(sent.source, (a, b), q.span):
                    q.sentences.append(sent)
                    q.sentences.sort(key=lambda x: x.start)
                    break
            else:
                quotes.append(_Quote(sent.source, [sent], score, section))
        for q in quotes:  # one sentence picked twice (itself and as a sibling) is quoted once
            q.sentences = sorted(set(q.sentences), key=lambda x: x.start)
        return quotes

    def _touch(self, source: str, x: tuple[int, int], y: tuple[int, int]) -> bool:
        (_, b), (c, _) = sorted([x, y])
        if c <= b:
            return True
        return bool(_JOINABLE_GAP.fullmatch(self.base.document(source).text[b:c]))

    # -- disagreements ----------------------------------------------------------------
    def _disagreements(self, pool: list[Candidate], sections: list[_Section]) -> list[Disagreement]:
        """Disagreements on what the question asks (dose, rate, ...), quoting both sides; for a
        question asking no such thing, only among the sentences already in the answer."""
        if not self.analysis.attributes:
            pool = [c for c in pool if any(self._contains(q, c.ann.sent) for sec in sections for q in sec.quotes)]
        text_of = lambda src: self.base.document(src).text  # noqa: E731
        in_answer = {m.attribute for c in pool for m in measures(self.vocab, c.ann, text_of(c.ann.sent.source))}
        found = find_disagreements(pool, self.analysis, self.vocab, text_of, min_score=0.0, attributes=in_answer)
        found = found[: self.settings.max_disagreements]
        for d in found:  # both sides must be quoted in the answer
            for f in d.facts:
                target = next((sec for sec in sections if sec.key == f.subject), sections[0])
                if any(self._contains(q, f.scored.ann.sent) for sec in sections for q in sec.quotes):
                    continue
                for q in self._quotes([f.scored], target.label):
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
    def _citation(self, n: int, source: str, a: int, b: int, score: float, sent: Sentence) -> Citation:
        doc = self.base.document(source)
        return Citation(n=n, source=source, title=doc.title, quote=doc.text[a:b], start=a, end=b,
                        score=round(score, 4), evidence=doc.meta.shown_evidence, doc_type=doc.meta.doc_type,
                        year=doc.meta.year, section=sent.section, chunk_id=sent.chunk_id, flags=doc.meta.flags)

    def _render(self, sections: list[_Section], disagreements: list[Disagreement]) -> Answer:
        citations: dict[tuple[str, int, int], Citation] = {}
        out_sections: list[AnswerSection] = []
        rows: list[ComparisonRow] = []
        notes: list[str] = []

        def cite(q: _Quote) -> Citation:
            a, b = q.span
            key = (q.source, a, b)
            if key not in citations:
                citations[key] = self._citation(len(citations) + 1, q.source, a, b, q.score, q.sentences[0])
            return citations[key]

        for sec in sections:
            for q in sec.also:  # its shared evidence, quoted in an earlier section: table rows only
                c = cite(q)
                if len([r for r in rows if r.entity == sec.label]) < self.settings.rows_per_entity:
                    rows.append(self._row(sec.label, q, c, self._display(q)[1]))
            if not sec.quotes:
                out_sections.append(AnswerSection(sec.label, (), sec.note))
                if not sec.also:
                    notes.append(f"{sec.label}: {sec.note}.")  # no table row: a row must cite a source
                continue
            quotes = []
            for q in sec.quotes:
                c = cite(q)
                shown, units = self._display(q)
                quotes.append(AnswerQuote(c.n, shown, tuple(units), evidence_label(self.base.document(q.source).meta)))
                if sec.label and len([r for r in rows if r.entity == sec.label]) < self.settings.rows_per_entity:
                    rows.append(self._row(sec.label, q, c, units))
            out_sections.append(AnswerSection(sec.label, tuple(quotes)))

        if disagreements:
            quotes = []
            for d in disagreements:
                parts = []
                for f in d.facts:
                    q = next(q for sec in sections for q in sec.quotes if self._contains(q, f.scored.ann.sent))
                    parts.append(AnswerQuote(cite(q).n, f.figure.text, (f.figure.text,), lead=d.label))
                quotes += parts
                notes.append("Sources differ on " + d.label + ": " +
                             " vs ".join(f"{p.shown} [{p.citation}]" for p in parts))
            out_sections.append(AnswerSection(DIFFER, tuple(quotes)))

        by_kind: dict[str, list[int]] = {}
        for c in citations.values():
            if c.doc_type in ("case report", "patient information"):
                kind = evidence_label(DocMeta(evidence_level=c.evidence, doc_type=c.doc_type))
                by_kind.setdefault(kind, []).append(c.n)
        for kind, ns in by_kind.items():
            refs = ", ".join(f"[{n}]" for n in ns)
            notes.append(f"{'Sources' if len(ns) > 1 else 'Source'} {refs}: {kind}, not a guideline.")
        unmatched = self._unmatched(sections)
        comparison = tuple(rows) if len([s for s in sections if s.label]) >= 2 else ()
        result = Answer(question=self.question, text="", unmatched=unmatched,
                        citations=tuple(sorted(citations.values(), key=lambda c: c.n)),
                        sentences=_sentences(out_sections), comparison=comparison,
                        notes=tuple(dict.fromkeys(notes)), search_terms=self._search_terms(),
                        sections=tuple(out_sections), vocabulary=self.vocab.digest)
        return _with_text(result)

    def _unmatched(self, sections: list[_Section]) -> tuple[str, ...]:
        """The question's key words that no quoted sentence (with its context) contains: shown
        to a reviewer as what the answer may not address (often only a paraphrase: "kids")."""
        quoted = {(s.chunk_id, s.start) for sec in sections for q in (*sec.quotes, *sec.also) for s in q.sentences}
        anns = [a for cid in {c for c, _ in quoted} for a in self.view.annotated(self.base.chunk(cid))
                if (cid, a.sent.start) in quoted]
        return tuple(dict.fromkeys(k.label for k in lacking_terms(self.needs.key_terms, anns)))

    def _display(self, q: _Quote) -> tuple[str, list[str]]:
        """The quote as shown: its pieces (intros, leads, sentences) verbatim with whitespace
        collapsed, list items after " • ", " … " where source text is left out; `units` are the
        runs that each read as one statement."""
        text = self.base.document(q.source).text
        items = {(x.sent.start, x.sent.end) for cid in {s.chunk_id for s in q.sentences}
                 for x in self.view.annotated(self.base.chunk(cid)) if x.sent.is_list_item}
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
            in_run = (a, b) in items and next_is_item and not shown.endswith(".")
            if last or not (shown.endswith(":") or in_run):
                units.append(" ".join(x for x in unit if x))
                unit = []
        return "".join(out), units

    def _row(self, entity: str, q: _Quote, c: Citation, units: list[str]) -> ComparisonRow:
        figs: list[str] = []
        for s in q.sentences:
            ann = next((x for x in self.view.annotated(self.base.chunk(s.chunk_id)) if x.sent == s), None)
            if ann is None:
                continue
            ms = measures(self.vocab, ann, self.base.document(s.source).text)
            wanted = [m.figure.text for m in ms if m.attribute in self.analysis.attributes]
            figs += wanted or ([] if self.analysis.attributes else [f.text for f in ann.figures])
        finding = units[-1] if units else ""
        if len(finding) > 240:
            finding = finding[:240].rsplit(" ", 1)[0] + " …"
        return ComparisonRow(entity=entity, finding=finding, figure="; ".join(dict.fromkeys(figs)),
                             source=q.source, evidence=c.evidence or c.doc_type, n=c.n)

    def _search_terms(self) -> tuple[str, ...]:
        words = [w for w in re.findall(r"[\w\-/]+", self.text)
                 if w.lower() not in self.vocab.question_words and len(w) > 1]
        return tuple(dict.fromkeys([*words, *self.needs.query.bm25_terms]))

    def _abstain(self, gap: Gap, cands: Sequence[Candidate]) -> Answer:
        reason = gap.reason
        closest: list[Citation] = []
        seen: set[str] = set()
        for c in sorted(cands, key=lambda c: (not c.eligible, -c.score)):
            s = c.ann.sent
            if s.is_question or s.ends_with_colon or s.source in seen:
                continue
            seen.add(s.source)
            a, b = s.quote_span()
            closest.append(self._citation(len(closest) + 1, s.source, a, b, c.score, s))
            if len(closest) >= self.settings.closest:
                break
        terms = [t for t in self._search_terms() if not re.search(r"\d", t)]
        # A missing word may be a typo of one the corpus has ("sparsentin"): say which.
        missing = (*gap.words, *(k.text for k in self.needs.key_terms if k.absent))
        spelt = {w: self.view.close_words(w) for w in dict.fromkeys(missing)}
        suggestions = tuple(f"{w} -> {' or '.join(c)}" for w, c in spelt.items() if c)
        text = (f"The corpus has no passage that answers this question: {reason}. "
                + (f"The corpus spells a similar word: {'; '.join(suggestions)}. " if suggestions else "")
                + "The closest passages found are listed with this answer; they do not answer it. "
                f"Search terms used: {', '.join(terms) if terms else '(none)'}.")
        return Answer(question=self.question, text=text, abstained=True, closest=tuple(closest),
                      search_terms=tuple(self._search_terms()), notes=(f"Abstained: {reason}.",),
                      abstain_reason=reason, abstain_rule=gap.rule, vocabulary=self.vocab.digest,
                      suggestions=suggestions)


def _sentences(sections: Iterable[AnswerSection]) -> tuple[AnswerSentence, ...]:
    """The flat per-statement view of the structure (UI, LLM mode, exports)."""
    out: list[AnswerSentence] = []
    for sec in sections:
        if sec.label == DIFFER:
            leads: dict[str, list[AnswerQuote]] = {}
            for q in sec.quotes:
                leads.setdefault(q.lead, []).append(q)
            for lead, qs in leads.items():
                out.append(AnswerSentence(text=f"{lead}: " + " vs ".join(q.shown for q in qs),
                                          citations=tuple(q.citation for q in qs), section=DIFFER))
            continue
        for q in sec.quotes:
            out += [AnswerSentence(text=u, citations=(q.citation,), section=sec.label) for u in q.units]
    return tuple(out)


def _with_text(a: Answer) -> Answer:
    from dataclasses import replace

    return replace(a, text=to_markdown(a))
