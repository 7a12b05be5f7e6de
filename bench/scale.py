"""Scale: FAISS exact flat vs HNSW on synthetic 384-d unit vectors at 100k and 1M.

Uniform random vectors are nearly orthogonal in 384-d and have no neighbourhood structure, which
makes approximate search look worse than on real embeddings (and a flat spectrum did: recall
0.75 at 1M). These are generated to look like all-MiniLM-L6-v2 chunk vectors instead: a shared
mean direction, a power-law covariance spectrum, and three levels (topic -> document -> chunk,
~2.3 chunks per document), with parameters fitted so that 12k of them match the SciFact index
(mean norm, median random cosine, mean cosine to the 1st/10th/100th neighbour, PCA variance;
docs/BENCHMARKS.md prints both). Queries are fresh single-chunk documents of existing topics."""
from __future__ import annotations

import gc
import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bench.util import percentile, rss_mib
from kb.config import RetrievalSettings

logger = logging.getLogger(__name__)

DIM = 384
LATENCY_BUDGET_MS = 20.0  # dense search share of a query; the whole answer should stay < 0.1-0.2 s


class ClusteredVectors:
    """Deterministic generator of embedding-like unit vectors, produced block by block so 1M
    vectors never exist twice in memory. Defaults: fitted to SciFact's MiniLM vectors."""

    def __init__(self, dim: int = DIM, n_topics: int = 2_000, alpha: float = 0.8, mean_norm: float = 0.45,
                 doc_spread: float = 0.6, chunk_spread: float = 0.6, chunks_per_doc: float = 2.3,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dim, self.seed = dim, seed
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        scale = np.arange(1, dim + 1) ** (-alpha / 2)  # eigenvalues ~ i^-alpha
        self.basis = (q * (scale / np.sqrt((scale ** 2).sum()))).T.astype(np.float32)  # z @ basis ~ N(0, C)
        mean = rng.standard_normal(dim)
        self.mean = (mean * mean_norm / np.linalg.norm(mean)).astype(np.float32)
        self.topics = self.mean + self._noise(rng, n_topics)
        w = 1.0 / np.arange(1, n_topics + 1) ** 0.8  # topic sizes follow a power law
        self.weights = w / w.sum()
        self.doc_spread, self.chunk_spread, self.chunks_per_doc = doc_spread, chunk_spread, chunks_per_doc

    def _noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal((n, self.dim), dtype=np.float32) @ self.basis

    def block(self, n: int, seed: int, chunks_per_doc: float | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        n_docs = max(1, int(n / (chunks_per_doc or self.chunks_per_doc)))
        docs = self.topics[rng.choice(len(self.topics), size=n_docs, p=self.weights)]
        docs += self.doc_spread * self._noise(rng, n_docs)
        v = docs[rng.integers(0, n_docs, size=n)] + self.chunk_spread * self._noise(rng, n)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def queries(self, n: int, seed: int = 999_999) -> np.ndarray:
        return self.block(n, seed, chunks_per_doc=1.0)

    def blocks(self, n: int, size: int = 100_000):
        for b, start in enumerate(range(0, n, size)):
            yield self.block(min(size, n - start), seed=self.seed * 1_000 + b + 1)


def neighbour_stats(x: np.ndarray, n_probe: int = 300, seed: int = 0) -> dict[str, float]:
    """What the generator was fitted on; computed for real and synthetic vectors alike."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(n_probe, len(x)), replace=False)
    sims = x[idx] @ x.T
    sims[np.arange(len(idx)), idx] = -1.0  # not itself
    top = -np.sort(-sims, axis=1)
    centred = x - x.mean(axis=0)
    ev = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1]
    cum = np.cumsum(ev / ev.sum())
    return {"mean norm": float(np.linalg.norm(x.mean(axis=0))), "median cosine": float(np.median(sims)),
            "1st neighbour": float(top[:, 0].mean()), "10th neighbour": float(top[:, 9].mean()),
            "100th neighbour": float(top[:, 99].mean()), "PCA var 10": float(cum[9]),
            "PCA var 50": float(cum[49]), "PCA var 100": float(cum[99])}


@dataclass(frozen=True)
class ScaleRow:
    n: int
    kind: str  # "flat" or "hnsw"
    build_s: float
    p50_ms: float  # one query at a time, one FAISS thread (as kb.retrieve searches)
    p95_ms: float
    p50_all_threads_ms: float  # the same with FAISS's default OpenMP threads
    batch_qps: float  # queries per second when many queries are searched at once (all threads)
    recall10: float | None
    index_mib: float  # resident memory the index added
    params: str


def _time_single(index, queries: np.ndarray, threads: int, k: int = 10) -> tuple[float, float, np.ndarray]:
    """One query at a time, as an interactive user issues them."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        times, ids = [], []
        index.search(queries[:2], k)  # warm-up
        for q in queries:
            t = time.perf_counter()
            _, i = index.search(q[None, :], k)
            times.append((time.perf_counter() - t) * 1_000)
            ids.append(i[0])
    finally:
        faiss.omp_set_num_threads(before)
    return percentile(times, 50), percentile(times, 95), np.array(ids)


def _timings(index, queries: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
    import faiss

    p50, p95, ids = _time_single(index, queries, threads=1)
    p50_all, _, _ = _time_single(index, queries[: max(20, len(queries) // 4)], threads=faiss.omp_get_max_threads())
    t = time.perf_counter()
    index.search(queries, 10)
    qps = len(queries) / (time.perf_counter() - t)
    return p50, p95, p50_all, qps, ids


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def run_size(n: int, settings: RetrievalSettings, gen: ClusteredVectors, queries: np.ndarray,
             ef_constructions: Sequence[int]) -> list[ScaleRow]:
    """Flat, then HNSW once per efConstruction, at one corpus size; the flat index's answers
    are the exact ground truth for recall@10."""
    import faiss

    rows: list[ScaleRow] = []
    before = rss_mib()
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    for block in gen.blocks(n):
        flat.add(block)
    flat_build = time.perf_counter() - t
    flat_mib = rss_mib() - before
    p50, p95, p50_all, qps, _ = _timings(flat, queries)
    _, truth = flat.search(queries, 10)
    rows.append(ScaleRow(n, "flat", flat_build, p50, p95, p50_all, qps, 1.0, flat_mib, "IndexFlatIP (exact)"))
    logger.info("flat %d: p50 %.2f ms (1 thread), %.2f ms (all threads)", n, p50, p50_all)
    # HNSW is fed from the flat index's own storage: the vectors exist once, not twice.
    xb = faiss.rev_swig_ptr(flat.get_xb(), n * DIM).reshape(n, DIM)
    for efc in ef_constructions:
        before = rss_mib()
        hnsw = faiss.IndexHNSWFlat(DIM, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = efc
        t = time.perf_counter()
        for start in range(0, n, 100_000):
            hnsw.add(np.ascontiguousarray(xb[start:start + 100_000]))
        build = time.perf_counter() - t
        mib = rss_mib() - before
        hnsw.hnsw.efSearch = settings.hnsw_ef_search
        p50, p95, p50_all, qps, found = _timings(hnsw, queries)
        rows.append(ScaleRow(n, "hnsw", build, p50, p95, p50_all, qps, _recall(found, truth), mib,
                             f"M={settings.hnsw_m}, efConstruction={efc}, efSearch={settings.hnsw_ef_search}"))
        logger.info("hnsw %d efC=%d: build %.1f s, p50 %.2f ms, recall %.3f", n, efc, build, p50, rows[-1].recall10)
        del hnsw
        gc.collect()
    del xb, flat
    gc.collect()
    return rows


def switch_point(rows: list[ScaleRow], budget_ms: float = LATENCY_BUDGET_MS) -> int:
    """Corpus size at which exact search's p50 reaches the budget: flat search is a linear scan,
    so fit p50 = a + b*n through the measured sizes and solve for the budget."""
    pts = sorted((r.n, r.p50_ms) for r in rows if r.kind == "flat")
    (n1, t1), (n2, t2) = pts[0], pts[-1]
    slope = (t2 - t1) / (n2 - n1)
    if slope <= 0:
        return n2
    return int(n1 + (budget_ms - t1) / slope)


def build_time_at(seconds: float, n_from: int, n_to: int) -> float:
    """HNSW construction is roughly n log n: from 100k to 1M, ~12x the time."""
    return seconds * (n_to / n_from) * (math.log(n_to) / math.log(n_from))


def run(settings: RetrievalSettings, plan: Sequence[tuple[int, Sequence[int]]], n_queries: int = 200,
        deadline: float | None = None) -> tuple[list[ScaleRow], list[str]]:
    """`plan`: (corpus size, HNSW efConstruction values to build at that size). An HNSW build
    predicted (from the last measured build) to end after `deadline` (time.time()) is skipped
    and noted, so the whole benchmark keeps to its time budget."""
    gen = ClusteredVectors()
    queries = gen.queries(n_queries)
    rows: list[ScaleRow] = []
    notes: list[str] = []
    for n, efcs in plan:
        keep = list(efcs)
        if deadline is not None and keep:
            same = [r for r in rows if r.kind == "hnsw" and f"efConstruction={keep[0]}," in r.params]
            if same:
                predicted = build_time_at(same[-1].build_s, same[-1].n, n)
                if time.time() + predicted + 60 > deadline:
                    notes.append(f"HNSW build at {n:,} skipped: predicted {predicted:.0f} s would pass the time budget")
                    keep = []
        rows.extend(run_size(n, settings, gen, queries, keep))
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    """Run in a child process by `python -m bench`, so that 1M vectors do not inflate the peak
    memory reported for the query benchmark; prints one JSON object."""
    import argparse
    import json
    from dataclasses import asdict

    from bench.util import child_peak_rss_mib
    from kb.config import get_settings

    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--plan", default="100000:200,40;1000000:40",
                        help="size:efC,efC;size:efC ... (HNSW efConstruction values per size)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=None, help="unix time the run should end by")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plan = []
    for part in args.plan.split(";"):
        size, _, efcs = part.partition(":")
        plan.append((int(size), [int(e) for e in efcs.split(",") if e]))
    t = time.perf_counter()
    rows, notes = run(get_settings().retrieval, plan, args.queries, args.deadline)
    print(json.dumps({"rows": [asdict(r) for r in rows], "notes": notes, "peak_mib": child_peak_rss_mib(),
                      "seconds": time.perf_counter() - t}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
