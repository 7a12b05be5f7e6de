"""Query: model + index load time, then search and answer latency after load."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bench.util import peak_rss_mib, percentile

logger = logging.getLogger(__name__)

# Used when the gold set (eval.gold) is not available.
FALLBACK_QUESTIONS = (
    "What is the first-line treatment for primary FSGS?",
    "What tacrolimus trough level is targeted in FSGS?",
    "How long should steroids be given before calling FSGS steroid resistant?",
    "Does rituximab work in FSGS?",
    "What is the remission rate with cyclosporine?",
    "Which genes cause familial FSGS?",
    "What is the recurrence risk of FSGS after kidney transplant?",
    "How is FSGS diagnosed?",
)


@dataclass(frozen=True)
class Latency:
    what: str
    n: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


def measure(what: str, fn: Callable[[str], object], inputs: Sequence[str], warmup: int = 1) -> Latency:
    """Per-call wall time after `warmup` untimed calls (first-call costs are reported as load)."""
    for x in inputs[:warmup]:
        fn(x)
    times = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1_000)
    logger.info("%s: p50 %.1f ms, p95 %.1f ms (n=%d)", what, percentile(times, 50), percentile(times, 95), len(times))
    return Latency(what, len(times), percentile(times, 50), percentile(times, 95), sum(times) / len(times))


def seed_questions() -> list[str]:
    try:
        from eval.gold import load_gold

        return [q.question for q in load_gold()]
    except Exception as e:  # the gold set is another module; the benchmark still runs without it
        logger.warning("gold questions unavailable (%s); using %d fallback questions", e, len(FALLBACK_QUESTIONS))
        return list(FALLBACK_QUESTIONS)


@dataclass(frozen=True)
class LoadResult:
    import_s: float  # importing the embedding backend's libraries, faiss, bm25s
    model_s: float  # loading all-MiniLM-L6-v2 from the wheel
    index_s: float  # reading + verifying the index files
    first_query_s: float  # the first ask(): lazy set-up (vocabulary, drug dictionary, ...)
    peak_mib: float


def open_timed(index: Path | None) -> tuple[object, LoadResult]:
    """open_kb split into its parts: imports, model, index; then the first (cold) question."""
    from kb.config import get_settings

    t = time.perf_counter()
    import bm25s  # noqa: F401
    import faiss  # noqa: F401

    if get_settings().embed_backend == "torch":
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    import_s = time.perf_counter() - t
    from kb.api import open_kb
    from kb.embed import load_embedder

    t = time.perf_counter()
    embedder = load_embedder()
    model_s = time.perf_counter() - t
    t = time.perf_counter()
    base = open_kb(index, embedder=embedder)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    base.ask("What is FSGS?")
    first = time.perf_counter() - t
    return base, LoadResult(import_s, model_s, index_s, first, peak_rss_mib())
