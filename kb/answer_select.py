"""Which source sentences answer a question: candidates from the retrieved chunks, each
annotated with the concepts it is about (its own words, its list intro / headings, its
document's title), scored against the question, and selected with per-source caps."""
from __future__ import annotations

import math
import re
import threading
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable

from kb.answer_text import Figure, Sentence, chunk_sentences, figures
from kb.query import SECTION_KINDS, Concept, QuestionAnalysis, Vocabulary, load_vocabulary
from kb.query import stems as tokens
from kb.types import Chunk, DocMeta, Filters, Hit, Query

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

# How much a concept counts when it is in the sentence itself, in its list intro or the
# sentence its pronoun refers to, in a heading above it, or only in the document title.
OWN, CONTEXT, HEADING, TITLE = 1.0, 0.8, 0.6, 0.4
KIND_IMPORTANCE = {"drug": 2.0, "drug_class": 2.0, "therapy": 2.0, "disease": 2.0,
                   "condition": 1.0, "outcome": 1.0, "measure": 1.0, "topic": 0.8}


@dataclass(frozen=True)
class Measure:
    """A figure of a sentence that measures a known attribute, with the drug it is about."""

    figure: Figure
    attribute: str
    drugs: frozenset[str]  # the drug named nearest the figure (with its classes), else context's


@dataclass(frozen=True)
class Annotated:
    """A candidate sentence with what it is about."""

    sent: Sentence
    weights: dict[str, float]  # concept id -> OWN / CONTEXT / HEADING / TITLE
    stems: frozenset[str]
    context_stems: frozenset[str]
    figures: tuple[Figure, ...]
    meta: DocMeta
    measures: tuple[Measure, ...] = ()  # figures that measure a known attribute

    def about(self, ids: Iterable[str]) -> float:
        return max((self.weights.get(i, 0.0) for i in ids), default=0.0)

    @property
    def drugs(self) -> frozenset[str]:
        """The drug-like concepts the sentence itself (else its context) is about."""
        vocab = load_vocabulary()
        best = max((w for c, w in self.weights.items()
                    if c in vocab.concepts and vocab.concepts[c].kind in SECTION_KINDS), default=0.0)
        return frozenset(c for c, w in self.weights.items() if w == best and best > 0
                         and c in vocab.concepts and vocab.concepts[c].kind in SECTION_KINDS)


