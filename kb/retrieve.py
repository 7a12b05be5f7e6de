"""Hybrid retrieval: dense (FAISS, inner product on normalised vectors = cosine) and BM25 over
the same chunks, fused, then capped per document for diversity.

Fusion (RetrievalSettings.fusion):
  "convex" (default)  every candidate gets BOTH exact scores (its cosine from the stored vectors,
                      its BM25 score from the full score array), each min-max normalised against
                      the retrievers' top-`candidates` lists, then mixed with `dense_weight`.
                      Unlike rank fusion it keeps how far apart scores are, and a chunk found by
                      only one retriever is not treated as scoring nothing in the other
                      (Bruch et al. 2023, "An analysis of fusion functions for hybrid retrieval").
  "rrf"               reciprocal rank fusion with constant `rrf_k` (Cormack et al. 2009).
The weight was chosen on the SciFact training claims, never on the test claims
(docs/EVALUATION.md shows the sweep). Hit.dense_score / bm25_score are the raw cosine and BM25
score of every returned chunk, whichever retriever found it."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from kb.bm25 import query_tokens
from kb.config import RetrievalSettings
from kb.embed import Embedder
from kb.store import IndexContents
from kb.types import Filters, Hit, Query

Ranked = list[tuple[int, float]]  # (chunk row, score), best first


@contextmanager
def _one_faiss_thread() -> Iterator[None]:
    """One query vector gains nothing from OpenMP threads, and on a busy 2-core machine their
    barrier made a 12k-vector flat search take ~17 ms instead of ~1 ms (docs/BENCHMARKS.md)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def rrf_scores(rankings: Sequence[Ranked], k: int) -> dict[int, float]:
    """Reciprocal rank fusion: sum over the lists of 1 / (k + rank)."""
    fused: dict[int, float] = {}
    for ranked in rankings:
        for rank, (i, _) in enumerate(ranked):
            fused[i] = fused.get(i, 0.0) + 1.0 / (k + rank + 1)
    return fused


