"""The index build: contents, incremental re-ingest, atomic publish, integrity checks on open,
and bad input that must never cost the other documents or the previous index."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest import build as build_mod
from ingest.build import add_file, ingest_corpus, safe_file_name
from kb import store
from kb.api import open_kb
from kb.config import INDEX_FORMAT_VERSION, Settings
from kb.errors import IndexFormatError, IndexMissingError, ModelMismatchError, SourceError
from tests.fakes import FakeEmbedder
from tests.test_loaders import make_pdf, page

SEEDS = ["000_af2669614d1c7faa.txt", "001_6e6264efde91b35f.txt", "002_9bd88bd73b08b3e6.txt",
         "003_81d1ce97a56315c5.txt", "004_1bb380601a0a640d.txt"]


def ingest(settings: Settings, embedder: FakeEmbedder, **kw):
    return ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=embedder, settings=settings,
                         show_progress=False, **kw)


def test_build_writes_a_complete_plain_file_index(fake_settings: Settings, fake_embedder: FakeEmbedder) -> None:
    report = ingest(fake_settings, fake_embedder)
    assert (report.documents, report.references, report.skipped) == (5, 28, ())
    assert report.chunks == report.embedded > 20
    index = fake_settings.index_dir
    assert index.is_symlink(), "published through a symlink swap"
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["format_version"] == INDEX_FORMAT_VERSION
    assert manifest["embedding"] == {"model": fake_embedder.name, "dim": 64}
    assert manifest["chunking"] == fake_settings.chunking.to_dict()
    assert set(manifest["sources"]) == set(SEEDS)
    assert manifest["counts"] == {"documents": 5, "chunks": report.chunks, "references": 28,
                                  "abbreviations": len((index / "abbreviations.jsonl").read_text().splitlines())}
    assert manifest["vector_index"]["type"] == "flat" and manifest["build_time"]
    for rel in manifest["files"]:
        data = (index / rel).read_bytes()
        assert not data.startswith(b"\x80"), f"{rel} looks like a pickle"
    np.load(index / "vectors.npy", allow_pickle=False)
    sentence_vectors = np.load(index / "sentence_vectors.npy", allow_pickle=False)
    assert sentence_vectors.shape[0] == sum(len(c.sentences) for c in open_kb(index, embedder=fake_embedder, settings=fake_settings).contents.chunks)

    base = open_kb(index, embedder=fake_embedder, settings=fake_settings)
    for chunk in base.contents.chunks:
        assert chunk.text == base.document(chunk.source).text[chunk.start:chunk.end]
    assert base.document(SEEDS[2]).meta.doi == "10.1053/snep.2003.50022"  # from the catalogue
    assert len(base.references(SEEDS[4])) == 26
    # The fake embedder's dense half is noise; BM25 alone must still lift the right chunk.
    hits = base.search("tacrolimus trough level", k=5)
    assert any("Tacrolimus: 5-10 ng/ml" in h.chunk.text for h in hits)


def test_reingest_unchanged_embeds_nothing(fake_settings: Settings, fake_embedder: FakeEmbedder) -> None:
    first = ingest(fake_settings, fake_embedder)
    calls = fake_embedder.texts_encoded
    again = ingest(fake_settings, fake_embedder)
    assert again.up_to_date and again.embedded == 0 and fake_embedder.texts_encoded == calls
    forced = ingest(fake_settings, fake_embedder, force=True)
    assert (forced.embedded, forced.reused, forced.chunks) == (0, first.chunks, first.chunks)
    assert fake_embedder.texts_encoded == calls


def test_changed_added_and_removed_sources(fake_settings: Settings, fake_embedder: FakeEmbedder) -> None:
    first = ingest(fake_settings, fake_embedder)
    corpus = fake_settings.corpus_dir
    per_source = json.loads((fake_settings.index_dir / "manifest.json").read_text())["sources"]

    # Change one source: only its chunks (at most) are embedded again.
    p = corpus / SEEDS[2]
    p.write_text(p.read_text(encoding="utf-8").replace("50% to 70%", "55% to 75%"), encoding="utf-8")
    changed = ingest(fake_settings, fake_embedder)
    assert 1 <= changed.embedded <= per_source[SEEDS[2]]["chunks"]
    assert changed.reused == changed.chunks - changed.embedded

    # Add a source: only the new document's chunks are embedded.
    (corpus / "new.md").write_text("# Sparsentan\n\nSparsentan is a dual endothelin angiotensin receptor antagonist.\n")
    added = ingest(fake_settings, fake_embedder)
    assert added.documents == 6 and added.embedded == 1

    # Remove a source: it disappears from the index.
    (corpus / SEEDS[4]).unlink()
    removed = ingest(fake_settings, fake_embedder)
    assert removed.removed == (SEEDS[4],) and removed.embedded == 0
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert SEEDS[4] not in {d.source for d in base.documents}
    assert not base.references(SEEDS[4])
    assert all(c.source != SEEDS[4] for c in base.contents.chunks)
    assert first.documents == 5


def test_changing_the_ingestion_code_makes_the_index_stale(fake_settings, fake_embedder, monkeypatch) -> None:
    ingest(fake_settings, fake_embedder)
    monkeypatch.setattr(build_mod, "pipeline_hash", lambda: "another-version")
    report = ingest(fake_settings, fake_embedder)
    assert not report.up_to_date and report.embedded == 0


class Interrupted(BaseException):
    """Like Ctrl-C (not an Exception), without pytest treating it as a real interrupt."""


@pytest.mark.parametrize("where", ["embedding", "writing", "publishing"])
def test_interrupted_build_leaves_the_previous_index_usable(fake_settings, fake_embedder, monkeypatch, where) -> None:
    ingest(fake_settings, fake_embedder)
    before = (fake_settings.index_dir / "manifest.json").read_text()
    (fake_settings.corpus_dir / "extra.txt").write_text("Rituximab 375 mg/m2 weekly was given.\n" * 3)

    def boom(*a, **k):
        raise Interrupted("interrupted")

    if where == "embedding":
        monkeypatch.setattr(fake_embedder, "encode", boom)
    elif where == "writing":
        real = store.write_index

        def half_write(dest, **kw):
            (dest / "chunks.jsonl").parent.mkdir(parents=True, exist_ok=True)
            (dest / "chunks.jsonl").write_text("partial")
            raise Interrupted("interrupted")
        monkeypatch.setattr(store, "write_index", half_write)
        assert real is not half_write
    else:
        monkeypatch.setattr(store, "publish", boom)
    with pytest.raises(Interrupted):
        ingest(fake_settings, fake_embedder)
    assert (fake_settings.index_dir / "manifest.json").read_text() == before
    monkeypatch.undo()
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert len(base.documents) == 5 and base.search("cyclosporine", k=1)
    leftovers = [p for p in fake_settings.index_dir.parent.glob("index.v-*")
                 if p.resolve() != fake_settings.index_dir.resolve()]
    assert leftovers == [], "an unfinished build folder was left behind"


def test_only_current_and_previous_versions_are_kept(fake_settings, fake_embedder) -> None:
    for i in range(3):
        (fake_settings.corpus_dir / "n.txt").write_text(f"Note number {i} about tacrolimus.\n")
        ingest(fake_settings, fake_embedder)
    versions = list(fake_settings.index_dir.parent.glob("index.v-*"))
    assert len(versions) == 2


# ------------------------------------------------------------------ integrity checks on open

@pytest.fixture
def built(fake_settings, fake_embedder) -> Path:
    ingest(fake_settings, fake_embedder)
    return fake_settings.index_dir.resolve()


def _open(settings, embedder):
    return open_kb(settings.index_dir, embedder=embedder, settings=settings)


def test_tampered_manifest_is_refused(built, fake_settings, fake_embedder) -> None:
    m = json.loads((built / "manifest.json").read_text())
    m["counts"]["chunks"] += 1
    (built / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="manifest.json was modified"):
        _open(fake_settings, fake_embedder)


def test_unknown_format_version_is_refused(built, fake_settings, fake_embedder) -> None:
    m = json.loads((built / "manifest.json").read_text())
    m["format_version"] = 99
    (built / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="format version 99"):
        _open(fake_settings, fake_embedder)


def test_unparseable_manifest_is_refused(built, fake_settings, fake_embedder) -> None:
    (built / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupted"):
        _open(fake_settings, fake_embedder)


@pytest.mark.parametrize("victim", ["vectors.npy", "chunks.jsonl", "vectors.faiss", "bm25/vocab.index.json"])
def test_deleted_index_file_is_named(built, fake_settings, fake_embedder, victim) -> None:
    (built / victim).unlink()
    with pytest.raises(IndexFormatError, match=f"file {victim} is missing"):
        _open(fake_settings, fake_embedder)


def test_corrupted_index_file_is_named(built, fake_settings, fake_embedder) -> None:
    data = bytearray((built / "vectors.npy").read_bytes())
    data[-1] ^= 0xFF
    (built / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="file vectors.npy is corrupted"):
        _open(fake_settings, fake_embedder)


def test_model_mismatch_is_refused(built, fake_settings) -> None:
    other = FakeEmbedder()
    other.name = "another/model"
    with pytest.raises(ModelMismatchError, match="another/model"):
        open_kb(fake_settings.index_dir, embedder=other, settings=fake_settings)


def test_missing_index_says_how_to_build_it(tmp_path) -> None:
    with pytest.raises(IndexMissingError, match="make ingest"):
        open_kb(tmp_path / "nowhere", embedder=FakeEmbedder())


# ------------------------------------------------------------------ bad input

def _bad_inputs(corpus: Path, settings: Settings) -> dict[str, str]:
    """Write every kind of bad file; return {file name: expected words in its reason}."""
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text("  \n\n \t\n")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (corpus / "truncated.pdf").write_bytes(make_pdf([page("Rituximab page")])[:200])
    (corpus / "scanned.pdf").write_bytes(make_pdf(["", ""]))
    (corpus / "copy-of-002.txt").write_bytes((corpus / SEEDS[2]).read_bytes())
    (corpus / "gone.txt").symlink_to(corpus / "deleted-meanwhile.txt")  # cannot be read
    with open(corpus / "huge.txt", "wb") as f:  # sparse: large on paper, costs no disk or memory
        f.truncate(3 * settings.max_file_bytes)
    (corpus / "notes.docx").write_bytes(b"PK\x03\x04 not supported")
    return {"empty.txt": "empty", "blank.md": "empty", "binary.txt": "binary",
            "truncated.pdf": "PDF", "scanned.pdf": "no text layer", "copy-of-002.txt": "duplicate of 002",
            "gone.txt": "cannot read", "huge.txt": "limit", "notes.docx": "unsupported"}


def test_bad_input_is_reported_and_everything_else_ingests(fake_settings, fake_embedder) -> None:
    settings = replace(fake_settings, max_file_bytes=1_000_000)
    ingest(settings, fake_embedder)
    corpus = settings.corpus_dir
    expected = _bad_inputs(corpus, settings)
    (corpus / "cp1252.txt").write_bytes("Ciclosporin dose \x96 4\xb05 mg/kg\n".encode("latin-1"))
    report = ingest(settings, fake_embedder)
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words.lower() in reasons[name].lower(), (name, reasons[name])
    assert report.documents == 6  # the five seeds and the cp1252 file (decoded, not dropped)
    assert any("cp1252" in w and "cp1252.txt" in w for w in report.warnings)
    base = open_kb(settings.index_dir, embedder=fake_embedder, settings=settings)
    assert {d.source for d in base.documents} == set(SEEDS) | {"cp1252.txt"}
    assert "–" in base.document("cp1252.txt").text  # \x96 decoded as an en dash
    summary = report.summary()
    assert "skipped 9" in summary and "huge.txt" in summary


def test_unreadable_catalogue_stops_the_build_and_keeps_the_index(fake_settings, fake_embedder) -> None:
    ingest(fake_settings, fake_embedder)
    before = (fake_settings.index_dir / "manifest.json").read_text()
    fake_settings.catalogue_path.write_text("documents: [unclosed")
    from kb.errors import KBError
    with pytest.raises(KBError, match="catalogue"):
        ingest(fake_settings, fake_embedder)
    assert (fake_settings.index_dir / "manifest.json").read_text() == before


def test_document_missing_from_catalogue_gets_a_title_from_its_text(fake_settings, fake_embedder) -> None:
    (fake_settings.corpus_dir / "uncatalogued.md").write_text("\n\n# Tacrolimus in adults\n\nTrough 5-10 ng/ml.\n")
    ingest(fake_settings, fake_embedder)
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    doc = base.document("uncatalogued.md")
    assert doc.title == "Tacrolimus in adults" and doc.meta.evidence_level == ""


# ------------------------------------------------------------------ uploads

def test_upload_saves_under_a_safe_name_and_ingests(fake_settings, fake_embedder) -> None:
    ingest(fake_settings, fake_embedder)
    name, report = add_file("../../etc/evil name.md", b"# Belimumab\n\nBelimumab was not studied here.\n",
                            corpus_dir=fake_settings.corpus_dir, index_dir=fake_settings.index_dir,
                            embedder=fake_embedder, settings=fake_settings)
    assert name == "evil_name.md" and (fake_settings.corpus_dir / name).is_file()
    assert report.documents == 6 and report.embedded == 1


@pytest.mark.parametrize("name,data,words", [
    ("bad.txt", b"", "empty"),
    ("bad.pdf", b"%PDF-1.4 truncated", "PDF"),
    ("bad.exe", b"MZ", "unsupported"),
    ("dup.txt", None, "duplicate"),
])
def test_bad_upload_changes_nothing(fake_settings, fake_embedder, name, data, words) -> None:
    ingest(fake_settings, fake_embedder)
    before = (fake_settings.index_dir / "manifest.json").read_text()
    files_before = sorted(p.name for p in fake_settings.corpus_dir.iterdir())
    if data is None:
        data = (fake_settings.corpus_dir / SEEDS[0]).read_bytes()
    with pytest.raises(SourceError, match=words):
        add_file(name, data, corpus_dir=fake_settings.corpus_dir, index_dir=fake_settings.index_dir,
                 embedder=fake_embedder, settings=fake_settings)
    assert (fake_settings.index_dir / "manifest.json").read_text() == before
    assert sorted(p.name for p in fake_settings.corpus_dir.iterdir()) == files_before


@pytest.mark.parametrize("raw,safe", [("a/b/c.txt", "c.txt"), ("..\\..\\x.md", "x.md"), (".hidden.txt", "hidden.txt"),
                                      ("r\u00e9sum\u00e9 (1).pdf", "r_sum_1_.pdf"), ("", "upload")])
def test_safe_file_name(raw, safe) -> None:
    assert safe_file_name(raw) == safe


def test_cli_prints_a_one_line_summary(fake_settings, fake_embedder, monkeypatch, capsys) -> None:
    from ingest.__main__ import main
    import kb.embed

    monkeypatch.setattr(kb.embed, "load_embedder", lambda name=None, backend=None: fake_embedder)
    monkeypatch.setattr(build_mod, "load_embedder", lambda name=None, backend=None: fake_embedder)
    monkeypatch.setenv("FSGS_KB_CORPUS", str(fake_settings.corpus_dir))
    monkeypatch.setattr("kb.config.DEFAULT_MODEL_NAME", fake_embedder.name, raising=False)
    settings = fake_settings
    monkeypatch.setattr("ingest.__main__.get_settings", lambda: settings)
    monkeypatch.setattr("ingest.build.get_settings", lambda: settings)
    assert main(["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("Indexed 5 documents") and " s" in out[0]
    assert main(["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("Index is up to date")
    os.environ.pop("FSGS_KB_CORPUS", None)
