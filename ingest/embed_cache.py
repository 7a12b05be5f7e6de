"""The staging cache of an ingest's new vectors: what a killed or failed build had embedded is
reused by the next run instead of being embedded again.

    <index_dir>.staging/<family>/shard-<ns>-<pid>-<rand>.npz

Each finished encode() batch becomes one shard: an uncompressed .npz holding `keys` (embedding
keys, build.embed_key: a hash of the model + vector family and the text), `vectors` (float32,
one row per key) and `model` (the embedding id the keys were made with). Shards are written to a
hidden temporary name, fsynced, then renamed, so a reader only ever sees whole shards; one that is
unreadable anyway (torn by a crash of the machine, hand-edited) is skipped with a warning. No
pickle: np.load(allow_pickle=False). One folder per embedding id (model + vector family), so
vectors of another model or backend family are never read. The whole cache is removed once a
build is published: everything it held is then in the index (or no longer needed).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

_SHARD = "shard-*.npz"


def staging_dir(index_dir: Path) -> Path:
    """Beside the index link (`index.staging`, gitignored by /index.*), never inside a version."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}.staging"


@dataclass(frozen=True)
class StagingCache:
    root: Path  # <index_dir>.staging
    key_model: str  # kb.embed.embedding_id: the model, + the vector family when not fp32

    @classmethod
    def for_index(cls, index_dir: Path, key_model: str) -> "StagingCache":
        return cls(staging_dir(index_dir), key_model)

    @property
    def folder(self) -> Path:
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", self.key_model)[-60:]
        return self.root / f"{readable}-{hashlib.sha1(self.key_model.encode('utf-8')).hexdigest()[:10]}"

    def shards(self) -> list[Path]:
        """Complete shards in the order they were written (temporary files are hidden)."""
        return sorted(self.folder.glob(_SHARD)) if self.folder.is_dir() else []

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Stage one finished batch atomically (temp file + fsync + rename)."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[0] != len(keys):
            raise ValueError("one vector per key")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.asarray(list(keys), dtype=str), vectors=vectors,
                         model=np.asarray(self.key_model, dtype=str))
                f.flush()
                os.fsync(f.fileno())  # a power cut after the rename must not leave an empty shard
            os.replace(tmp, self.folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, np.ndarray]:
        """embed_key -> float32 vector of every readable shard; unusable shards are skipped."""
        out: dict[str, np.ndarray] = {}
        dim: int | None = None
        for path in self.shards():
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys, vectors, model = z["keys"], z["vectors"], str(z["model"])
            except Exception as e:  # zipfile/numpy raise many types for a torn file
                logger.warning("staged vectors %s ignored: unreadable (%s)", path.name, e)
                continue
            problem = ("another embedding model" if model != self.key_model else
                       "keys and vectors do not line up" if keys.ndim != 1 or vectors.ndim != 2
                       or len(keys) != len(vectors) else
                       "not float32" if vectors.dtype != np.float32 else
                       f"{vectors.shape[1]} dimensions, not {dim}" if dim is not None and vectors.shape[1] != dim else
                       "non-finite values" if not np.isfinite(vectors).all() else "")
            if problem:
                logger.warning("staged vectors %s ignored: %s", path.name, problem)
                continue
            dim = vectors.shape[1]
            out.update(zip(map(str, keys), vectors))
        if out:
            logger.info("%d vectors staged by an interrupted build are reused", len(out))
        return out

    def clear(self) -> None:
        """Remove the whole staging folder (every family): called once a build is published."""
        shutil.rmtree(self.root, ignore_errors=True)
