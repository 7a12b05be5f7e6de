"""Which files of the corpus folder an ingest may read, and which copy of a duplicate it keeps.

Files are classified from their directory entry and `lstat` alone, before any byte is read, so
no single entry can stop, hang or leak into an ingest:
- a name that is not valid UTF-8 is skipped (its name shown with replacement characters), since
  sources are UTF-8 strings everywhere downstream (document ids, the manifest, citations);
- only regular files are read: named pipes, sockets and devices could block or never end;
- a symbolic link is followed only when its resolved target stays inside the corpus folder, so a
  link to /etc/passwd never becomes searchable; links to folders are not followed;
- hidden files and folders (temporary uploads and downloads) and the catalogue are not sources.
Every skipped entry comes with a reason, for the ingest report and the manifest.
"""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from kb import store
from kb.config import Settings
from kb.errors import KBError

logger = logging.getLogger(__name__)

__all__ = ["CorpusFile", "CorpusScan", "SkippedFile", "corpus_files", "display_name", "file_hash",
           "indexed_hashes", "input_hashes", "keep_order", "scan_corpus"]


@dataclass(frozen=True)
class SkippedFile:
    source: str
    reason: str


@dataclass(frozen=True)
class CorpusFile:
    """A corpus entry an ingest may open: a regular file, or a link to one inside the corpus."""

    source: str  # path relative to the corpus folder, '/'-separated, valid UTF-8
    path: Path  # the entry itself (a link stays a link: opening it reads its checked target)
    mtime_ns: int  # modification time of the file read (the link's target)
    linked: bool = False  # reached through a symbolic link


@dataclass(frozen=True)
class CorpusScan:
    files: tuple[CorpusFile, ...]
    skipped: tuple[SkippedFile, ...]


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def display_name(name: str) -> str:
    """`name` as valid UTF-8: bytes that are not (kept by Python as lone surrogates) are shown
    as U+FFFD replacement characters."""
    return os.fsencode(name).decode("utf-8", "replace")


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(mode: int) -> str:
    return next((label for test, label in _KINDS if test(mode)), "a special file")


def source_key(source: str) -> tuple[str, ...]:
    """Corpus order: by path components, as sorted(Path) gave before."""
    return tuple(source.split("/"))


def scan_corpus(corpus_dir: Path, settings: Settings) -> CorpusScan:
    """Every source the corpus folder offers, and every entry skipped with its reason, in
    corpus order. Nothing is opened here."""
    root = Path(corpus_dir)
    real_root = root.resolve()
    catalogue = settings.catalogue_path.resolve()
    files: list[CorpusFile] = []
    skipped: list[SkippedFile] = []

    def skip(rel: str, reason: str) -> None:
        skipped.append(SkippedFile(display_name(rel), reason))

    def unlistable(err: OSError) -> None:
        rel = Path(err.filename or root).relative_to(root).as_posix() if err.filename else "."
        skip(rel, f"cannot read folder: {err.strerror or err}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        kept: list[str] = []
        for name in sorted(dirnames):
            rel = (rel_dir / name).as_posix()
            if name.startswith("."):
                continue
            if not _valid_utf8(name):
                skip(rel, "folder name is not valid UTF-8 (rename it to have its files read)")
            elif (here / name).is_symlink():
                skip(rel, "symbolic link to a folder: not followed (folders are read only where they are)")
            else:
                kept.append(name)
        dirnames[:] = kept  # os.walk descends only into these
        for name in filenames:
            if name.startswith("."):
                continue
            rel = (rel_dir / name).as_posix()
            entry = _classify(here / name, rel, real_root, catalogue)
            if isinstance(entry, CorpusFile):
                files.append(entry)
            elif entry is not None:
                skip(rel, entry)
    files.sort(key=lambda f: source_key(f.source))
    skipped.sort(key=lambda s: source_key(s.source))
    return CorpusScan(tuple(files), tuple(skipped))


def _classify(path: Path, rel: str, real_root: Path, catalogue: Path) -> CorpusFile | str | None:
    """A readable source, the reason to skip the entry, or None for the catalogue."""
    if not _valid_utf8(rel):
        return "file name is not valid UTF-8 (rename the file to have it read)"
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"cannot read file: {e.strerror or e}"
    linked = stat.S_ISLNK(st.st_mode)
    target = path
    if linked:
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError:
            return "cannot read file: broken symbolic link (its target does not exist)"
        except (OSError, RuntimeError) as e:  # a loop of links, or a target that cannot be reached
            return f"cannot read file: symbolic link that cannot be resolved ({getattr(e, 'strerror', None) or e})"
        if not target.is_relative_to(real_root):
            return "symbolic link to a file outside the corpus folder: not followed"
        try:
            st = os.stat(target)
        except OSError as e:
            return f"cannot read file: {e.strerror or e}"
    elif path.resolve() == catalogue:
        return None
    if linked and target == catalogue:
        return None
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)}): never opened"
    return CorpusFile(rel, path, st.st_mtime_ns, linked)


def corpus_files(corpus_dir: Path, settings: Settings) -> list[Path]:
    """The paths of every source an ingest may read, in corpus order (see scan_corpus)."""
    return [f.path for f in scan_corpus(corpus_dir, settings).files]


def file_hash(path: Path) -> str | None:
    """sha256 of a regular file; None if it cannot be read (the loader says why). Never blocks:
    store.file_sha256 refuses anything but a regular file before reading."""
    try:
        return store.file_sha256(path)
    except OSError:
        return None


def input_hashes(corpus_dir: Path, settings: Settings, scan: CorpusScan | None = None) -> dict[str, str | None]:
    """{source: sha256} of every corpus file (None if unreadable), read once per ingest run.
    Skipped entries are listed unread (None), so adding or removing one makes the index stale
    and the manifest's list of skipped files stays complete."""
    scan = scan or scan_corpus(corpus_dir, settings)
    out: dict[str, str | None] = {f.source: file_hash(f.path) for f in scan.files}
    for s in scan.skipped:
        out.setdefault(s.source, None)
    return out


def indexed_hashes(index_dir: Path) -> dict[str, str]:
    """{source file: sha256} the published index at `index_dir` was built from ({} if none)."""
    try:
        manifest = store.read_manifest(Path(index_dir).resolve())
    except KBError:
        return {}
    inputs = manifest.get("input_files")
    if isinstance(inputs, dict):
        return {str(k): v for k, v in inputs.items() if isinstance(v, str)}
    sources = manifest.get("sources")
    if not isinstance(sources, dict):
        return {}
    return {str(k).split("#", 1)[0]: v["sha256"] for k, v in sources.items()
            if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def keep_order(files: Iterable[CorpusFile], hashes: Mapping[str, str | None], catalogued: Iterable[str],
               previous: Mapping[str, str]) -> list[CorpusFile]:
    """`files` in the order duplicates are decided: of files with the same content the first
    is kept. The catalogued one first (its curated metadata must not be lost), then the one the
    previous index already holds with this content, then the oldest, a real file before a link
    to it; the name decides only ties."""
    listed = {s.split("#", 1)[0] for s in catalogued} | set(catalogued)

    def preference(f: CorpusFile) -> tuple:
        digest = hashes.get(f.source)
        indexed = digest is not None and previous.get(f.source) == digest
        return (f.source not in listed, not indexed, f.mtime_ns, f.linked, source_key(f.source))

    return sorted(files, key=preference)
