"""python -m bench [--no-write] [--skip-langchain] [--skip-scale] [--budget-min 30]

Speed and scale, measured in one run and written to docs/BENCHMARKS.md:
  1. load + query latency on the seed corpus (the index `make ingest` builds)
  2. ingest: the SciFact index built from scratch (fresh temporary folder), model time inside it
  3. query latency on SciFact (search and ask)
  4. a plain LangChain pipeline on the same SciFact corpus: build, query, nDCG@10
  5. FAISS flat vs HNSW at 100k and 1M synthetic vectors (child process), switch point
"""
from __future__ import annotations

import os

# Before torch starts OpenMP: on this shared 2-core machine, under other processes' load, the
# default (spinning) wait policy was seen to stall a single query embedding ~0.5 s (PASSIVE: ~20 ms);
# idle, the two measure the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json
import logging
import shutil
import subprocess
import sys
import time

from kb.config import REPO_ROOT

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
COMMAND = "make bench   (= .venv/bin/python -m bench, after make ingest)"
logger = logging.getLogger("bench")


def _scale_plan() -> str:
    """100k: HNSW at the project's efConstruction and at 40 (the pair gives the build-time ratio
    used to extrapolate); 1M: flat, and HNSW at efConstruction=40 if the time budget allows."""
    return f"100000:{_settings().hnsw_ef_construction},40;1000000:40"


def _settings():
    from kb.config import get_settings

    return get_settings().retrieval


