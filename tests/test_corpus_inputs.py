"""Corpus files that once stopped, hung or leaked into an ingest (issue #13): a file name that
is not valid UTF-8, a named pipe or socket, a symbolic link out of the corpus folder, and a copy
of a catalogued document whose name sorts before it. Each must be skipped (or, for duplicates,
the right copy kept) with a reason, while every other document still ingests."""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import threading
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from ingest.build import IngestReport, add_file, ingest_corpus
from ingest.corpus_files import corpus_files, input_hashes
from kb.api import open_kb
from kb.config import Settings
from kb.errors import KBError, SourceError
from tests.fakes import FakeEmbedder, small_corpus

T = TypeVar("T")
HANG_SECONDS = 60  # far above a small fake-embedder ingest, even on a busy machine
CATALOGUED = "000_af2669614d1c7faa.txt"  # a seed document with a catalogue entry

DOCS = {"a.txt": "Tacrolimus trough levels of 5-10 ng/ml were targeted in adults with FSGS.\n",
        "b.md": "# Rituximab\n\nRituximab induced remission in some steroid-dependent patients.\n"}


@pytest.fixture
def small(tmp_path: Path) -> Settings:
    """Two uncatalogued documents in a fresh corpus folder."""
    return small_corpus(tmp_path, DOCS)


def _unblock_pipes(corpus: Path) -> None:
    """Give a reader stuck in open() on a FIFO its writer and an end of file."""
    for root, _dirs, files in os.walk(corpus):
        for name in files:
            path = os.path.join(root, name)
            if stat.S_ISFIFO(os.lstat(path).st_mode):
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass


