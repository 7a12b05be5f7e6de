"""One writer at a time for an index: an inter-process lock beside the index folder.

`index_lock(index_dir, wait_s)` holds `<parent>/<name>.lock` with an flock (through `filelock`).
The kernel releases an flock when its holder exits, however it exits (SIGKILL included), so a
dead process never keeps the index locked. While held, the file records the holder (PID,
process start time, host, since when, command: kb/owner.py), so a second ingest can say whom it
waits for; on a normal release the record is cleared, so a record found by the next holder is
the trace of a holder that died: it is reported as a stale lock broken. Nested use in one thread
(add_file -> ingest_corpus) is free; other threads and processes wait."""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from kb import owner
from kb.errors import IndexLockedError, KBError

logger = logging.getLogger(__name__)

_held = threading.local()  # .paths: lock files this thread holds (for nested use)


def lock_path(index_dir: Path) -> Path:
    """`index` -> `index.lock` beside it (the parent resolved, so every spelling of the path
    names one lock)."""
    index_dir = Path(index_dir)
    return index_dir.parent.resolve() / f"{index_dir.name}.lock"


def holder(index_dir: Path) -> owner.Owner | None:
    """The process recorded as holding the lock of `index_dir` (None if none is recorded)."""
    return owner.read_owner(lock_path(index_dir))


def _describe(index_dir: Path) -> str:
    record = holder(index_dir)
    return record.describe() if record is not None else "a process that has not recorded itself yet"


def _record_holder(fd: int) -> None:
    """filelock's on_acquired hook: note a stale record, then write ours into the locked file."""
    size = os.fstat(fd).st_size
    previous = owner.from_json(os.pread(fd, size, 0).decode("utf-8", "replace")) if size else None
    if previous is not None and not owner.is_running(previous):
        logger.warning("broke a stale index lock: its holder, %s, is no longer running (killed or "
                       "crashed while writing the index)", previous.describe())
    data = owner.to_json(owner.current()).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _acquire(lock: FileLock, timeout: float) -> None:
    """Take `lock` within `timeout` seconds (filelock.Timeout if not); a folder where no lock
    can be taken (read-only, a file system without flock) is a KBError saying so."""
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise
    except OSError as e:
        raise KBError(f"cannot take the index lock {lock.lock_file}: {e.strerror or e}") from e


@contextmanager
def index_lock(index_dir: Path, wait_s: float) -> Iterator[None]:
    """Hold the writer lock of `index_dir`. If another process holds it, wait up to `wait_s`
    seconds (0: not at all), then raise IndexLockedError naming the holder."""
    path = lock_path(index_dir)
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    if path in held:  # this thread holds it already
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor: list[int] = []

    def on_acquired(fd: int) -> None:
        _record_holder(fd)
        descriptor.append(fd)

    # preserve_lock_file: waiters keep the same file (and inode) across holders; no soft
    # fallback: only a kernel lock is released for certain when its holder dies.
    lock = FileLock(path, preserve_lock_file=True, fallback_to_soft=False, on_acquired=on_acquired)
    try:
        _acquire(lock, 0)
    except Timeout:
        if wait_s <= 0:
            raise IndexLockedError(f"the index at {index_dir} is being written by another process: "
                                   f"{_describe(index_dir)}; not waiting (try again when it has "
                                   "finished)") from None
        logger.warning("waiting up to %g s for the other process writing %s to finish: %s",
                       wait_s, index_dir, _describe(index_dir))
        started = time.monotonic()
        try:
            _acquire(lock, wait_s)
        except Timeout:
            raise IndexLockedError(f"the index at {index_dir} is being written by another process: "
                                   f"{_describe(index_dir)}; gave up after waiting {wait_s:g} s (try "
                                   "again when it has finished, or wait longer with --wait SECONDS)") from None
        logger.info("the other writer finished after %.1f s", time.monotonic() - started)
    held.add(path)
    try:
        yield
    finally:
        held.discard(path)
        try:
            if descriptor:
                os.ftruncate(descriptor[0], 0)  # released normally: no holder to report
        finally:
            lock.release()
