"""Ingest: the SciFact index built from scratch by the project's pipeline, with the time spent
inside the embedding model measured on the very same calls (same chunk texts, same batches)."""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from kb.config import get_settings
from kb.embed import Embedder
from kb.types import Document

logger = logging.getLogger(__name__)


class TimedEmbedder:
    """Passes through to the model and adds up the seconds spent in encode()."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0
        self.texts = 0

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        t = time.perf_counter()
        out = self.inner.encode(texts, batch_size=batch_size)
        self.seconds += time.perf_counter() - t
        self.texts += len(texts)
        return out


@dataclass(frozen=True)
class IngestResult:
    documents: int
    chunks: int
    wall_s: float  # build_index from Documents to a published index
    embed_s: float  # of which inside the model
    index_dir: Path  # kept for the query benchmark; the caller removes it

    @property
    def overhead_ratio(self) -> float:
        return self.wall_s / self.embed_s if self.embed_s else float("nan")

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.wall_s if self.wall_s else float("nan")


def run(documents: list[Document], embedder: Embedder, work_dir: Path | None = None) -> IngestResult:
    """Build into a fresh temporary folder so every chunk really is embedded (the eval cache
    would make this a no-op)."""
    from ingest.build import build_index

    root = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=work_dir))
    index_dir = root / "scifact-index"
    timed = TimedEmbedder(embedder)
    settings = replace(get_settings(), index_dir=index_dir)
    t = time.perf_counter()
    report = build_index(documents, index_dir, embedder=timed, settings=settings, show_progress=False)
    wall = time.perf_counter() - t
    if report.reused:
        raise RuntimeError("the ingest benchmark reused vectors; it must embed from scratch")
    logger.info("ingest: %d chunks in %.0f s (%.0f s in the model)", report.chunks, wall, timed.seconds)
    return IngestResult(report.documents, report.chunks, wall, timed.seconds, index_dir)
