"""ask() latency at ~100k chunks: SciFact's abstracts (real vectors, reused from the SciFact
eval index) plus filler abstracts made from SciFact and PubMedQA sentences re-ordered under new
ids (synthetic vectors fitted to MiniLM's, bench/scale.py), built by the project's own
build_index (so BM25 and HNSW are real), then p50/p95 of ask() on SciFact test claims.

python -m bench.ask_scale [--chunks 100000] [--questions 50]   (prints one JSON line)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)


class LookupEmbedder:
    """Real vectors for texts the SciFact index already holds (by embedding key); for filler
    texts, a synthetic embedding-like vector from the text's hash (deterministic); for
    questions, the real model."""

    def __init__(self, known: dict[str, np.ndarray], model_name: str, key_model: str, real) -> None:
        from bench.scale import ClusteredVectors

        self.known, self.real, self.key_model = known, real, key_model
        self.name, self.dim = model_name, real.dim
        self.gen = ClusteredVectors()
        self.backend = getattr(real, "backend", None)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        from ingest.build import embed_key

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = self.known.get(embed_key(self.key_model, t))
            if v is None:
                seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
                v = self.gen.block(1, seed=seed, chunks_per_doc=1.0)[0]
            out[i] = v
        return out


def filler_documents(sources: Sequence[str], n_docs: int, seed: int = 0):
    """New abstracts made of sentences from `sources`, re-ordered and mixed, under new ids."""
    from eval.scifact import abstract_document

    rng = random.Random(seed)
    sentences = [s.strip() + "." for text in sources for s in text.split(". ") if len(s.strip()) > 30]
    for i in range(n_docs):
        body = " ".join(rng.sample(sentences, rng.randint(6, 11)))
        yield abstract_document(f"filler-{i}", f"Filler abstract {i}", body)


def run(n_chunks: int, n_questions: int, keep: Path | None = None) -> dict:
    from eval import scifact as sf
    from ingest.build import build_index
    from kb.api import open_kb
    from kb.config import get_settings
    from kb.embed import embedding_id, load_embedder

    from bench.query_bench import measure

    settings = get_settings()
    data = sf.load()
    base = open_kb(sf.INDEX_DIR)  # the eval's cached SciFact index (make eval builds it)
    key_model = embedding_id(settings.model_name, settings.embed_backend)
    known = {k: base.contents.vectors[i] for i, k in enumerate(base.contents.embed_keys)}
    # Filler abstracts give ~2.1 chunks each (measured: 80,300 chunks from 37,940); aim a little over.
    need = max(0, int((n_chunks - len(base.contents.chunks)) / 2.0))
    pubmedqa = sf.BENCHMARKS_DIR / "pubmedqa" / "corpus.jsonl"
    texts = [d.text for d in data.documents]
    if pubmedqa.is_file():
        with open(pubmedqa, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    documents = list(data.documents) + list(filler_documents(texts, need))
    root = keep or Path(tempfile.mkdtemp(prefix="bench-ask-scale-", dir=sf.CACHE_DIR.parent))
    try:
        index_dir = root / "index"
        emb = LookupEmbedder(known, settings.model_name, key_model, load_embedder())
        t = time.perf_counter()
        build_s = float("nan")  # a kept index (--keep) is reused as it is
        if not (keep and index_dir.exists()):
            build_index(documents, index_dir, embedder=emb, settings=replace(settings, index_dir=index_dir),
                        show_progress=False)
            build_s = time.perf_counter() - t
        big = open_kb(index_dir, embedder=emb.real)
        n = big.manifest["counts"]
        claims = [data.queries[q] for q in list(data.test)[:n_questions]]
        lat = measure(f"ask ({n['chunks']:,} chunks)", big.ask, claims, warmup=1)
        return {"chunks": n["chunks"], "documents": n["documents"], "build_s": build_s,
                "vector_index": big.manifest["vector_index"].get("type"), "n": lat.n,
                "p50_ms": lat.p50_ms, "p95_ms": lat.p95_ms, "mean_ms": lat.mean_ms}
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ask_scale", description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the index in this folder and keep it; reuse it if it is there (dev)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(args.chunks, args.questions, args.keep)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
