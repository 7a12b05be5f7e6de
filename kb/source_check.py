"""Do the indexed documents still match their source files in corpus/?

Run once when an index is opened (kb/api.py). A document is *stale* when its source file
  - is missing from the corpus folder,
  - no longer has the sha256 the manifest records for it (edited after indexing), or
  - is a plain-text file (.txt, .md, whose indexed text is the decoded file, byte for byte)
    whose text differs from the indexed text (documents.jsonl edited after the build, even
    with the manifest's checksums recomputed).
Citations of a stale document carry `Citation.source_warning` (see kb/api.py).

The folder compared is the one the index was built from, as the manifest records it, or the
configured corpus folder when that one is gone (sources_folder). When the corpus folder is not there, or holds none of the indexed files (an index opened on
another machine, or with FSGS_KB_CORPUS pointing elsewhere), nothing can be compared and nothing
is flagged: `SourceStatus.checked` is False. Flagging every document would only teach people to
ignore the warning.

Cost: every source file is read and hashed once per open (sha256 runs at several hundred MB/s,
so a corpus of hundreds of ordinary files takes well under a second). A size+mtime shortcut is
used only *within* a process: a file whose (size, mtime, inode) has not changed since this
process last hashed it is not hashed again (the UI re-opens the index after every upload).
Size+mtime is not trusted *against the manifest*, because the manifest records no mtimes and
an edit can keep a file's size and mtime (`touch -r`, a copy with -p); the hash decides.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any, Mapping

from kb.store import file_sha256
from kb.text_decoding import decode_text_bytes
from kb.types import Document, SourceStatus

logger = logging.getLogger(__name__)

CHANGED = "source changed since indexing; re-ingest"
MISSING = "source file missing from the corpus folder since indexing; re-ingest"
TEXT_DIFFERS = "indexed text differs from the source file; re-ingest"
# Added to an answer's notes when one of its quotes comes from a stale document.
STALE_NOTE = ("Some quoted sources changed since indexing, so a quote may not be what the file now "
              "says: re-ingest (`make ingest`).")

_PLAIN_FORMATS = ("txt", "md")  # the indexed text is exactly the decoded file (ingest/loaders.py)

_MEMO_MAX = 100_000  # entries (~150 bytes each)
_memo: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256
_memo_lock = threading.Lock()


def _sha256(path: Path, st: os.stat_result) -> str:
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _memo_lock:
        cached = _memo.get(key)
    if cached is None:
        cached = file_sha256(path)
        with _memo_lock:
            if len(_memo) > _MEMO_MAX:  # old versions of files pile up in a long-lived UI process
                _memo.clear()
            _memo[key] = cached
    return cached


def _decoded(data: bytes) -> str | None:
    """The file decoded as the text loader decodes it (kb/text_decoding.py); None when it
    opens with a UTF-16 byte order mark but is not UTF-16."""
    try:
        return decode_text_bytes(data)[0]
    except UnicodeDecodeError:
        return None


def file_of(source: str, corpus_dir: Path) -> str:
    """The corpus file a document came from: its source, or for one record of a multi-record
    file ("pubmed/export.xml#123") the part before the last "#"."""
    if "#" in source and not (corpus_dir / source).exists():
        return source.rsplit("#", 1)[0]
    return source


def sources_folder(manifest: Mapping[str, Any], configured: Path) -> Path:
    """The folder the index was built from (the manifest records it), while it exists; else the
    configured corpus folder (an index moved with its corpus, or built before it was recorded).
    Comparing with the configured folder alone flagged an index built from another folder
    wherever the two held files of the same name."""
    recorded = manifest.get("corpus_dir")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    return Path(configured)


def check_sources(documents: Mapping[str, Document], manifest: Mapping[str, Any],
                  corpus_dir: Path) -> SourceStatus:
    """Compare every indexed document with its file in `corpus_dir` (see the module docstring)."""
    corpus_dir = Path(corpus_dir)
    recorded = manifest.get("sources") or {}
    files: dict[str, list[Document]] = {}
    for doc in documents.values():
        files.setdefault(file_of(doc.source, corpus_dir), []).append(doc)
    if not corpus_dir.is_dir() or not any((corpus_dir / rel).is_file() for rel in files):
        logger.info("corpus folder %s is not available or holds none of the indexed files: "
                    "source files not compared", corpus_dir)
        return SourceStatus(checked=False, corpus_dir=str(corpus_dir))
    stale: dict[str, str] = {}
    for rel, docs in files.items():
        path = corpus_dir / rel
        try:
            st: os.stat_result | None = path.stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):  # gone, or no longer a regular file
            stale.update((d.source, MISSING) for d in docs)
            continue
        plain = any(d.fmt in _PLAIN_FORMATS for d in docs)
        try:
            # Plain-text files are read whole anyway (their text is compared): hash those bytes.
            data = path.read_bytes() if plain else None
            digest = hashlib.sha256(data).hexdigest() if data is not None else _sha256(path, st)
        except OSError as e:
            logger.warning("cannot read %s to compare it with the index: %s", path, e)
            continue
        text = _decoded(data) if data is not None else None
        for d in docs:
            expected = (recorded.get(d.source) or {}).get("sha256") or d.content_hash
            if digest != expected or digest != d.content_hash:
                stale[d.source] = CHANGED
            elif d.fmt in _PLAIN_FORMATS and text is not None and text != d.text:
                stale[d.source] = TEXT_DIFFERS
    for source, reason in sorted(stale.items()):
        logger.warning("%s: %s", source, reason)
    return SourceStatus(checked=True, corpus_dir=str(corpus_dir), stale=tuple(sorted(stale.items())))
