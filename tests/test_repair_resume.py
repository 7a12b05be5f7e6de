"""Repair and resume (issue #13): a damaged published index is rebuilt by a plain `make ingest`
(and by the UI's "Build the index now"), and an ingest killed mid-embedding keeps what it had
embedded, so the rerun only embeds the rest."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest import build as build_mod
from ingest.build import ingest_corpus
from ingest.embed_cache import StagingCache, staging_dir
from kb import store
from kb.api import open_kb
from kb.config import REPO_ROOT, Settings
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder


def ingest(settings: Settings, embedder: FakeEmbedder, **kw):
    return ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=embedder, settings=settings,
                         show_progress=False, **kw)


def corrupt(path: Path) -> None:
    """Same size, different bytes (the middle byte flipped)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def contents(index_dir: Path):
    return store.read_index(index_dir)


# ---------------------------------------------------------------- repair


@pytest.mark.parametrize("victim", ["vectors.npy", "documents.jsonl", "vectors.faiss"])
@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_damaged_index_file_is_rebuilt_by_a_plain_ingest(fake_settings, fake_embedder, victim, damage) -> None:
    first = ingest(fake_settings, fake_embedder)
    path = fake_settings.index_dir / victim
    path.unlink() if damage == "deleted" else corrupt(path)
    with pytest.raises(Exception, match="rebuild with `make ingest`"):
        open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)

    encoded = fake_embedder.texts_encoded
    again = ingest(fake_settings, fake_embedder)  # no --force
    assert not again.up_to_date and again.chunks == first.chunks
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert len(base.contents.chunks) == first.chunks
    # What is intact in the damaged index is still reused: only lost chunk vectors are embedded again.
    assert again.embedded == (first.chunks if victim == "vectors.npy" else 0)
    if victim != "vectors.npy":
        assert fake_embedder.texts_encoded == encoded
    assert ingest(fake_settings, fake_embedder).up_to_date  # and now it is up to date again


def test_cli_rebuilds_a_damaged_index_without_force(fake_settings, fake_embedder, monkeypatch, capsys) -> None:
    from ingest.__main__ import main

    ingest(fake_settings, fake_embedder)
    (fake_settings.index_dir / "bm25").rename(fake_settings.index_dir / "bm25-moved")
    monkeypatch.setattr(build_mod, "load_embedder", lambda name=None, backend=None: fake_embedder)
    monkeypatch.setattr("ingest.build.get_settings", lambda: fake_settings)
    args = ["--corpus", str(fake_settings.corpus_dir), "--index", str(fake_settings.index_dir), "--quiet"]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("Indexed 5 documents")  # not "Index is up to date"
    open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert main(args) == 0 and capsys.readouterr().out.startswith("Index is up to date")


def test_corruption_that_keeps_size_and_mtime_is_still_found(fake_settings, fake_embedder) -> None:
    ingest(fake_settings, fake_embedder)
    path = (fake_settings.index_dir / "chunks.jsonl").resolve()
    before = path.stat()
    corrupt(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # `touch -r`: the change time still moves
    assert not build_mod.is_up_to_date(fake_settings.index_dir, fake_settings,
                                       build_mod.input_hashes(fake_settings.corpus_dir, fake_settings))


def test_up_to_date_check_of_an_intact_index_reads_no_data_file(fake_settings, fake_embedder, monkeypatch) -> None:
    ingest(fake_settings, fake_embedder)
    manifest = (fake_settings.index_dir / "manifest.json").resolve()
    later = time.time_ns() + 10**9  # files written clearly before the manifest, as on any real-size index
    os.utime(manifest, ns=(later, later))
    hashes = build_mod.input_hashes(fake_settings.corpus_dir, fake_settings)
    hashed: list[Path] = []
    real = store.file_sha256
    monkeypatch.setattr(store, "file_sha256", lambda p: hashed.append(Path(p)) or real(p))
    assert build_mod.is_up_to_date(fake_settings.index_dir, fake_settings, hashes)
    index_root = fake_settings.index_dir.resolve()
    assert not [p for p in hashed if index_root in Path(p).resolve().parents], "sizes and times suffice"


def test_previous_vectors_of_a_damaged_index_do_not_crash_the_rebuild(fake_settings, fake_embedder) -> None:
    ingest(fake_settings, fake_embedder)
    index = fake_settings.index_dir
    (index / "chunks.jsonl").write_text("not json\n")  # keys unreadable: nothing can be reused
    assert build_mod._previous_vectors(index, FAKE_MODEL_NAME) == {}
    again = ingest(fake_settings, fake_embedder)
    assert again.embedded == again.chunks > 0
    open_kb(index, embedder=fake_embedder, settings=fake_settings)


def test_ui_build_button_repairs_a_damaged_index(fake_settings, fake_embedder, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    ingest(fake_settings, fake_embedder)
    (fake_settings.index_dir / "vectors.npy").unlink()
    monkeypatch.setenv("FSGS_KB_INDEX", str(fake_settings.index_dir))
    monkeypatch.setenv("FSGS_KB_CORPUS", str(fake_settings.corpus_dir))
    monkeypatch.setenv("FSGS_KB_EMBEDDER", "tests.fakes:FakeEmbedder")
    monkeypatch.delenv("FSGS_KB_LLM", raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "ui" / "app.py"), default_timeout=90).run()
    assert at.error and "missing" in at.error[0].value  # the open names the lost file
    at.button(key="build_index").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.chat_input(key="question")
    open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)


# ---------------------------------------------------------------- staging cache


