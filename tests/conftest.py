"""Shared fixtures. Fast tests use FakeEmbedder; tests marked `realmodel` load
all-MiniLM-L6-v2 from the installed wheel (offline) once per session."""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from kb.config import REPO_ROOT, Settings  # noqa: E402
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder  # noqa: E402

SEED_CORPUS = REPO_ROOT / "corpus"


@pytest.fixture(autouse=True)
def _no_internet_for_pubmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """E-utilities point at a closed local port unless a test starts its own stand-in server."""
    monkeypatch.setenv("FSGS_KB_EUTILS_URL", "http://127.0.0.1:9/")
    monkeypatch.delenv("NCBI_API_KEY", raising=False)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled corpus (sources + catalogue)."""
    dest = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, dest)
    return dest


@pytest.fixture
def fake_settings(tmp_path: Path, corpus_copy: Path) -> Settings:
    return replace(Settings(), corpus_dir=corpus_copy, index_dir=tmp_path / "index", model_name=FAKE_MODEL_NAME)


@pytest.fixture
def fake_kb(fake_settings: Settings, fake_embedder: FakeEmbedder):
    """The bundled corpus indexed with the fake embedder, opened."""
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    ingest_corpus(fake_settings.corpus_dir, fake_settings.index_dir, embedder=fake_embedder,
                  settings=fake_settings, show_progress=False)
    return open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled corpus indexed with the real model, once per test session."""
    from ingest.build import ingest_corpus

    index_dir = tmp_path_factory.mktemp("real") / "index"
    settings = replace(Settings(), corpus_dir=SEED_CORPUS, index_dir=index_dir)
    ingest_corpus(SEED_CORPUS, index_dir, settings=settings, show_progress=False)
    return index_dir


@pytest.fixture(scope="session")
def real_kb(real_index: Path):
    from kb.api import open_kb

    return open_kb(real_index)
