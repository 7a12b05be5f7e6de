"""BEIR SciFact through the project's own pipeline: the abstracts become `Document`s, are indexed
by `ingest.build.build_index` into a persistent cache folder (outside git), opened with
`kb.api.open_kb`, and searched with the project's `Retriever`. Scores are per document (BEIR),
so chunk hits are aggregated to their abstract by max (first occurrence in the ranking)."""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from kb import store
from kb.config import REPO_ROOT, RetrievalSettings, Settings, get_settings
from kb.types import DocMeta, Document, Hit, Query

logger = logging.getLogger(__name__)

# ../shared/benchmarks beside the repository; FSGS_KB_BENCHMARKS points elsewhere (or nowhere).
BENCHMARKS_DIR = Path(os.environ.get("FSGS_KB_BENCHMARKS") or REPO_ROOT.parent / "shared" / "benchmarks")
SCIFACT_DIR = BENCHMARKS_DIR / "scifact"
CACHE_DIR = REPO_ROOT / ".cache" / "eval"
INDEX_DIR = CACHE_DIR / "scifact-index"

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> relevance


@dataclass(frozen=True)
class SciFact:
    documents: list[Document]
    queries: dict[str, str]  # every claim in queries.jsonl, by id
    test: Qrels  # qrels/test.tsv: the BEIR test split (300 claims)
    train: Qrels  # derived: the evidence abstracts named in the non-test claims' metadata
    corpus_sha256: str


def available(root: Path | None = None) -> bool:
    root = root or SCIFACT_DIR
    return (root / "corpus.jsonl").is_file() and (root / "qrels" / "test.tsv").is_file()


def abstract_document(doc_id: str, title: str, text: str) -> Document:
    """One abstract as the project's Document: source = the BEIR id (so hits map back to it),
    text = title + blank line + abstract (BEIR's standard title+text indexing)."""
    from ingest.build import doc_id_for

    body = f"{title.strip()}\n\n{text.strip()}" if title.strip() else text.strip()
    return Document(doc_id=doc_id_for(doc_id), source=doc_id, text=body, meta=DocMeta(title=title.strip()),
                    content_hash=hashlib.sha256(body.encode("utf-8")).hexdigest(), fmt="txt")


def _read_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def load(root: Path = SCIFACT_DIR) -> SciFact:
    """Read the files in place (never copied). There is no qrels/train.tsv here, but each claim's
    `metadata` names its evidence abstracts; for the 809 non-test claims that gives a training
    split (505 claims with evidence) to tune fusion on, so the test claims are never tuned on."""
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    documents = [abstract_document(str(r["_id"]), r.get("title") or "", r.get("text") or "") for r in rows]
    queries: dict[str, str] = {}
    evidence: dict[str, dict[str, int]] = {}
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                queries[str(q["_id"])] = q["text"]
                if q.get("metadata"):
                    evidence[str(q["_id"])] = {str(d): 1 for d in q["metadata"]}
    test = _read_qrels(root / "qrels" / "test.tsv")
    train = {q: rel for q, rel in evidence.items() if q not in test}
    return SciFact(documents, queries, test, train, store.file_sha256(root / "corpus.jsonl"))


# ---------------------------------------------------------------- index (cached)

def _index_is_current(index_dir: Path, corpus_sha256: str, settings: Settings) -> bool:
    """The cached index was built from this corpus file with the current ingestion code and
    chunking, so it can be opened as is (a stale one is rebuilt, reusing its vectors)."""
    from ingest.build import pipeline_hash
    from kb import store
    from kb.errors import KBError

    try:
        manifest = store.read_manifest(index_dir.resolve())
    except KBError:
        return False
    from kb.embed import index_family, vector_family

    fp = manifest.get("fingerprint", {})
    return (manifest.get("scifact_corpus_sha256") == corpus_sha256
            and index_family(manifest) == vector_family(settings.embed_backend)
            and fp.get("pipeline") == pipeline_hash()
            and fp.get("chunking") == settings.chunking.to_dict()
            and manifest["embedding"]["model"] == settings.model_name)


TORCH_INDEX_DIR = CACHE_DIR / "scifact-index-torch"  # the torch backend's full index, if one was built


def seed_index(index_dir: Path, source: Path) -> bool:
    """Start a not-yet-built index as a copy of `source` (same vector family), so the build
    reuses every vector whose chunk text and family match instead of embedding it again."""
    import shutil

    if index_dir.exists() or not source.exists():
        return False
    shutil.copytree(source.resolve(), index_dir)
    logger.info("seeded %s from %s (its vectors are reused where the chunk text matches)", index_dir, source)
    return True


def subset(data: SciFact, n_docs: int, seed: int = 0) -> SciFact:
    """Every abstract relevant to a test claim plus random others up to `n_docs` abstracts, the
    same test claims: a smaller corpus on which backends can be compared quickly (its nDCG is
    higher than the full corpus's; only differences between backends carry over)."""
    import random

    relevant = {d for rel in data.test.values() for d in rel}
    others = [d.source for d in data.documents if d.source not in relevant]
    keep = relevant | set(random.Random(seed).sample(others, max(0, min(len(others), n_docs - len(relevant)))))
    docs = [d for d in data.documents if d.source in keep]
    sha = hashlib.sha256(f"{data.corpus_sha256}:{n_docs}:{seed}".encode()).hexdigest()
    return replace(data, documents=docs, corpus_sha256=sha)


