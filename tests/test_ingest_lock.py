"""One writer at a time (issue 13): real concurrent ingest processes on a small corpus, with a
slow fake embedder and pause points so the runs overlap deterministically.

Workers are forked (multiprocessing "fork"): separate processes with their own PIDs, file
descriptors and locks, started without paying the package imports again. Each runs the real CLI
(`ingest.__main__.main`) with the fake model and its output in a log file."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

import ingest.__main__  # noqa: F401 - imported here once, so forked workers start at once
from kb import owner, store
from kb.config import Settings
from tests.fakes import FakeEmbedder, small_corpus

DOCS = {
    "a.txt": "# Tacrolimus in FSGS\n\nTacrolimus trough levels of 5-10 ng/ml were targeted. "
             "Remission occurred in 40% of patients after six months.\n",
    "b.txt": "# Rituximab\n\nRituximab induced remission in steroid-dependent nephrotic syndrome. "
             "Relapses were fewer in the first year.\n",
    "c.txt": "# Sparsentan\n\nSparsentan lowered proteinuria more than irbesartan in the DUPLEX trial.\n",
}
FORK = multiprocessing.get_context("fork")
JOIN_S = 60.0  # upper bound only: each run takes about a second


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, `delay` seconds per encode() call, so that runs overlap."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        time.sleep(self.delay)
        return super().encode(texts, batch_size=batch_size)


@pytest.fixture
def small(tmp_path: Path) -> Settings:
    return small_corpus(tmp_path, DOCS)


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


def _child(settings: Settings, args: list[str], delay: float, pause_at: str, paused: Path, go: Path,
           log: Path) -> None:
    """Body of a worker process: the ingest CLI with the fake model, optionally pausing at
    `pause_at` (a kb.store function, or "encode") until the file `go` exists."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1, encoding="utf-8")  # not pytest's capture
    root = logging.getLogger()
    for handler in list(root.handlers):  # pytest's capture handlers, inherited by the fork
        root.removeHandler(handler)
    import ingest.__main__ as cli
    import ingest.build as build

    def pause() -> None:
        paused.touch()
        _wait_for(go)

    class Embedder(SlowEmbedder):
        def encode(self, texts: Sequence[str], **kw: object) -> np.ndarray:
            if pause_at == "encode" and not paused.exists():
                pause()
            return super().encode(texts)

    cli.get_settings = build.get_settings = lambda: settings  # type: ignore[assignment]
    build.load_embedder = lambda *a, **k: Embedder(delay)  # type: ignore[assignment]
    if pause_at and pause_at != "encode":
        real = getattr(store, pause_at)

        def paused_call(*a: object, **k: object) -> object:
            pause()
            return real(*a, **k)

        setattr(store, pause_at, paused_call)
    try:
        rc = cli.main(["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--quiet", *args])
    except BaseException as e:  # noqa: BLE001 - reported through the log and the exit code
        print(f"worker crashed: {e!r}", file=sys.stderr)
        rc = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


class Worker:
    """One ingest process."""

    def __init__(self, settings: Settings, name: str, *args: str, delay: float = 0.0, pause_at: str = "") -> None:
        tmp = settings.index_dir.parent
        self.log = tmp / f"{name}.log"
        self.paused, self.go = tmp / f"{name}.paused", tmp / f"{name}.go"
        self.process = FORK.Process(target=_child, args=(settings, list(args), delay, pause_at, self.paused,
                                                          self.go, self.log), daemon=True)
        self.process.start()

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def release(self) -> None:
        self.go.touch()

    def finish(self) -> int:
        self.process.join(JOIN_S)
        assert not self.process.is_alive(), f"ingest process {self.pid} hung:\n{self.output()}"
        return int(self.process.exitcode)  # type: ignore[arg-type]


def _versions(settings: Settings) -> set[Path]:
    return {p for p in settings.index_dir.parent.glob(f"{settings.index_dir.name}.v-*") if p.is_dir()}


def _build_first(settings: Settings) -> Path:
    """A good published index, built in its own process (faiss stays out of the test process)."""
    first = Worker(settings, "first")
    assert first.finish() == 0, first.output()
    return settings.index_dir.resolve()


def _assert_verified(settings: Settings, sources: set[str] = set(DOCS)) -> None:
    contents = store.read_index(settings.index_dir)  # the full check an open does
    assert set(contents.documents) == sources


