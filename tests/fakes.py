"""Test doubles: a deterministic, dependency-free embedder (hashed bag of words)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from kb.config import Settings

FAKE_MODEL_NAME = "test/fake-hashing-embedder"


class FakeEmbedder:
    """Same text -> same vector; texts sharing words -> similar vectors. 64 dimensions."""

    name = FAKE_MODEL_NAME
    dim = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode("utf-8")).hexdigest(), 16)
                out[row, h % self.dim] += 1.0 if (h >> 8) % 2 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


class StrictFakeEmbedder(FakeEmbedder):
    """FakeEmbedder that, like the real model's tokenizer, refuses text that is not valid
    Unicode (lone surrogates), so fast tests see the failure the real model shows."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, "
                                "Tuple[InputSequence, InputSequence]]") from None
        return super().encode(texts, batch_size=batch_size, show_progress=show_progress)


def small_corpus(tmp_path: Path, docs: dict[str, str]) -> "Settings":
    """Settings for a fresh corpus folder under tmp_path holding `docs` (name -> text), with an
    index folder beside it and the fake embedder's model name."""
    from dataclasses import replace

    from kb.config import Settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in docs.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return replace(Settings(), corpus_dir=corpus, index_dir=tmp_path / "index", model_name=FAKE_MODEL_NAME)