def _run_scale(plan: str, n_queries: int, deadline: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-m", "bench.scale", "--plan", plan, "--queries", str(n_queries),
                          "--deadline", str(deadline)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {DOC.name}")
    parser.add_argument("--skip-langchain", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--budget-min", type=float, default=28.0,
                        help="skip the 1M HNSW build (and extrapolate) if it would end the run later than this")
    parser.add_argument("--scale-queries", type=int, default=100)
    parser.add_argument("--backend-chunks", type=int, default=1500,
                        help="SciFact chunks each embedding backend encodes in the side-by-side comparison")
    parser.add_argument("--skip-backends", action="store_true", help="no side-by-side backend comparison")
    parser.add_argument("--ask-chunks", type=int, default=100_000,
                        help="ask() latency on an index of this many chunks (SciFact + filler; 0 = skip)")
    parser.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)  # dev: first N abstracts, no write
    parser.add_argument("--ingest-docs", type=int, default=0,
                        help="ingest and query only the first N SciFact abstracts (0 = all 5,183); for a loaded machine")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "httpx", "faiss", "faiss.loader", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench import ingest_bench, query_bench, render
    from bench.util import peak_rss_mib
    from eval import scifact as sf
    from eval.report import machine_description, now_utc

    from bench import backend_bench
    from kb.config import get_settings

    started = time.perf_counter()
    res = render.BenchResults(date=now_utc(), machine="", load_start=os.getloadavg(),
                              backend=get_settings().embed_backend)
    res.skipped += [name for name, flag in (("the plain-LangChain baseline (--skip-langchain)", args.skip_langchain),
                                            ("scale: FAISS flat vs HNSW (--skip-scale)", args.skip_scale)) if flag]

    # 1. Seed corpus: load (first, so the import time is real), then latency after load.
    base, res.load = query_bench.open_timed(None)
    res.machine = machine_description()
    questions = query_bench.seed_questions()
    res.seed_chunks = len(base.contents.chunks)
    res.seed_docs = len(base.contents.documents)
    res.latency.append(("seed corpus", query_bench.measure("ask (seed)", base.ask, questions)))
    res.latency.append(("seed corpus", query_bench.measure("search k=10 (seed)", lambda q: base.search(q, k=10), questions)))
    res.peak_after_seed = peak_rss_mib()

    # Time to first answer per backend (fresh processes), environment size.
    if not args.skip_backends:
        res.first_answer = [backend_bench.time_to_first_answer(b)
                            for b in dict.fromkeys(("torch", "onnx", res.backend))]
    res.env_sizes = backend_bench.environment_sizes()

    # 2-3. SciFact: backends side by side, ingest from scratch, then query it.
    if sf.available():
        data = sf.load()
        if args.sample:
            from dataclasses import replace

            data = replace(data, documents=data.documents[:args.sample])
            args.no_write = True
        if args.ingest_docs:
            from dataclasses import replace

            data = replace(data, documents=data.documents[:args.ingest_docs])
            res.skipped.append(f"the full SciFact ingest: only its first {args.ingest_docs:,} abstracts were "
                               "ingested and queried (--ingest-docs)")
        if not args.skip_backends:
            texts = backend_bench.chunk_texts(data.documents, args.backend_chunks)
            res.backend_speed = backend_bench.compare(texts, backend_bench.ALL_BACKENDS)
        res.ingest = ingest_bench.run(data.documents, base.embedder, work_dir=sf.CACHE_DIR.parent)
        res.peak_after_ingest = peak_rss_mib()
        try:
            from kb.api import open_kb

            t = time.perf_counter()
            sci = open_kb(res.ingest.index_dir, embedder=base.embedder)
            res.scifact_open_s = time.perf_counter() - t
            claims = [data.queries[q] for q in data.test]
            res.latency.append(("SciFact", query_bench.measure("search k=10 (SciFact)", lambda q: sci.search(q, k=10), claims)))
            t = time.perf_counter()
            sci.ask(claims[0])
            res.scifact_first_ask_s = time.perf_counter() - t
            res.latency.append(("SciFact", query_bench.measure("ask (SciFact)", sci.ask, claims[:100], warmup=0)))
            retr = sf.retriever_with(sci, sci.settings.retrieval)
            res.our_scifact = sf.score_rankings(sf.run_queries(retr, data.queries, data.test, "hybrid"), data.test)
            res.peak_after_scifact = peak_rss_mib()
            del sci
            from bench import serve_mem
            from bench.scale import ClusteredVectors, neighbour_stats

            res.peak_serving_scifact = serve_mem.run(str(res.ingest.index_dir), claims)
            import numpy as np

            real = np.load(res.ingest.index_dir / "vectors.npy")
            synth = ClusteredVectors().block(len(real), seed=1)
            rs, ss = neighbour_stats(real), neighbour_stats(synth)
            res.calibration = [(k, rs[k], ss[k]) for k in rs]
        finally:
            shutil.rmtree(res.ingest.index_dir.parent, ignore_errors=True)
        # 4. LangChain on the same corpus, same model.
        if not args.skip_langchain:
            from bench import langchain_bench

            res.langchain = langchain_bench.run(data, claims)
            res.peak_after_langchain = peak_rss_mib()
    else:
        print(f"bench: SciFact parts skipped: no benchmark data at {sf.SCIFACT_DIR}", flush=True)

    # ask() at scale, in a child process (needs the eval's cached SciFact index for real vectors).
    if args.ask_chunks and sf.available() and sf.INDEX_DIR.exists():
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        out = subprocess.run([sys.executable, "-m", "bench.ask_scale", "--chunks", str(args.ask_chunks)],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        res.ask_scale = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        res.skipped.append("ask() at scale (--ask-chunks 0, or no cached SciFact index: run `make eval` first)")

    # 5. Scale, in a child process (its memory is its own).
    if not args.skip_scale:
        res.scale_plan = _scale_plan()
        deadline = time.time() + args.budget_min * 60 - (time.perf_counter() - started)
        logger.info("scale plan %s", res.scale_plan)
        res.scale = _run_scale(res.scale_plan, args.scale_queries, deadline)

    res.seconds = time.perf_counter() - started
    res.load_end = os.getloadavg()
    res.peak_end = peak_rss_mib()
    res.settings = _settings()
    body = render.render(res)
    print(body, flush=True)
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render.header(res, COMMAND) + "\n\n" + body + "\n", encoding="utf-8")
        print(f"\nwrote {DOC.relative_to(REPO_ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