@dataclass
class CorpusView:
    """Per-index caches: sentence annotations per chunk, concept presence, document frequency."""

    base: "KnowledgeBase"
    sentences: dict[str, tuple[Annotated, ...]] = field(default_factory=dict)
    present: dict[str, bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- corpus-wide facts ------------------------------------------------------------
    def df(self, stem: str) -> int:
        bm25 = self.base.contents.bm25
        if bm25 is None:
            return 0
        i = bm25.vocab_dict.get(stem)
        indptr = bm25.scores["indptr"]
        if i is None or i + 1 >= len(indptr):
            return 0
        return int(indptr[i + 1] - indptr[i])

    @property
    def n_chunks(self) -> int:
        return max(1, len(self.base.contents.chunks))

    def idf(self, stem: str) -> float:
        return math.log(1.0 + (self.n_chunks + 1) / (self.df(stem) + 0.5))

    def has_concept(self, concept: Concept) -> bool:
        """Does any passage of the corpus mention the concept (any of its terms)?"""
        key = concept.id
        if key not in self.present:
            self.present[key] = self._scan(concept)
        return self.present[key]

    def has_word(self, word: str) -> bool:
        stems = tokens(word)
        return bool(stems) and all(self.df(s) > 0 for s in stems)

    def _scan(self, concept: Concept) -> bool:
        terms = [t for t in (*concept.terms, *concept.library_terms) if t.strip()]
        # BM25's vocabulary rules out most terms at once; a regex over the chunks confirms the rest.
        possible = [t for t in terms if self.has_word(t)]
        if not possible:
            return False
        pattern = re.compile(r"(?<![\w])(?:" + "|".join(
            r"[\s\-]+".join(re.escape(w) for w in re.split(r"[\s\-]+", t.strip())) + r"(?:s|es)?"
            for t in possible) + r")(?![\w])", re.IGNORECASE)
        return any(pattern.search(c.text) for c in self.base.contents.chunks)

    # -- sentences --------------------------------------------------------------------
    def annotated(self, chunk: Chunk) -> tuple[Annotated, ...]:
        cached = self.sentences.get(chunk.chunk_id)
        if cached is None:
            cached = tuple(self._annotate(chunk))
            with self.lock:
                self.sentences[chunk.chunk_id] = cached
        return cached

    def _annotate(self, chunk: Chunk) -> list[Annotated]:
        vocab = load_vocabulary()
        doc = self.base.document(chunk.source)
        text = doc.text
        title_ids = vocab.concepts_in(doc.title)
        out = []
        sentences = chunk_sentences(text, chunk)
        topic_ids = vocab.concepts_in(sentences[0].text) if sentences else set()
        for s in sentences:
            ctx_text = " ".join(text[a:b] for a, b in s.context)
            weights = _weights(vocab, s, ctx_text, topic_ids, title_ids)
            a = Annotated(
                sent=s, weights=weights, stems=frozenset(tokens(s.text)),
                context_stems=frozenset(tokens(" ".join((ctx_text, s.heading)))),
                figures=tuple(f for f in figures(text, s.start, s.end) if f.unit), meta=doc.meta)
            measures = tuple(Measure(f, attr, frozenset(nearest_drug(vocab, a, f, text)))
                             for f, attr in sentence_attributes(vocab, a, text))
            out.append(replace(a, measures=measures))
        return out


def _weights(vocab: Vocabulary, s: Sentence, ctx_text: str, topic_ids: set[str],
             title_ids: set[str]) -> dict[str, float]:
    """Concept -> how directly the sentence is about it. Drugs are inherited from the context,
    the passage's first sentence, the headings, then the title, only while the sentence itself
    names none (a sentence about "this drug" in a review of cyclosporine is about cyclosporine)."""
    weights: dict[str, float] = {}

    def add(ids: Iterable[str], w: float) -> None:
        for c in vocab.with_classes(ids):
            weights[c] = max(weights.get(c, 0.0), w)

    def names_a_drug() -> bool:
        return any(vocab.concepts[c].kind in SECTION_KINDS for c in weights)

    add(vocab.concepts_in(s.text), OWN)
    if ctx_text:
        add(vocab.concepts_in(ctx_text), CONTEXT)
    if not names_a_drug():
        add([c for c in topic_ids if vocab.concepts[c].kind in SECTION_KINDS], HEADING)
    has_drug = names_a_drug()
    add([c for c in vocab.concepts_in(s.heading) if not has_drug or vocab.concepts[c].kind not in SECTION_KINDS],
        HEADING)
    if not names_a_drug():
        add(title_ids, TITLE)
    return weights


_VIEWS: "weakref.WeakKeyDictionary[KnowledgeBase, CorpusView]" = weakref.WeakKeyDictionary()
_VIEWS_LOCK = threading.Lock()


def corpus_view(base: "KnowledgeBase") -> CorpusView:
    with _VIEWS_LOCK:
        view = _VIEWS.get(base)
        if view is None:
            view = _VIEWS[base] = CorpusView(base)
        return view


# ---------------------------------------------------------------------------- scoring

@dataclass(frozen=True)
class Need:
    """What a passage must say to answer (part of) a question."""

    groups: tuple[tuple[tuple[str, ...], float], ...]  # each question concept: ids counting as it
    stems: tuple[tuple[str, float], ...]  # question word stems with idf
    attributes: tuple[str, ...]
    definition_of: tuple[str, ...] = ()  # "what is X": terms X


_DEFINITION_Q = re.compile(r"^\s*(?:what\s+is|what's|whats|define|tell me about|explain)\s+"
                           r"(?:an?\s+|the\s+)?(.+?)\??\s*$",
                           re.IGNORECASE)


def need_for(view: CorpusView, analysis: QuestionAnalysis, *, only_entity: str | None = None,
             drop: Iterable[str] = ()) -> Need:
    """The need of a question; for one section of a comparison, `only_entity` keeps that
    entity and `drop` removes the other compared entities."""
    vocab = load_vocabulary()
    drop = set(drop)
    groups: list[tuple[tuple[str, ...], float]] = []
    for cid in analysis.concepts:
        c = vocab.concepts[cid]
        if c.generic or cid in drop:
            continue
        groups.append((tuple(sorted(vocab.with_members([cid]))), KIND_IMPORTANCE.get(c.kind, 1.0)))
    if only_entity and only_entity.startswith("drug:"):
        groups.append(((only_entity,), 2.0))
    # Words naming a concept are matched as the concept (any synonym), not as words; a generic
    # or dropped concept does not count at all ("FSGS" matches every passage).
    question = list(analysis.question)
    for m in analysis.mentions:
        question[m.start:m.end] = " " * (m.end - m.start)
    for d in analysis.unknown_drugs:
        if d.id in drop:
            for t in d.terms:
                for mm in re.finditer(r"(?<!\w)" + re.escape(t) + r"(?!\w)", analysis.question, re.IGNORECASE):
                    question[mm.start():mm.end()] = " " * (mm.end() - mm.start())
    qwords = vocab.question_word_stems
    stems = [s for s in dict.fromkeys(tokens("".join(question))) if s not in qwords]
    if not stems and not groups:  # "what is FSGS?": the generic words are all there is
        stems = [s for s in dict.fromkeys(tokens(analysis.question)) if s not in qwords]
    m = _DEFINITION_Q.match(analysis.question)
    definition = (m.group(1).strip(),) if m and len(m.group(1).split()) <= 4 else ()
    return Need(groups=tuple(groups),
                stems=tuple((s, view.idf(s)) for s in stems), attributes=analysis.attributes,
                definition_of=definition)


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
            d = -1  # "2.4g of intravenous Cyclophosphamide": the figure is that drug's
        if best is None or d < best[0]:
            best = (d, m.concept)
    if best is not None:
        return vocab.with_classes([best[1]])
    return set(a.drugs)


def sentence_attributes(vocab: Vocabulary, a: Annotated, text: str) -> list[tuple[Figure, str]]:
    """(figure, attribute) for every figure of the sentence that measures a known attribute;
    a figure after "vs" takes the attribute of the figure before it ("94% vs 53%")."""
    out: list[tuple[Figure, str]] = []
    prev: tuple[Figure, str] | None = None
    for fig in a.figures:
        attr = figure_attribute(vocab, a, fig, text)
        if prev is not None and re.fullmatch(r"\s*(?:vs\.?|versus)\s*", text[prev[0].end:fig.start]):
            attr = prev[1] if prev[0].unit == fig.unit else attr
        if attr:
            out.append((fig, attr))
            prev = (fig, attr)
        else:
            prev = None
    return out


def relevance(view: CorpusView, a: Annotated, need: Need, doc_text: str) -> float:
    """How well one sentence meets the need, in [0, ~1.3]."""
    vocab = load_vocabulary()
    concept_part = 0.0
    # A sentence giving a dose is about the dose even if it never says "dose" ("1-2 g/d").
    stated = {vocab.attributes[m.attribute].concept for m in a.measures if m.attribute in need.attributes}
    if need.groups:
        total = sum(w for _, w in need.groups)
        concept_part = sum(w * (1.0 if stated & set(ids) else a.about(ids)) for ids, w in need.groups) / total
    lexical = 0.0
    if need.stems:
        total = sum(idf for _, idf in need.stems)
        lexical = sum(idf * (1.0 if s in a.stems else 0.5 if s in a.context_stems else 0.0)
                      for s, idf in need.stems) / total
    if need.groups and need.stems:
        score = 0.65 * concept_part + 0.35 * lexical
    elif need.groups:
        score = concept_part
    else:
        score = lexical
    if need.attributes:  # "what dose", "remission rates": sentences giving the figure come first
        measures = [m for m in a.measures if m.attribute in need.attributes]
        if measures:
            # ... of the drug asked about: a tacrolimus dose does not answer a cyclosporine one
            entity_groups = [set(ids) for ids, w in need.groups if w >= KIND_IMPORTANCE["drug"]
                             and any(i.startswith("drug:") or (i in vocab.concepts and vocab.concepts[i].kind
                                                               in SECTION_KINDS) for i in ids)]
            fit = 1.0 if not entity_groups else max(
                (1.0 if all(g & m.drugs for g in entity_groups) else 0.3 if not m.drugs else 0.0) for m in measures)
            score = score + 0.35 * fit if fit > 0 else score * 0.75
        else:
            score *= 0.6
    if need.definition_of:
        subject = need.definition_of[0].lower()
        head = a.sent.text.lower()
        if head.startswith(subject + " is") or (head.startswith(subject + " (") and " is " in head[:120]):
            score += 0.3
    s = a.sent
    if s.is_question:
        score *= 0.3
    elif s.ends_with_colon:
        score *= 0.5  # an intro alone says little; it comes with its items
    elif len(s.text) < 25 and not s.intro:
        score *= 0.6
    return score


# ---------------------------------------------------------------------------- candidates

@dataclass(frozen=True)
class Scored:
    ann: Annotated
    score: float
    hit_score: float


def candidates(base: "KnowledgeBase", query: Query, analysis: QuestionAnalysis, k: int,
               extra_queries: Iterable[Query] = ()) -> tuple[list[Hit], list[Chunk]]:
    """Hybrid hits for the question, its best BM25 chunks whatever their document, and BM25
    hits for each compared entity (cheap: no second embedding), so that every section has its
    own evidence."""
    hits = base.retriever.search(query, k)
    chunks = {h.chunk.chunk_id: h.chunk for h in hits}
    # The search caps chunks per document; the best BM25 chunks of a rich document still count.
    for i, _ in base.retriever.bm25(query, k // 2):
        c = base.contents.chunks[i]
        if _accepts(base, query.filters, c):
            chunks.setdefault(c.chunk_id, c)
    for q in extra_queries:
        per_doc: dict[str, int] = {}
        taken = 0
        for i, _ in base.retriever.bm25(q, 4 * k):
            c = base.contents.chunks[i]
            if per_doc.get(c.source, 0) >= 2 or not _accepts(base, query.filters, c):
                continue  # two per document: every source naming the entity gets a chance
            per_doc[c.source] = per_doc.get(c.source, 0) + 1
            chunks.setdefault(c.chunk_id, c)
            taken += 1
            if taken >= k:
                break
    return hits, list(chunks.values())


def _accepts(base: "KnowledgeBase", filters: Filters, chunk: Chunk) -> bool:
    if filters.is_empty():
        return True
    doc = base.contents.documents.get(chunk.source)
    return doc is not None and filters.accepts(doc.meta, chunk.source)


def score_all(base: "KnowledgeBase", chunks: list[Chunk], hits: list[Hit], need: Need) -> list[Scored]:
    view = corpus_view(base)
    hit_scores = {h.chunk.chunk_id: h.score for h in hits}
    top = max(hit_scores.values(), default=1.0) or 1.0
    out = []
    for c in chunks:
        text = base.document(c.source).text
        prior = 0.05 * hit_scores.get(c.chunk_id, 0.0) / top
        for a in view.annotated(c):
            out.append(Scored(a, relevance(view, a, need, text) + prior, hit_scores.get(c.chunk_id, 0.0)))
    out.sort(key=lambda s: (-s.score, s.ann.sent.source, s.ann.sent.start))
    return out


def select(scored: list[Scored], *, limit: int, per_source: int, min_score: float,
           relative: float, must: Iterable[str] | None = None) -> list[Scored]:
    """Best sentences: above `min_score` and `relative` x the best, at most `per_source` per
    document and `limit` quotes in all (a sentence next to a picked one joins its quote); with
    `must`, only sentences about one of those concepts."""
    must = set(must) if must else None
    pool = [s for s in scored if must is None or s.ann.about(must) > 0]
    if not pool:
        return []
    floor = max(min_score, relative * pool[0].score)
    picked: list[Scored] = []
    per: dict[str, int] = {}
    spans: list[tuple[str, int, int]] = []
    quotes = 0
    for s in pool:
        if s.score < floor or quotes >= limit:
            break
        src = s.ann.sent.source
        if per.get(src, 0) >= per_source:
            continue
        a, b = s.ann.sent.quote_span()
        if any(src == x and a >= p and b <= q for x, p, q in spans):
            continue  # already quoted inside another span
        # The next sentence of a picked one, or an item of the same list, joins its quote: it
        # does not use up the limits.
        joins = any(p.ann.sent.chunk_id == s.ann.sent.chunk_id and (
            abs(p.ann.sent.index - s.ann.sent.index) == 1
            or (s.ann.sent.intro and p.ann.sent.intro == s.ann.sent.intro))
            for p in picked)
        picked.append(s)
        spans.append((src, a, b))
        per[src] = per.get(src, 0) + (0 if joins else 1)
        quotes += 0 if joins else 1
    return picked