def minmax(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale so the reference scores span [0, 1]; values outside are clipped. A constant
    reference (one candidate, or no BM25 match) carries no ranking signal: all zeros."""
    if reference.size == 0:
        return np.zeros_like(values, dtype=np.float64)
    lo, hi = float(reference.min()), float(reference.max())
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float64)
    return np.clip((values.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


def convex_scores(dense: np.ndarray, bm25: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """weight * normalised cosine + (1 - weight) * normalised BM25 for aligned candidate arrays;
    the min-max range comes from the candidates flagged in `reference` (the retrievers' top
    `candidates` lists), so a chunk's fused score does not depend on how many results were
    asked for."""
    d = minmax(dense, dense[reference])
    b = minmax(bm25, bm25[reference])
    return weight * d + (1.0 - weight) * b


class Retriever:
    def __init__(self, contents: IndexContents, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.contents = contents
        self.embedder = embedder
        self.settings = settings
        chunks = contents.chunks
        self._chunk_doc_meta = [contents.documents[c.source].meta if c.source in contents.documents else None
                                for c in chunks]

    # -- candidate masks -------------------------------------------------------------
    def _allowed(self, filters: Filters) -> np.ndarray | None:
        if filters.is_empty():
            return None
        return np.array([m is not None and filters.accepts(m, c.source)
                         for m, c in zip(self._chunk_doc_meta, self.contents.chunks)], dtype=bool)

    # -- the two retrievers ----------------------------------------------------------
    def _query_vector(self, query: Query) -> np.ndarray:
        return np.ascontiguousarray(self.embedder.encode([query.embed_text]), dtype=np.float32)

    def query_vector(self, query: Query) -> np.ndarray:
        """The query's embedding (1-D), to reuse for sentence scoring without encoding twice."""
        return self._query_vector(query)[0]

    def _dense_search(self, vec: np.ndarray, n: int, allowed: np.ndarray | None) -> Ranked:
        total = len(self.contents.chunks)
        if total == 0 or n <= 0:
            return []
        want = total if allowed is not None and total <= 50_000 else min(total, n if allowed is None else n * 8)
        with _one_faiss_thread():
            scores, ids = self.contents.faiss_index.search(vec, want)
        out: Ranked = []
        for i, s in zip(ids[0], scores[0]):
            if i < 0 or (allowed is not None and not allowed[i]):
                continue
            out.append((int(i), float(s)))
            if len(out) >= n:
                break
        return out

    def dense(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranked:
        if not self.contents.chunks or n <= 0:
            return []
        return self._dense_search(self._query_vector(query), n, allowed)

    def _bm25_all(self, query: Query, allowed: np.ndarray | None) -> np.ndarray | None:
        """BM25 score of every chunk (0 outside the filter), or None when no query term is
        in the index vocabulary."""
        if self.contents.bm25 is None:
            return None
        tokens = [t for t in query_tokens(query.bm25_text) if t in self.contents.bm25.vocab_dict]
        if not tokens:
            return None
        scores = np.asarray(self.contents.bm25.get_scores(tokens), dtype=np.float32)
        return np.where(allowed, scores, 0.0).astype(np.float32) if allowed is not None else scores

    @staticmethod
    def _top(scores: np.ndarray | None, n: int) -> Ranked:
        if scores is None or n <= 0:
            return []
        n = min(n, int((scores > 0).sum()))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]  # score desc, then row: deterministic ties
        return [(int(i), float(scores[i])) for i in top]

    def bm25(self, query: Query, n: int, allowed: np.ndarray | None = None) -> Ranked:
        return self._top(self._bm25_all(query, allowed), n)

    # -- fusion ------------------------------------------------------------------------
    def search(self, query: Query, k: int = 10, *, query_vec: np.ndarray | None = None) -> list[Hit]:
        s = self.settings
        if not self.contents.chunks or k <= 0:
            return []
        allowed = self._allowed(query.filters)
        depth = max(s.candidates, k)  # asking for more results than candidates deepens both lists
        vec = self._query_vector(query) if query_vec is None else \
            np.ascontiguousarray(query_vec.reshape(1, -1), dtype=np.float32)
        dense = self._dense_search(vec, depth, allowed)
        bm25_all = self._bm25_all(query, allowed)
        sparse = self._top(bm25_all, depth)
        ids = np.array(sorted({i for i, _ in dense} | {i for i, _ in sparse}), dtype=np.int64)
        if ids.size == 0:
            return []
        # Exact evidence from both retrievers for every candidate (cheap: a few hundred rows).
        dense_by = dict(zip(ids.tolist(), (self.contents.vectors[ids] @ vec[0]).tolist()))
        bm25_by = dict(zip(ids.tolist(), (bm25_all[ids] if bm25_all is not None
                                           else np.zeros(ids.size)).tolist()))
        if s.fusion == "rrf":
            fused = rrf_scores((dense, sparse), s.rrf_k)
        elif s.fusion == "convex":
            top = {i for i, _ in dense[:s.candidates]} | {i for i, _ in sparse[:s.candidates]}
            rows = ids.tolist()
            scores = convex_scores(np.array([dense_by[i] for i in rows]), np.array([bm25_by[i] for i in rows]),
                                   np.array([i in top for i in rows], dtype=bool), s.dense_weight)
            fused = dict(zip(rows, scores.tolist()))
        else:
            raise ValueError(f"unknown fusion {s.fusion!r} (expected 'convex' or 'rrf')")
        order = sorted(fused, key=lambda i: (-fused[i], i))
        return self._diverse(order, fused, dense_by, bm25_by, k)

    def _diverse(self, order: list[int], fused: dict[int, float], dense_by: dict[int, float],
                 bm25_by: dict[int, float], k: int) -> list[Hit]:
        """At most `max_per_document` chunks per document, unless too few documents match."""
        chunks = self.contents.chunks
        per_doc: dict[str, int] = {}
        picked: list[int] = []
        overflow: list[int] = []
        for i in order:
            src = chunks[i].source
            if per_doc.get(src, 0) < self.settings.max_per_document:
                per_doc[src] = per_doc.get(src, 0) + 1
                picked.append(i)
            else:
                overflow.append(i)
            if len(picked) >= k:
                break
        if len(picked) < k:
            picked.extend(overflow[: k - len(picked)])
        picked.sort(key=lambda i: (-fused[i], i))
        return [Hit(chunk=chunks[i], score=fused[i], rank=r + 1, dense_score=dense_by.get(i),
                    bm25_score=bm25_by.get(i)) for r, i in enumerate(picked)]