def test_an_ingest_never_deletes_the_build_another_is_writing(small: Settings) -> None:
    """The table row, made deterministic: A pauses half-way through writing its build folder; B
    runs meanwhile. Before the lock, B's cleanup deleted A's folder (A then published a folder
    holding only manifest.json, and deleted the previous good index)."""
    good = _build_first(small)
    a = Worker(small, "a", "--force", pause_at="build_faiss")
    _wait_for(a.paused)
    a_build = _versions(small) - {good}
    assert len(a_build) == 1, "A is writing its own build folder"
    b = Worker(small, "b", "--force")
    end = time.monotonic() + 20
    while b.process.is_alive() and "waiting" not in b.output() and time.monotonic() < end:
        time.sleep(0.05)
    assert a_build <= _versions(small), "another ingest deleted the build folder A is writing"
    assert good.is_dir() and small.index_dir.resolve() == good, "the published index must stay while A runs"
    a.release()
    assert a.finish() == 0, a.output()
    assert b.finish() == 0, b.output()
    assert "waiting" in b.output() and f"PID {a.pid}" in b.output(), b.output()
    _assert_verified(small)


def test_three_concurrent_ingests_end_with_a_verified_index(small: Settings) -> None:
    _build_first(small)
    (small.corpus_dir / "d.txt").write_text("# Cyclosporine\n\nCyclosporine was given for six months.\n")
    workers = [Worker(small, f"w{i}", "--force", delay=0.3) for i in range(3)]  # the first embeds d.txt
    while any(w.process.is_alive() for w in workers):
        # Whatever moment a reader looks, the link points at a complete folder.
        target = small.index_dir.resolve()
        assert target.is_dir(), f"the index link points at a missing folder {target}"
        manifest = store.read_manifest(target)
        assert all((target / rel).is_file() for rel in manifest["files"]), "published folder is incomplete"
        time.sleep(0.02)
    assert [w.finish() for w in workers] == [0, 0, 0], "\n".join(w.output() for w in workers)
    assert sum("waiting" in w.output() for w in workers) >= 1, "the runs overlapped: one waited"
    _assert_verified(small, {*DOCS, "d.txt"})
    assert len(_versions(small)) <= 2, "current and previous versions only"
    assert not list(small.index_dir.parent.glob(f".{small.index_dir.name}.*")), "no temporary leftovers"


def test_second_ingest_without_waiting_names_the_holder(small: Settings, monkeypatch, capsys) -> None:
    import ingest.__main__ as cli

    a = Worker(small, "a", "--force", pause_at="encode")
    _wait_for(a.paused)
    monkeypatch.setattr(cli, "get_settings", lambda: small)
    args = ["--corpus", str(small.corpus_dir), "--index", str(small.index_dir), "--quiet"]
    started = time.monotonic()
    assert cli.main([*args, "--no-wait"]) == 1
    err = capsys.readouterr().err
    assert time.monotonic() - started < 5, "--no-wait must not wait"
    assert f"PID {a.pid}" in err and "since" in err and str(small.index_dir) in err, err
    started = time.monotonic()
    assert cli.main([*args, "--wait", "0.5"]) == 1
    err = capsys.readouterr().err
    assert time.monotonic() - started >= 0.5 and f"PID {a.pid}" in err and "0.5 s" in err, err
    assert not small.index_dir.exists(), "nothing was published by the refused runs"
    a.release()
    assert a.finish() == 0, a.output()
    _assert_verified(small)


def test_lock_left_by_a_killed_ingest_is_broken(small: Settings, fake_embedder, caplog) -> None:
    from ingest.build import ingest_corpus

    good = _build_first(small)
    a = Worker(small, "a", "--force", pause_at="build_faiss")
    _wait_for(a.paused)
    a_build = _versions(small) - {good}
    os.kill(a.pid, signal.SIGKILL)
    a.process.join(JOIN_S)
    assert a.process.exitcode == -signal.SIGKILL
    holder = owner.read_owner(small.index_dir.parent / f"{small.index_dir.name}.lock")
    assert holder is not None and holder.pid == a.pid, "the dead holder's record is still there"
    caplog.set_level(logging.INFO)
    report = ingest_corpus(small.corpus_dir, small.index_dir, embedder=fake_embedder, settings=small,
                           force=True, show_progress=False, wait_s=0)
    assert report.documents == len(DOCS)
    assert f"PID {a.pid}" in caplog.text and "stale" in caplog.text, caplog.text
    assert not (a_build & _versions(small)), "the killed run's build folder is cleaned up"
    _assert_verified(small)


def test_publish_refuses_an_unverified_folder(small: Settings) -> None:
    from kb.errors import IndexFormatError

    good = _build_first(small)
    bad = small.index_dir.parent / f"{small.index_dir.name}.v-bad"
    bad.mkdir()
    (bad / "manifest.json").write_bytes((good / "manifest.json").read_bytes())
    with pytest.raises(IndexFormatError, match="not published"):
        store.publish(bad, small.index_dir)
    assert small.index_dir.resolve() == good and good.is_dir(), "the previous index stays published"
    _assert_verified(small)