def within_time(settings: Settings, work: Callable[[], T]) -> T:
    """Run `work` in a thread: a hang fails the test instead of stalling the suite."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as e:  # handed to the test thread
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        _unblock_pipes(settings.corpus_dir)
        thread.join(10)
        pytest.fail(f"hung for more than {HANG_SECONDS} s")
    if error:
        raise error[0]
    return result[0]


def ingest(settings: Settings, embedder: FakeEmbedder, **kw) -> IngestReport:
    return within_time(settings, lambda: ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=embedder,
                                                       settings=settings, show_progress=False, **kw))


def reasons(report: IngestReport) -> dict[str, str]:
    return {s.source: s.reason for s in report.skipped}


def manifest_skipped(settings: Settings) -> dict[str, str]:
    manifest = json.loads((settings.index_dir / "manifest.json").read_text(encoding="utf-8"))
    return {s["source"]: s["reason"] for s in manifest["skipped"]}


def indexed_sources(settings: Settings, embedder: FakeEmbedder) -> set[str]:
    return {d.source for d in open_kb(settings.index_dir, embedder=embedder, settings=settings).documents}


# ------------------------------------------------------------------ names that are not UTF-8

def test_file_name_not_valid_utf8_is_skipped_and_named(small, fake_embedder, caplog) -> None:
    corpus = os.fsencode(small.corpus_dir)
    try:
        fd = os.open(corpus + b"/bad\xff.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.mkdir(corpus + b"/dir\xfe")
    except OSError:
        pytest.skip("this filesystem refuses file names that are not UTF-8")
    with os.fdopen(fd, "wb") as f:
        f.write(b"Cyclosporine was given at 3-5 mg/kg/day.\n")
    with open(corpus + b"/dir\xfe/inner.txt", "wb") as f:
        f.write(b"Sparsentan lowered proteinuria.\n")

    with caplog.at_level(logging.WARNING):
        report = ingest(small, fake_embedder)
    why = reasons(report)
    assert set(why) == {"bad\ufffd.txt", "dir\ufffd"}, why
    assert all("not valid UTF-8" in r for r in why.values()), why
    assert any("bad\ufffd.txt" in m and "UTF-8" in m for m in caplog.messages), caplog.messages
    assert report.documents == 2 and indexed_sources(small, fake_embedder) == set(DOCS)
    assert manifest_skipped(small) == why
    # The manifest stays valid UTF-8 JSON, and an unchanged corpus is recognised as such.
    again = ingest(small, fake_embedder)
    assert again.up_to_date and reasons(again) == why


# ------------------------------------------------------------------ FIFOs and sockets

def _make_socket(path: Path) -> socket.socket:
    if len(os.fsencode(path)) >= 100:
        pytest.skip("temporary path too long for a Unix socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("kind,words", [("fifo", "named pipe"), ("socket", "socket")])
def test_special_file_is_skipped_before_any_read(small, fake_embedder, kind, words) -> None:
    target = small.corpus_dir / "pipe.txt"
    sock = None
    if kind == "fifo":
        os.mkfifo(target)
    else:
        sock = _make_socket(target)
    try:
        report = ingest(small, fake_embedder)
        assert report.documents == 2 and indexed_sources(small, fake_embedder) == set(DOCS)
        why = reasons(report)
        assert set(why) == {"pipe.txt"} and words in why["pipe.txt"] and "not a regular file" in why["pipe.txt"]
        assert manifest_skipped(small) == why
        hashes = input_hashes(small.corpus_dir, small)  # recorded unread: a new pipe shows up in the manifest
        assert set(hashes) == {*DOCS, "pipe.txt"} and hashes["pipe.txt"] is None
        assert target not in corpus_files(small.corpus_dir, small)
        # An upload's duplicate check reads every corpus file: it must not open the pipe either.
        name, added = within_time(small, lambda: add_file(
            "new.txt", b"Obinutuzumab was tried after rituximab.\n", corpus_dir=small.corpus_dir,
            index_dir=small.index_dir, embedder=fake_embedder, settings=small))
        assert name == "new.txt" and added.documents == 3 and "pipe.txt" in reasons(added)
    finally:
        if sock is not None:
            sock.close()


def test_catalogue_that_is_a_pipe_stops_the_build_with_a_reason(small, fake_embedder) -> None:
    small.catalogue_path.write_text("documents: {}\n")
    ingest(small, fake_embedder)
    before = (small.index_dir / "manifest.json").read_text()
    small.catalogue_path.unlink()
    os.mkfifo(small.catalogue_path)
    with pytest.raises(KBError, match="catalogue .* not a regular file"):
        ingest(small, fake_embedder)
    assert (small.index_dir / "manifest.json").read_text() == before


# ------------------------------------------------------------------ symbolic links

def test_symlink_out_of_the_corpus_is_not_followed(small, fake_embedder, tmp_path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("zanzibar quokka root:x:0:0:root:/root:/bin/bash\n")
    (small.corpus_dir / "secret.txt").symlink_to(outside / "secret.txt")
    (small.corpus_dir / "relative.txt").symlink_to(Path("..") / "private" / "secret.txt")
    (small.corpus_dir / "passwd.txt").symlink_to("/etc/passwd")

    report = ingest(small, fake_embedder)
    why = reasons(report)
    assert set(why) == {"secret.txt", "relative.txt", "passwd.txt"}, why
    assert all("outside the corpus folder" in r for r in why.values()), why
    assert manifest_skipped(small) == why
    assert report.documents == 2 and indexed_sources(small, fake_embedder) == set(DOCS)
    base = open_kb(small.index_dir, embedder=fake_embedder, settings=small)
    assert not any("quokka" in h.chunk.text or "root:" in h.chunk.text
                   for h in base.search("zanzibar quokka root bin bash", k=10))


def test_symlink_inside_the_corpus_is_followed(small, fake_embedder) -> None:
    corpus = small.corpus_dir
    (corpus / ".store").mkdir()  # hidden: read only through the link
    (corpus / ".store" / "kept.txt").write_text("Belimumab was not studied in FSGS.\n")
    (corpus / "belimumab.txt").symlink_to(Path(".store") / "kept.txt")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "real.txt").write_text("Abatacept induced remission in one case.\n")
    (corpus / "alias.txt").symlink_to(corpus / "sub" / "real.txt")  # sorts before its target
    (corpus / "again").symlink_to(corpus / "sub")  # a folder link would read every file twice

    report = ingest(small, fake_embedder)
    assert indexed_sources(small, fake_embedder) == {*DOCS, "belimumab.txt", "sub/real.txt"}
    why = reasons(report)
    assert why.pop("again").startswith("symbolic link to a folder: not followed")
    assert why == {"alias.txt": "duplicate of sub/real.txt (same content)"}
    base = open_kb(small.index_dir, embedder=fake_embedder, settings=small)
    assert "Belimumab was not studied" in base.document("belimumab.txt").text


# ------------------------------------------------------------------ duplicates

def _age(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_catalogued_original_beats_an_earlier_named_older_copy(fake_settings, fake_embedder) -> None:
    corpus = fake_settings.corpus_dir
    copy = corpus / "000_a-copy.txt"  # sorts before the catalogued original
    shutil.copyfile(corpus / CATALOGUED, copy)
    _age(copy, 3600)  # and looks older: only the catalogue decides

    report = ingest(fake_settings, fake_embedder)
    assert reasons(report) == {copy.name: f"duplicate of {CATALOGUED} (same content)"}
    assert manifest_skipped(fake_settings) == reasons(report)
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert CATALOGUED in {d.source for d in base.documents}
    assert base.document(CATALOGUED).meta.source_of("evidence_level") == "catalogue"
    assert all(h.chunk.source != copy.name for h in base.search("resistant FSGS treatment approach", k=20))


def test_already_indexed_document_beats_a_copy_added_later(small, fake_embedder) -> None:
    ingest(small, fake_embedder)
    copy = small.corpus_dir / "0-copy.md"  # sorts first, and looks older
    shutil.copyfile(small.corpus_dir / "b.md", copy)
    _age(copy, 3600)
    report = ingest(small, fake_embedder)
    assert reasons(report) == {"0-copy.md": "duplicate of b.md (same content)"}
    assert indexed_sources(small, fake_embedder) == set(DOCS) and report.removed == ()


def test_oldest_copy_is_kept_when_nothing_else_decides(small, fake_embedder) -> None:
    (small.corpus_dir / "z-original.md").write_bytes((small.corpus_dir / "b.md").read_bytes())
    _age(small.corpus_dir / "z-original.md", 7200)
    _age(small.corpus_dir / "b.md", 3600)
    report = ingest(small, fake_embedder)
    assert reasons(report) == {"b.md": "duplicate of z-original.md (same content)"}
    assert indexed_sources(small, fake_embedder) == {"a.txt", "z-original.md"}


def test_upload_of_a_copy_names_the_file_it_duplicates(small, fake_embedder) -> None:
    ingest(small, fake_embedder)
    with pytest.raises(SourceError, match="duplicate of b.md"):
        within_time(small, lambda: add_file("0.md", (small.corpus_dir / "b.md").read_bytes(),
                                            corpus_dir=small.corpus_dir, index_dir=small.index_dir,
                                            embedder=fake_embedder, settings=small))
