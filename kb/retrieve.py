"""Hybrid retrieval: dense (FAISS, inner product on normalised vectors = cosine) and BM25 over
the same chunks, fused by reciprocal rank fusion, then capped per document for diversity."""
from __future__ import annotations

import numpy as np

from kb.bm25 import query_tokens
from kb.config import RetrievalSettings
from kb.embed import Embedder
from kb.store import IndexContents
from kb.types import Filters, Hit, Query


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
    def dense(self, query: Query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        total = len(self.contents.chunks)
        if total == 0 or n <= 0:
            return []
        vec = self.embedder.encode([query.embed_text])
        want = total if allowed is not None and total <= 50_000 else min(total, n if allowed is None else n * 8)
        scores, ids = self.contents.faiss_index.search(np.ascontiguousarray(vec, dtype=np.float32), want)
        out = []
        for i, s in zip(ids[0], scores[0]):
            if i < 0 or (allowed is not None and not allowed[i]):
                continue
            out.append((int(i), float(s)))
            if len(out) >= n:
                break
        return out

    def bm25(self, query: Query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self.contents.bm25 is None or n <= 0:
            return []
        tokens = query_tokens(query.bm25_text)
        tokens = [t for t in tokens if t in self.contents.bm25.vocab_dict]
        if not tokens:
            return []
        scores = np.asarray(self.contents.bm25.get_scores(tokens), dtype=np.float32)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        n = min(n, int((scores > 0).sum()))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]

    # -- fusion ------------------------------------------------------------------------
    def search(self, query: Query, k: int = 10) -> list[Hit]:
        s = self.settings
        allowed = self._allowed(query.filters)
        dense = self.dense(query, s.candidates, allowed)
        sparse = self.bm25(query, s.candidates, allowed)
        fused: dict[int, float] = {}
        for ranked in (dense, sparse):
            for rank, (i, _) in enumerate(ranked):
                fused[i] = fused.get(i, 0.0) + 1.0 / (s.rrf_k + rank + 1)
        dense_by = dict(dense)
        bm25_by = dict(sparse)
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