def test_torn_or_foreign_shards_are_ignored(tmp_path, caplog) -> None:
    cache = StagingCache(tmp_path / "index.staging", "model-a")
    rng = np.random.default_rng(0)
    first = rng.standard_normal((3, 8)).astype(np.float32)
    cache.add(["k1", "k2", "k3"], first)
    cache.add(["k4"], rng.standard_normal((1, 8)).astype(np.float32))
    shards = cache.shards()
    assert len(shards) == 2
    data = shards[-1].read_bytes()
    shards[-1].write_bytes(data[: len(data) // 2])  # torn: the machine lost power mid-write
    (cache.folder / "shard-99999999999999999999-junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with caplog.at_level(logging.WARNING, logger="ingest.embed_cache"):
        loaded = cache.load()
    assert set(loaded) == {"k1", "k2", "k3"}
    np.testing.assert_array_equal(np.stack([loaded[k] for k in ("k1", "k2", "k3")]), first)
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 2
    # Another model / vector family never sees these vectors.
    assert StagingCache(tmp_path / "index.staging", "model-a@int8").load() == {}
    cache.clear()
    assert not (tmp_path / "index.staging").exists() and cache.load() == {}


def test_shard_of_other_dimension_or_nan_is_ignored(tmp_path) -> None:
    cache = StagingCache(tmp_path / "s", "m")
    cache.add(["a"], np.ones((1, 4), dtype=np.float32))
    cache.add(["b"], np.ones((1, 5), dtype=np.float32))
    cache.add(["c"], np.full((1, 4), np.nan, dtype=np.float32))
    assert set(cache.load()) == {"a"}


def test_failed_build_keeps_its_staged_vectors(fake_settings, fake_embedder, monkeypatch) -> None:
    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(store, "write_index", broken)
    with pytest.raises(OSError):
        ingest(fake_settings, fake_embedder)
    first = fake_embedder.texts_encoded
    assert first > 0 and StagingCache.for_index(fake_settings.index_dir, FAKE_MODEL_NAME).load()
    monkeypatch.undo()
    again = ingest(fake_settings, fake_embedder)
    assert fake_embedder.texts_encoded == first and again.embedded == 0
    assert not staging_dir(fake_settings.index_dir).exists(), "cleared once published"


# ---------------------------------------------------------------- SIGKILL mid-embedding

_KILLED_INGEST = """
import sys, time
from dataclasses import replace
from pathlib import Path
from ingest.build import ingest_corpus
from kb.config import Settings
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder

class Slow(FakeEmbedder):
    def encode(self, texts, **kw):
        time.sleep(float(sys.argv[3]))
        return super().encode(texts, **kw)

corpus, index = Path(sys.argv[1]), Path(sys.argv[2])
settings = replace(Settings(), corpus_dir=corpus, index_dir=index, model_name=FAKE_MODEL_NAME,
                   embed_batch_texts=int(sys.argv[4]))
ingest_corpus(corpus, index, embedder=Slow(), settings=settings, show_progress=False)
"""


def test_sigkilled_ingest_resumes_from_its_staged_vectors(fake_settings, tmp_path) -> None:
    batch = 24  # 28 chunks + ~180 sentences: about 9 encode calls
    settings = replace(fake_settings, embed_batch_texts=batch)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_INGEST, str(settings.corpus_dir),
                             str(settings.index_dir), "0.3", str(batch)], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cache = StagingCache.for_index(settings.index_dir, FAKE_MODEL_NAME)
    clean_settings = replace(settings, index_dir=tmp_path / "clean" / "index")
    clean = FakeEmbedder()
    ingest(clean_settings, clean)  # the reference build, while the other process starts
    try:
        deadline = time.monotonic() + 60
        while len(cache.shards()) < 3:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no batch staged in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not settings.index_dir.exists(), "killed before anything was published"
    staged = len(cache.load())
    assert staged > batch  # at least the three batches seen

    rerun = FakeEmbedder()
    report = ingest(settings, rerun)
    # The rerun embedded exactly what the killed run had not.
    assert 0 < rerun.texts_encoded == clean.texts_encoded - staged
    assert report.chunks == len(contents(clean_settings.index_dir).chunks)
    assert not staging_dir(settings.index_dir).exists(), "staging cleared after publish"

    resumed, fresh = contents(settings.index_dir), contents(clean_settings.index_dir)
    assert [c.chunk_id for c in resumed.chunks] == [c.chunk_id for c in fresh.chunks]
    assert resumed.embed_keys == fresh.embed_keys and resumed.sentence_keys == fresh.sentence_keys
    np.testing.assert_array_equal(resumed.vectors, fresh.vectors)
    np.testing.assert_array_equal(np.asarray(resumed.sentence_vectors), np.asarray(fresh.sentence_vectors))
    assert json.loads((settings.index_dir / "manifest.json").read_text())["counts"] == \
        json.loads((clean_settings.index_dir / "manifest.json").read_text())["counts"]


def test_whole_batch_embedder_is_staged_once_at_the_end(tmp_path) -> None:
    class WholeBatch(FakeEmbedder):  # as ingest/ray_embed.RayEmbedder: one job for everything
        whole_batch = True

    model, cache = WholeBatch(), StagingCache(tmp_path / "index.staging", FAKE_MODEL_NAME)
    texts = [f"text number {i}" for i in range(10)]
    keys = [build_mod.embed_key(FAKE_MODEL_NAME, t) for t in texts]
    out = build_mod._embed_missing(model, texts, keys, {}, "chunk", False, cache, 3)
    assert model.calls == 1 and len(cache.shards()) == 1
    staged = cache.load()
    assert set(staged) == set(out) == set(keys)
    np.testing.assert_array_equal(np.stack([staged[k] for k in keys]), np.stack([out[k] for k in keys]))
