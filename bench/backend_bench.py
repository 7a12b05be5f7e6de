"""Embedding backends side by side: torch vs the ONNX backends on the very same SciFact chunk
texts, interleaved slice by slice so a change in the shared machine's load hits both alike; and
time-to-first-answer of `python -m kb ask` per backend (fresh processes)."""
from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from kb.config import EMBED_BACKENDS, REPO_ROOT
from kb.types import Document

logger = logging.getLogger(__name__)

# torch (the reference every ratio is taken against) first, then every other backend.
ALL_BACKENDS = ("torch", *(b for b in EMBED_BACKENDS if b != "torch"))


@dataclass(frozen=True)
class BackendSpeed:
    backend: str
    chunks: int
    seconds: float

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else float("nan")


def chunk_texts(documents: Sequence[Document], n: int, seed: int = 0) -> list[str]:
    """The embedded texts of `n` SciFact chunks (a fixed random sample), as the build makes them."""
    from dataclasses import replace  # noqa: F401

    from ingest.chunking import chunk_blocks, embedding_text
    from ingest.structure import classify
    from kb.config import get_settings

    settings = get_settings().chunking
    texts = []
    for doc in documents:
        texts.extend(embedding_text(doc, c) for c in chunk_blocks(doc, classify(doc.text), settings))
    random.Random(seed).shuffle(texts)
    return texts[:n] if n else texts


def compare(texts: list[str], backends: Sequence[str], slices: int = 4) -> list[BackendSpeed]:
    """Each backend encodes every text once, in `slices` interleaved rounds (torch, onnx, ...,
    torch, onnx, ...), each slice as the build sends it (512 texts per call, batch_size 64)."""
    from kb.embed import load_embedder

    models = {b: load_embedder(backend=b) for b in backends}
    for m in models.values():  # warm-up (first-call allocations), untimed
        m.encode(texts[:16], batch_size=64)
    spent = {b: 0.0 for b in backends}
    size = -(-len(texts) // slices)
    for s in range(slices):
        part = sorted(texts[s * size:(s + 1) * size], key=len)
        for b, m in models.items():
            t = time.perf_counter()
            for i in range(0, len(part), 512):
                m.encode(part[i:i + 512], batch_size=64)
            spent[b] += time.perf_counter() - t
        logger.info("backends slice %d/%d: %s", s + 1, slices,
                    ", ".join(f"{b} {spent[b]:.0f} s" for b in backends))
    return [BackendSpeed(b, len(texts), spent[b]) for b in backends]


@dataclass(frozen=True)
class FirstAnswer:
    backend: str
    seconds: list[float]  # wall time of each fresh `python -m kb ask` process
    torch_imported: bool

    @property
    def best_s(self) -> float:
        return min(self.seconds)


def time_to_first_answer(backend: str, runs: int = 3, index: Path | None = None) -> FirstAnswer:
    """Wall time of a fresh `python -m kb ask QUESTION` (imports, model, index, one answer)."""
    code = ("import sys, runpy; sys.argv = ['kb', 'ask'] + sys.argv[1:]; "
            "rc = 0\ntry:\n    runpy.run_module('kb', run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code or 0\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr); sys.exit(rc)")
    args = [sys.executable, "-c", code] + (["--index", str(index)] if index else []) + ["tacrolimus trough target?"]
    env = {**os.environ, "FSGS_KB_EMBED_BACKEND": backend, "PYTHONPATH": str(REPO_ROOT)}
    times, torch_seen = [], False
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t)
        torch_seen = torch_seen or "NOTORCH" not in out.stderr
    logger.info("kb ask, %s backend: %s s", backend, ", ".join(f"{x:.1f}" for x in times))
    return FirstAnswer(backend, times, torch_seen)


def dir_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / 2**20


def environment_sizes() -> list[tuple[str, float]]:
    """The venv, and the parts the backend choice decides (site-packages folders)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    venv = Path(sys.prefix)
    parts = [("whole environment (.venv)", dir_mib(venv))]
    for label, names in (("torch (+ its nvidia/triton extras if any)", ("torch", "functorch", "torchgen", "triton")),
                         ("onnxruntime", ("onnxruntime",)), ("onnx", ("onnx",)), ("tokenizers", ("tokenizers",)),
                         ("transformers + sentence-transformers", ("transformers", "sentence_transformers"))):
        parts.append((label, sum(dir_mib(site / n) for n in names if (site / n).exists())))
    return parts
