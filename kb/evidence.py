"""STAND-IN (branch `audit`): the lead is writing the real kb/evidence.py on main, shared by the
question answerer and the draft audit; at merge this file is replaced by it. Keep the API:
`Evidence` and `find_evidence(base, text, *, sources=(), k=5)`. No audit logic lives here.

Evidence for a statement: hybrid search (restricted to `sources` when given), then every
sentence of the retrieved chunks scored by key-term coverage (IDF-weighted share of the
statement's word stems found in the sentence and its context) and by the cosine of the
statement with the sentence.
"""
from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from kb.answer_select import corpus_view
from kb.answer_text import chunk_sentences
from kb.query import analyse, load_vocabulary, stems
from kb.types import Filters

if TYPE_CHECKING:
    from kb.api import KnowledgeBase


@dataclass(frozen=True)
class Evidence:
    source: str
    title: str
    start: int
    end: int
    quote: str  # == document.text[start:end]
    score: float
    chunk_id: str
    section: str
    coverage: float  # IDF-weighted share of the text's key terms in the sentence and its context
    dense: float  # cosine of the text with the sentence
    missing: tuple[str, ...]  # named drugs/entities of the text the evidence does not mention


_CONTEXT_WEIGHT, _TITLE_WEIGHT = 1.0, 0.5
_COVERAGE_SHARE = 0.6  # score = share * coverage + (1 - share) * dense
_SEARCH_DEPTH = 3  # chunks retrieved per evidence sentence asked for
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")

_CACHE: "weakref.WeakKeyDictionary[KnowledgeBase, dict[tuple[str, int, int], np.ndarray]]" = \
    weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def key_terms(text: str) -> list[str]:
    """The statement's word stems, numbers left out (figures are compared on their own)."""
    return [s for s in dict.fromkeys(stems(text)) if not _NUMBER.match(s)]


def _entities(text: str) -> list[tuple[str, "re.Pattern[str] | None", set[str]]]:
    """(label, pattern for words no vocabulary knows, concept ids that satisfy it)."""
    vocab = load_vocabulary()
    a = analyse(text)
    out: list[tuple[str, re.Pattern[str] | None, set[str]]] = []
    for e in a.entities:
        c = vocab.concepts[e]
        if c.kind in ("drug", "drug_class", "therapy"):
            out.append((c.label, None, vocab.with_members([e])))
    for d in a.unknown_drugs:
        out.append((d.label, re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in d.terms), re.I), set()))
    for t in a.unknown_terms:
        out.append((t, re.compile(rf"(?<!\w){re.escape(t)}(?!\w)"), set()))
    return out


def _vectors(base: "KnowledgeBase", rows: list[tuple[str, int, int, str]]) -> np.ndarray:
    with _LOCK:
        cache = _CACHE.setdefault(base, {})
    todo = [r for r in rows if r[:3] not in cache]
    if todo:
        vecs = base.embedder.encode([r[3] for r in todo])
        with _LOCK:
            for r, v in zip(todo, vecs):
                cache[r[:3]] = np.asarray(v, dtype=np.float32)
    return np.stack([cache[r[:3]] for r in rows]) if rows else np.zeros((0, 1), dtype=np.float32)


def find_evidence(base: "KnowledgeBase", text: str, *, sources: Sequence[str] = (), k: int = 5) -> list[Evidence]:
    """The k sentences of the corpus (of `sources` when given) that best bear on `text`."""
    hits = base.search(text, k=max(k * _SEARCH_DEPTH, 10), filters=Filters(sources=tuple(sources)))
    if not hits:
        return []
    view = corpus_view(base)
    vocab = load_vocabulary()
    terms = key_terms(text)
    weights = {t: view.idf(t) for t in terms}
    total = sum(weights.values()) or 1.0
    entities = _entities(text)
    cands: list[tuple[Evidence, str]] = []
    rows: list[tuple[str, int, int, str]] = []
    seen: set[tuple[str, int, int]] = set()
    for hit in hits:
        doc = base.document(hit.chunk.source)
        for s in chunk_sentences(doc.text, hit.chunk):
            if (s.source, s.start, s.end) in seen:
                continue
            seen.add((s.source, s.start, s.end))
            ctx = " ".join([*(doc.text[a:b] for a, b in s.context), s.heading])
            own, near, title = set(stems(s.text)), set(stems(ctx)), set(stems(doc.title))
            got = sum(w * (1.0 if t in own else _CONTEXT_WEIGHT if t in near else _TITLE_WEIGHT if t in title
                           else 0.0) for t, w in weights.items())
            pool = " ".join((s.text, ctx, doc.title))
            found = vocab.with_classes(vocab.concepts_in(pool))
            missing = tuple(label for label, pattern, ids in entities
                            if not (ids & found if ids else pattern is not None and pattern.search(pool)))
            ev = Evidence(source=s.source, title=doc.title, start=s.start, end=s.end, quote=s.text, score=0.0,
                          chunk_id=s.chunk_id, section=s.section, coverage=round(got / total, 4), dense=0.0,
                          missing=missing)
            cands.append((ev, s.text))
            rows.append((s.source, s.start, s.end, s.text))
    claim = np.asarray(base.embedder.encode([text])[0], dtype=np.float32)
    dense = _vectors(base, rows) @ claim
    out = []
    for (ev, _), d in zip(cands, dense.tolist()):
        score = _COVERAGE_SHARE * ev.coverage + (1 - _COVERAGE_SHARE) * max(d, 0.0)
        out.append(Evidence(**{**ev.__dict__, "dense": round(float(d), 4), "score": round(score, 4)}))
    out.sort(key=lambda e: (-e.score, e.source, e.start))
    return out[:k]