def test_threads_of_one_process_take_turns_and_nesting_is_free(tmp_path: Path) -> None:
    import threading

    from ingest.lock import index_lock
    from kb.errors import IndexLockedError

    index = tmp_path / "index"
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with index_lock(index, 0):
            holding.set()
            done.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    holding.wait(10)
    with pytest.raises(IndexLockedError, match=f"PID {os.getpid()}"):
        with index_lock(index, 0):
            pass
    threading.Timer(0.2, done.set).start()
    with index_lock(index, 10):  # waits for the other thread
        with index_lock(index, 0):  # add_file -> ingest_corpus
            assert done.is_set()
    other.join()
    assert owner.read_owner(tmp_path / "index.lock") is None, "a normal release leaves no holder"


def test_a_folder_where_no_lock_can_be_taken_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import errno

    import filelock

    from ingest.lock import index_lock
    from kb.errors import KBError

    def no_flock(self: object, *a: object, **k: object) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(filelock.FileLock, "acquire", no_flock)
    with pytest.raises(KBError, match="cannot take the index lock .*index.lock: Function not implemented"):
        with index_lock(tmp_path / "index", 0):
            pass


# ------------------------------------------------------------------ owners of build folders

def test_owner_record_tells_a_running_process_from_a_gone_or_reused_pid(tmp_path: Path) -> None:
    me = owner.current()
    assert me.pid == os.getpid() and owner.is_running(me)
    parent = owner.of_process(os.getppid())
    assert parent is not None and owner.is_running(parent)
    if me.start:  # /proc: a PID reused by a later process is not the owner
        assert not owner.is_running(replace(me, start=str(int(me.start) + 1)))
    gone = FORK.Process(target=os._exit, args=(0,))
    gone.start()
    gone.join()
    assert not owner.is_running(replace(me, pid=int(gone.pid or 0)))
    owner.write_owner(tmp_path / "o.json", me)
    assert owner.read_owner(tmp_path / "o.json") == me
    (tmp_path / "bad.json").write_text("{not json")
    assert owner.read_owner(tmp_path / "bad.json") is None and owner.read_owner(tmp_path / "none.json") is None


def test_cleanup_keeps_folders_of_running_writers_only(tmp_path: Path) -> None:
    index = tmp_path / "index"
    mine = store.new_build_dir(index)  # owned by this (running) process, no manifest yet
    dead = store.new_build_dir(index)
    gone = FORK.Process(target=os._exit, args=(0,))
    gone.start()
    gone.join()
    owner.write_owner(dead / store.OWNER, replace(owner.current(), pid=int(gone.pid or 0)))
    legacy = tmp_path / "index.v-legacy"  # from before owners were recorded: no manifest = unfinished
    legacy.mkdir()
    store.remove_stale_builds(index)
    assert mine.is_dir() and not dead.exists() and not legacy.exists()


# ------------------------------------------------------------------ the UI takes the same lock

def _hold_lock(index_dir: Path, paused: Path, go: Path) -> None:
    from ingest.lock import index_lock

    with index_lock(index_dir, 0):
        paused.touch()
        _wait_for(go)
    os._exit(0)


def test_ui_build_and_upload_wait_for_the_same_lock(small: Settings, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from kb.config import REPO_ROOT

    for name, value in {"FSGS_KB_INDEX": str(small.index_dir), "FSGS_KB_CORPUS": str(small.corpus_dir),
                        "FSGS_KB_EMBEDDER": "tests.fakes:FakeEmbedder", "FSGS_KB_INDEX_LOCK_WAIT": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FSGS_KB_LLM", raising=False)
    paused, go = small.index_dir.parent / "holder.paused", small.index_dir.parent / "holder.go"
    holder = FORK.Process(target=_hold_lock, args=(small.index_dir, paused, go), daemon=True)
    holder.start()
    _wait_for(paused)
    try:
        at = AppTest.from_file(str(REPO_ROOT / "ui" / "app.py"), default_timeout=90).run()
        at.button(key="build_index").click().run()
        assert any(f"PID {holder.pid}" in e.value for e in at.error), [e.value for e in at.error]
        at.sidebar.file_uploader[0].set_value(("notes.txt", b"Cyclosporine notes.\n", "text/plain")).run()
        at.button(key="upload_go").click().run()
        errors = [e.value for e in at.sidebar.error]
        assert errors and f"PID {holder.pid}" in errors[0] and "unchanged" in errors[0], errors
        assert sorted(p.name for p in small.corpus_dir.iterdir()) == sorted(DOCS), "nothing was saved"
        assert not small.index_dir.exists()
    finally:
        go.touch()
        holder.join(JOIN_S)
    at.button(key="build_index").click().run()  # the holder is gone: the build goes ahead
    assert not at.exception and at.chat_input(key="question")
    _assert_verified(small)