def ensure_index(data: SciFact, index_dir: Path = INDEX_DIR, *, settings: Settings | None = None,
                 embedder=None, show_progress: bool = True) -> int:
    """Build (or refresh) the SciFact index with the project's ingestion; a re-run with the same
    corpus and code opens the cache without touching the model. Returns the chunks embedded."""
    from ingest.build import build_index

    settings = replace(settings or get_settings(), index_dir=index_dir)
    if _index_is_current(index_dir, data.corpus_sha256, settings):
        logger.info("SciFact index is current at %s", index_dir)
        return 0
    report = build_index(data.documents, index_dir, embedder=embedder, settings=settings,
                         extra_manifest={"scifact_corpus_sha256": data.corpus_sha256},
                         show_progress=show_progress)
    logger.info("SciFact index: %s", report.summary())
    return report.embedded


# ---------------------------------------------------------------- ranking + metrics

def doc_ranking(hits: Iterable[Hit], n: int) -> list[str]:
    """Chunk hits (best first) -> abstract ids, best first, each once: a document's score is its
    best chunk's score (max aggregation)."""
    seen: dict[str, None] = {}
    for h in hits:
        seen.setdefault(h.chunk.source, None)
        if len(seen) >= n:
            break
    return list(seen)


def chunk_depth(n_docs: int) -> int:
    """How many chunk hits to ask for to fill `n_docs` distinct abstracts (most abstracts are
    two chunks, so a top-100 of documents needs about 2-3x as many chunks)."""
    return 3 * n_docs


def ndcg_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """Binary/graded nDCG@k as in BEIR (pytrec_eval: gain = relevance, discount log2(rank+1))."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    return len(rel & set(ranking[:k])) / len(rel) if rel else 0.0


@dataclass(frozen=True)
class Scores:
    ndcg10: float
    recall100: float
    queries: int


def per_query_ndcg(rankings: dict[str, list[str]], qrels: Qrels) -> list[float]:
    """nDCG@10 of each query of `qrels`, in qrels order (for paired bootstrap intervals)."""
    return [ndcg_at(rankings.get(q, []), rel) for q, rel in qrels.items()]


def score_rankings(rankings: dict[str, list[str]], qrels: Qrels) -> Scores:
    """Mean over the queries of `qrels` (a query with no ranking scores 0, as in BEIR)."""
    nd = per_query_ndcg(rankings, qrels)
    rc = [recall_at(rankings.get(q, []), rel) for q, rel in qrels.items()]
    return Scores(sum(nd) / len(nd), sum(rc) / len(rc), len(nd))


def bootstrap_ci(values: Sequence[float], baseline: Sequence[float] | None = None, *,
                 n: int = 2_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval over queries of the mean (or of the mean paired
    difference to `baseline`): how much of a gap 300 queries can resolve."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if baseline is not None:
        v = v - np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ---------------------------------------------------------------- running the retriever

def run_queries(retriever, queries: dict[str, str], qids: Iterable[str], mode: str,
                n_docs: int = 100) -> dict[str, list[str]]:
    """Rank abstracts for each query with the project's Retriever: `mode` is "hybrid" (its
    search(), i.e. fusion + diversity cap), "understood" (the same after kb.query.understand, as
    KnowledgeBase.search does for a question string), "dense" or "bm25" (one retriever alone)."""
    depth = chunk_depth(n_docs)
    out: dict[str, list[str]] = {}
    chunks = retriever.contents.chunks
    for qid in qids:
        q = Query(text=queries[qid])
        if mode == "understood":  # the claim through the project's query understanding first
            from kb.query import load_vocabulary, understand

            out[qid] = doc_ranking(retriever.search(understand(queries[qid], load_vocabulary()), depth), n_docs)
        elif mode == "hybrid":
            hits = retriever.search(q, depth)
            out[qid] = doc_ranking(hits, n_docs)
        else:
            ranked = retriever.dense(q, depth) if mode == "dense" else retriever.bm25(q, depth)
            seen: dict[str, None] = {}
            for i, _ in ranked:
                seen.setdefault(chunks[i].source, None)
            out[qid] = list(seen)[:n_docs]
    return out


class CachedEmbedder:
    """Wraps the model so a parameter sweep embeds each claim once (same vectors, same code)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.backend = getattr(inner, "backend", None)
        self._memo: dict[str, object] = {}

    def encode(self, texts, *, batch_size: int = 64, show_progress: bool = False):
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing, batch_size=batch_size)):
                self._memo[t] = v
        return np.stack([self._memo[t] for t in texts]) if texts else self.inner.encode([])


def retriever_with(base, retrieval: RetrievalSettings, embedder=None):
    """The project's Retriever over an opened KnowledgeBase's index with other settings."""
    from kb.retrieve import Retriever

    return Retriever(base.contents, embedder or base.embedder, retrieval)
