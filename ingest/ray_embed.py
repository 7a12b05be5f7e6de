"""The embedding step on Ray Data, for corpora too large for one machine's patience.

`python -m ingest --ray`: everything else (loading, chunking, BM25, FAISS, the index writer,
atomic publish) stays in this process; only encode() is spread over a Ray cluster with
`ray.data` map_batches, each worker running the configured backend. RAY_ADDRESS selects the
cluster; without it a local Ray starts with this machine's cores. Ray is an optional extra:
`pip install -r requirements-ray.txt`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

from kb.config import DEFAULT_MODEL_DIM, DEFAULT_MODEL_NAME, get_settings
from kb.embed import check_backend
from kb.errors import KBError

logger = logging.getLogger(__name__)


class _EncodeBatch:
    """One per Ray worker: loads the backend once, then encodes the batches it is given."""

    def __init__(self, name: str, backend: str, cache_dir: str, factory: str = "") -> None:
        from pathlib import Path

        if factory:  # "module:callable", e.g. the tests' fake embedder
            import importlib

            module, _, attr = factory.partition(":")
            self.model = getattr(importlib.import_module(module), attr)()
        elif backend == "torch":
            from kb.embed import load_embedder

            self.model = load_embedder(name, backend)
        else:  # one thread per worker: Ray gives each worker one CPU
            from kb.embed_onnx import OnnxEmbedder

            self.model = OnnxEmbedder(name, quantized=backend == "onnx-int8", cache_dir=Path(cache_dir), threads=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.model.encode([str(t) for t in batch["text"]], batch_size=64)
        return {"row": batch["row"], "vector": vectors}


class RayEmbedder:
    """An Embedder whose encode() runs on Ray Data; the vectors are those of the same backend
    in one process (same model file, same arithmetic), in the input order."""

    whole_batch = True  # build_index sends all new chunks in one call (one Ray job, not one per 512)

    def __init__(self, name: str = DEFAULT_MODEL_NAME, backend: str | None = None, *,
                 num_cpus: int | None = None, rows_per_batch: int = 256, factory: str = "") -> None:
        try:
            import ray
        except ImportError as e:
            raise KBError("--ray needs the optional Ray extra: "
                          ".venv/bin/python -m pip install -r requirements-ray.txt") from e
        settings = get_settings()
        self.name = name
        self.backend = backend = check_backend(backend or settings.embed_backend)
        self.dim = DEFAULT_MODEL_DIM
        self.rows_per_batch = rows_per_batch
        self._cache_dir = str(settings.model_cache_dir)
        self._factory = factory
        self._backend = backend
        if factory:  # a custom embedder (tests): its name and size, no backend of ours
            probe = _EncodeBatch(name, self.backend, self._cache_dir, factory).model
            self.name, self.dim = probe.name, probe.dim
            del self.backend
        elif self.backend != "torch":  # export once here, not in every worker at the same time
            from kb.embed_onnx import FILES, ensure_exported

            ensure_exported(settings.model_cache_dir, (FILES[self.backend == "onnx-int8"],))
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "runtime_env": {"env_vars": {"FSGS_KB_EMBED_BACKEND": backend}}}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            ray.init(address=address, **kwargs)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import ray.data

        # Sorted by length so each Ray batch holds texts of similar length (less padding).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ds = ray.data.from_items([{"row": i, "text": texts[i]} for i in order])
        out = ds.map_batches(
            _EncodeBatch, fn_constructor_kwargs={"name": self.name, "backend": self._backend,
                                                 "cache_dir": self._cache_dir, "factory": self._factory},
            batch_size=self.rows_per_batch, batch_format="numpy", num_cpus=1,
            concurrency=min(self.workers, max(1, -(-len(texts) // self.rows_per_batch))))
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for batch in out.iter_batches(batch_size=4096, batch_format="numpy"):
            vectors[batch["row"]] = np.stack(batch["vector"])
        return vectors
