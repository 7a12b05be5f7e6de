"""`python -m ingest --ray`: the embedding step on a local Ray (2 CPUs) gives the same index as
one process. Needs the optional extra (requirements-ray.txt; `make test` installs it)."""
from __future__ import annotations

import numpy as np
import pytest

from ingest.build import ingest_corpus
from kb import store
from kb.config import Settings
from tests.fakes import FakeEmbedder

ray = pytest.importorskip("ray")


def test_ray_index_equals_single_process(fake_settings: Settings, tmp_path) -> None:
    from dataclasses import replace

    from ingest.ray_embed import RayEmbedder

    ingest_corpus(fake_settings.corpus_dir, fake_settings.index_dir, embedder=FakeEmbedder(),
                  settings=fake_settings, show_progress=False)
    ray_settings = replace(fake_settings, index_dir=tmp_path / "ray-index")
    # Small Ray batches so the 2 workers really split the corpus.
    embedder = RayEmbedder(num_cpus=2, rows_per_batch=8, factory="tests.fakes:FakeEmbedder")
    try:
        assert embedder.workers == 2
        report = ingest_corpus(ray_settings.corpus_dir, ray_settings.index_dir, embedder=embedder,
                               settings=ray_settings, show_progress=False)
    finally:
        ray.shutdown()
    one = store.read_index(fake_settings.index_dir)
    dist = store.read_index(ray_settings.index_dir)
    assert report.embedded == len(one.chunks) > 20
    assert [c.chunk_id for c in dist.chunks] == [c.chunk_id for c in one.chunks]
    assert dist.embed_keys == one.embed_keys
    np.testing.assert_allclose(dist.vectors, one.vectors, atol=1e-6)
