"""The index on disk: one folder of plain files, no pickle anywhere.

    manifest.json     format version, embedding model + dimension, chunking settings, per-source
                      content hashes, counts, build time, FAISS type, sha256, size and write
                      times of every other file
    documents.jsonl   one document per line: catalogue metadata + the full text offsets refer to
    chunks.jsonl      one chunk per line (offsets, section, page, sentence spans, embedding key,
                      `flagged`: the sentence spans addressing the reader or a model)
    vectors.npy       float32 (chunks x dim), L2-normalised, row i = chunk i (allow_pickle=False)
    sentence_vectors.npy  float16 (sentences x dim), one row per citable sentence, in chunk
                      order (chunk rows list their sentences' embedding keys)
    vectors.faiss     the FAISS index over those rows (flat inner product, or HNSW when large)
    bm25/             bm25s index (JSON + .npy) over the same chunks
    references.jsonl  parsed reference-list entries (never retrieved as passages)
    abbreviations.jsonl  abbreviation-definition pairs mined from the documents (Schwartz-Hearst),
                      each with the offsets of a defining occurrence; absent from indexes built
                      before it existed, which then open with none

`index_dir` itself is a symlink to a versioned sibling folder; publishing a new build swaps the
link atomically, so a reader sees the old index or the new one, never half of either. A build
folder records its writer (`.owner.json`: PID + process start time, kb/owner.py) until it is
published, so no other process's cleanup removes it while it is written, and it is verified in
full before the link is swapped to it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from kb import owner
from kb.config import INDEX_FORMAT_VERSION, RetrievalSettings
from kb.errors import IndexFormatError, IndexMissingError, KBError, ModelMismatchError
from kb.instructions import flagged_spans
from kb.types import Abbreviation, Chunk, DocMeta, Document, IndexInfo, Reference

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
FAISS = "vectors.faiss"
BM25_DIR = "bm25"
REFERENCES = "references.jsonl"
SENTENCE_VECTORS = "sentence_vectors.npy"
ABBREVIATIONS = "abbreviations.jsonl"
OWNER = ".owner.json"  # the process writing an unpublished build folder (not part of the index)


@dataclass
class IndexContents:
    """Everything an opened index holds in memory (internal to kb; not a public data type)."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]  # by source
    chunks: list[Chunk]
    embed_keys: list[str]
    vectors: np.ndarray
    faiss_index: Any
    bm25: Any
    references: list[Reference] = field(default_factory=list)
    sentence_keys: list[str] = field(default_factory=list)
    sentence_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float16))
    sentence_offsets: list[int] = field(default_factory=list)  # chunk i's first row in sentence_vectors

    def sentence_rows(self, chunk_index: int) -> range:
        """Rows of `sentence_vectors` holding chunk `chunk_index`'s sentences, in order."""
        start = self.sentence_offsets[chunk_index]
        return range(start, start + len(self.chunks[chunk_index].sentences))
    abbreviations: tuple[Abbreviation, ...] = ()

    @property
    def model_name(self) -> str:
        return str(self.manifest["embedding"]["model"])

    def info(self) -> IndexInfo:
        counts = self.manifest.get("counts", {})
        return IndexInfo(
            path=str(self.path),
            format_version=int(self.manifest["format_version"]),
            model_name=self.model_name,
            dim=int(self.manifest["embedding"]["dim"]),
            build_time=str(self.manifest.get("build_time", "")),
            n_documents=int(counts.get("documents", len(self.documents))),
            n_chunks=int(counts.get("chunks", len(self.chunks))),
            n_references=int(counts.get("references", len(self.references))),
            index_type=str(self.manifest.get("vector_index", {}).get("type", "flat")),
            chunking=dict(self.manifest.get("chunking", {})),
        )


# ---------------------------------------------------------------- documents <-> JSON

def document_to_dict(doc: Document) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id, "source": doc.source, "fmt": doc.fmt,
        "content_hash": doc.content_hash, "page_starts": list(doc.page_starts),
        "meta": doc.meta.to_dict(), "text": doc.text,
    }


def document_from_dict(d: dict[str, Any]) -> Document:
    return Document(
        doc_id=d["doc_id"], source=d["source"], text=d["text"], meta=DocMeta.from_dict(d["meta"]),
        content_hash=d["content_hash"], fmt=d.get("fmt", "txt"),
        page_starts=tuple(int(p) for p in d.get("page_starts") or ()),
    )


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without this field: detects hand edits."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a regular file, streamed in 1 MiB blocks (bounded memory). Opened without
    blocking and checked before the first read: a named pipe or device raises OSError instead
    of hanging (O_NONBLOCK does not change reads of a regular file)."""
    h = hashlib.sha256()
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- FAISS

def build_faiss(vectors: np.ndarray, settings: RetrievalSettings) -> tuple[Any, dict[str, Any]]:
    """Exact inner-product search below `hnsw_threshold` vectors, HNSW at or above it
    (docs/BENCHMARKS.md measures where exact search stops being fast enough)."""
    import faiss

    n, dim = vectors.shape
    if n >= settings.hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        index.hnsw.efSearch = settings.hnsw_ef_search
        info = {"type": "hnsw", "m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction,
                "ef_search": settings.hnsw_ef_search, "threshold": settings.hnsw_threshold}
    else:
        index = faiss.IndexFlatIP(dim)
        info = {"type": "flat", "threshold": settings.hnsw_threshold}
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, info


# ---------------------------------------------------------------- write

def write_index(
    dest: Path,
    *,
    manifest: dict[str, Any],
    documents: list[Document],
    chunks: list[Chunk],
    embed_keys: list[str],
    search_texts: list[str],
    vectors: np.ndarray,
    references: list[Reference],
    retrieval: RetrievalSettings,
    sentence_keys: list[list[str]] | None = None,
    sentence_vectors: np.ndarray | None = None,
    abbreviations: Sequence[Abbreviation] = (),
) -> dict[str, Any]:
    """Write a complete index into the empty folder `dest`; return the manifest written.
    `search_texts[i]` is what BM25 indexes for chunk i (the same text that was embedded)."""
    import bm25s
    import faiss

    from kb.bm25 import TOKENIZER_DESCRIPTION, tokenize

    if not (len(chunks) == len(embed_keys) == len(search_texts) == vectors.shape[0]):
        raise ValueError("chunks, keys, texts and vectors must line up")
    dest.mkdir(parents=True, exist_ok=True)
    _write_jsonl(dest / DOCUMENTS, (document_to_dict(d) for d in documents))
    if sentence_keys is None or sentence_vectors is None:  # callers without sentence vectors
        sentence_keys = [[""] * len(c.sentences) for c in chunks]
        sentence_vectors = np.zeros((sum(len(c.sentences) for c in chunks), vectors.shape[1]), dtype=np.float32)
    if [len(k) for k in sentence_keys] != [len(c.sentences) for c in chunks] \
            or sentence_vectors.shape[0] != sum(len(k) for k in sentence_keys):
        raise ValueError("sentence keys and vectors must line up with the chunks' sentences")
    _write_jsonl(dest / CHUNKS, ({**c.to_dict(), "embed_key": k, "sentence_keys": sk}
                                 for c, k, sk in zip(chunks, embed_keys, sentence_keys)))
    # float16: sentence vectors outnumber chunk vectors ~5x; cosine error < 1e-3 is irrelevant
    # to ranking sentences inside a few retrieved chunks.
    np.save(dest / SENTENCE_VECTORS, np.ascontiguousarray(sentence_vectors, dtype=np.float16), allow_pickle=False)
    _write_jsonl(dest / REFERENCES, (r.to_dict() for r in references))
    _write_jsonl(dest / ABBREVIATIONS, (a.to_dict() for a in abbreviations))
    np.save(dest / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    index, vector_info = build_faiss(vectors, retrieval)
    faiss.write_index(index, str(dest / FAISS))

    bm25_dir = dest / BM25_DIR
    retriever = bm25s.BM25()
    if chunks:
        retriever.index(tokenize(search_texts), show_progress=False)
    retriever.save(str(bm25_dir), allow_pickle=False)

    files = {}
    for p in sorted(dest.rglob("*")):
        if p.is_file() and p.name not in (MANIFEST, OWNER):
            rel = p.relative_to(dest).as_posix()
            st = p.stat()  # its times let the up-to-date check skip hashing (verify_files_quick)
            files[rel] = {"sha256": file_sha256(p), "bytes": st.st_size,
                          "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    full = {
        **manifest,
        "format_version": INDEX_FORMAT_VERSION,
        "vector_index": vector_info,
        "bm25": {"tokenizer": TOKENIZER_DESCRIPTION, "empty": not chunks},
        "counts": {"documents": len(documents), "chunks": len(chunks), "references": len(references),
                   "abbreviations": len(abbreviations)},
        "files": files,
    }
    full["checksum"] = manifest_checksum(full)
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, dest / MANIFEST)  # the manifest is written last: its presence = complete
    return full


# ---------------------------------------------------------------- publish (atomic swap)

def new_build_dir(index_dir: Path) -> Path:
    """A fresh sibling folder to build into, recorded as this process's (so that no other
    process's cleanup removes it while it is written); never visible under `index_dir` until
    published. It appears under its final name with the record already inside."""
    index_dir = Path(index_dir)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    token = uuid.uuid4().hex[:8]
    tmp = index_dir.parent / f".{index_dir.name}.new-{token}"
    tmp.mkdir()
    owner.write_owner(tmp / OWNER, owner.current())
    final = index_dir.parent / f"{index_dir.name}.v-{stamp}-{token}"
    os.rename(tmp, final)
    return final


def _versions(index_dir: Path) -> list[Path]:
    """Version folders beside `index_dir`, and half-made ones from new_build_dir."""
    parent, name = index_dir.parent, index_dir.name
    return [d for d in (*parent.glob(f"{name}.v-*"), *parent.glob(f".{name}.new-*"))
            if d.is_dir() and not d.is_symlink()]


def _removable(folder: Path, record: "owner.Owner | None") -> bool:
    """No running process (this one included) is writing `folder`, whose writer's record
    (read_owner) is `record`. A half-made folder without its writer's record yet may be a
    moment old: it is left alone."""
    if record is None:
        return not folder.name.startswith(".")
    return not owner.is_running(record)


def verify_build(build_dir: Path) -> None:
    """The full check an open does (manifest, every file's checksum, counts), or IndexFormatError."""
    read_index(build_dir)


def publish(build_dir: Path, index_dir: Path) -> Path:
    """Verify `build_dir` as opening it would, point `index_dir` at it with one atomic rename
    of a symlink, then remove versions older than the one just replaced (kept for readers that
    still hold it), except folders another running process is writing. A folder that fails
    the check is not published: IndexFormatError, and `index_dir` keeps the previous index."""
    build_dir, index_dir = Path(build_dir), Path(index_dir)
    if build_dir.parent.resolve() != index_dir.parent.resolve():
        raise ValueError(f"build folder {build_dir} must be beside {index_dir}")
    try:
        verify_build(build_dir)
    except KBError as e:
        raise IndexFormatError(f"the new index in {build_dir} failed verification and was not published "
                               f"({e}); {index_dir} still holds the previous index") from e
    previous = index_dir.resolve() if index_dir.is_symlink() else None
    if index_dir.exists() and not index_dir.is_symlink():
        # An index folder from a plain copy: move it aside to become a version like the others.
        legacy = index_dir.parent / f"{index_dir.name}.v-legacy-{uuid.uuid4().hex[:8]}"
        os.replace(index_dir, legacy)
        previous = legacy
    # Complete and verified: no longer work in progress (done before the swap, so a published
    # folder never carries a record that could later make it look abandoned).
    (build_dir / OWNER).unlink(missing_ok=True)
    link_tmp = index_dir.parent / f".{index_dir.name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(build_dir.name, link_tmp)
    os.replace(link_tmp, index_dir)
    keep = {build_dir.resolve(), previous}
    for old in _versions(index_dir):
        if old.resolve() not in keep and _removable(old, owner.read_owner(old / OWNER)):
            shutil.rmtree(old, ignore_errors=True)
    return build_dir


def discard(build_dir: Path) -> None:
    shutil.rmtree(build_dir, ignore_errors=True)


def remove_stale_builds(index_dir: Path) -> None:
    """Folders left by interrupted builds are deleted: unpublished ones whose writer is no
    longer running (or, from before writers were recorded, that have no manifest). A folder
    another running process is writing is never touched."""
    index_dir = Path(index_dir)
    current = index_dir.resolve() if index_dir.exists() else None
    for d in _versions(index_dir):
        if d.resolve() == current:
            continue
        record = owner.read_owner(d / OWNER)
        if _removable(d, record) and (record is not None or not (d / MANIFEST).exists()):
            logger.info("removing %s, left by an interrupted build%s", d.name,
                        f" ({record.describe()}, no longer running)" if record else "")
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- read

def read_manifest(index_dir: Path) -> dict[str, Any]:
    index_dir = Path(index_dir)
    path = index_dir / MANIFEST
    if not index_dir.exists():
        raise IndexMissingError(f"no index at {index_dir}: build it with `make ingest` "
                                "(or `python -m ingest`)")
    if not path.is_file():
        raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} is missing "
                               "(rebuild with `make ingest`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} is corrupted ({e})") from e
    if not isinstance(manifest, dict):
        raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} is not a JSON object")
    version = manifest.get("format_version")
    if version != INDEX_FORMAT_VERSION:
        raise IndexFormatError(
            f"index at {index_dir} has format version {version!r}; this program reads version "
            f"{INDEX_FORMAT_VERSION} (rebuild with `make ingest`)")
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} was modified after "
                               "the build (checksum mismatch; rebuild with `make ingest`)")
    for key in ("embedding", "files", "sources", "counts", "vector_index"):
        if key not in manifest:
            raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} lacks {key!r}")
    return manifest


def verify_files(index_dir: Path, manifest: dict[str, Any]) -> None:
    for rel, meta in manifest["files"].items():
        p = index_dir / rel
        if not p.is_file():
            raise IndexFormatError(f"index at {index_dir} is unusable: file {rel} is missing "
                                   "(rebuild with `make ingest`)")
        if p.stat().st_size != meta.get("bytes") or file_sha256(p) != meta.get("sha256"):
            raise IndexFormatError(f"index at {index_dir} is unusable: file {rel} is corrupted "
                                   "(checksum differs from the manifest; rebuild with `make ingest`)")


def verify_files_quick(index_dir: Path, manifest: dict[str, Any]) -> None:
    """verify_files for `make ingest`'s up-to-date check, without reading gigabytes each time.

    A file is taken as intact without hashing when its size, mtime and ctime are those recorded
    at write time and it was last changed before the manifest was written; any other file is
    hashed. Any write to a file moves its ctime, which (unlike mtime) cannot be set back, and a
    copy gets new times, so this misses only damage below the file system (bit rot); opening
    the index hashes every file. The "before the manifest" rule is git's "racy clean" rule:
    a change within the same clock tick as the recorded write would keep the times."""
    try:
        written = (index_dir / MANIFEST).stat().st_mtime_ns
    except OSError:
        written = 0
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(m, dict) for m in files.values()):
        raise IndexFormatError(f"index at {index_dir} is unusable: {MANIFEST} lists its files wrongly "
                               "(rebuild with `make ingest`)")
    for rel, meta in files.items():
        p = index_dir / rel
        try:
            st = p.stat()
        except OSError:
            st = None
        if st is None or not p.is_file():
            raise IndexFormatError(f"index at {index_dir} is unusable: file {rel} is missing "
                                   "(rebuild with `make ingest`)")
        unchanged = (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == \
            (meta.get("bytes"), meta.get("mtime_ns"), meta.get("ctime_ns")) and st.st_ctime_ns < written
        if unchanged:
            continue
        if st.st_size != meta.get("bytes") or file_sha256(p) != meta.get("sha256"):
            raise IndexFormatError(f"index at {index_dir} is unusable: file {rel} is corrupted "
                                   "(checksum differs from the manifest; rebuild with `make ingest`)")


def _verified(index_dir: Path, manifest: dict[str, Any], rel: str) -> Path:
    """Path of one listed file whose checksum matches the manifest, else IndexFormatError."""
    meta = manifest["files"].get(rel)
    p = index_dir / rel
    if meta is None or not p.is_file() or p.stat().st_size != meta.get("bytes") \
            or file_sha256(p) != meta.get("sha256"):
        raise IndexFormatError(f"index at {index_dir}: file {rel} is missing or corrupted")
    return p


def read_vectors(index_dir: Path, expected_model: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """(embedding key -> vector, problems) of an index whose vectors may be reused by a rebuild:
    unlike read_index, only the files it reads are checked, and each part (chunk vectors,
    sentence vectors) is taken if its own files are intact, so a build repairing an index with
    one damaged file re-embeds only what that file held."""
    resolved = Path(index_dir).resolve()
    manifest = read_manifest(resolved)
    model = manifest["embedding"].get("model")
    if model != expected_model:
        raise ModelMismatchError(f"index at {index_dir} was built with embedding model {model!r}, "
                                 f"not {expected_model!r}")
    dim = int(manifest["embedding"]["dim"])
    rows = _read_jsonl(_verified(resolved, manifest, CHUNKS))
    keys = [str(r.get("embed_key") or "") for r in rows]
    sentence_keys = [str(k) for r in rows for k in (r.get("sentence_keys") or [])]
    known: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for rel, wanted, dtype in ((SENTENCE_VECTORS, sentence_keys, np.float32), (VECTORS, keys, None)):
        try:
            vectors = np.load(_verified(resolved, manifest, rel), allow_pickle=False)
        except (OSError, ValueError, IndexFormatError) as e:
            problems.append(str(e))
            continue
        if vectors.shape != (len(wanted), dim):
            problems.append(f"{rel} holds {vectors.shape}, not ({len(wanted)}, {dim})")
            continue
        vectors = vectors if dtype is None else vectors.astype(dtype)
        known.update((k, vectors[i]) for i, k in enumerate(wanted) if k)
    return known, problems


def read_index(index_dir: Path, expected_model: str | None = None) -> IndexContents:
    """Open an index, checking format version, model and every file's checksum first."""
    import bm25s
    import faiss

    index_dir = Path(index_dir)
    resolved = index_dir.resolve()
    manifest = read_manifest(resolved if resolved.exists() else index_dir)
    model = manifest["embedding"].get("model")
    if expected_model is not None and model != expected_model:
        raise ModelMismatchError(
            f"index at {index_dir} was built with embedding model {model!r}, "
            f"but {expected_model!r} was asked for (rebuild with `make ingest`)")
    verify_files(resolved, manifest)
    try:
        documents = {d.source: d for d in map(document_from_dict, _read_jsonl(resolved / DOCUMENTS))}
        rows = _read_jsonl(resolved / CHUNKS)
        chunks = [Chunk.from_dict(r) for r in rows]
        # Written before planted-instruction flags existed (optional field): flag them now.
        chunks = [c if "flagged" in r else replace(c, flagged=flagged_spans(c.text, c.sentences, c.start))
                  for c, r in zip(chunks, rows)]
        keys = [r.get("embed_key", "") for r in rows]
        references = [Reference.from_dict(r) for r in _read_jsonl(resolved / REFERENCES)]
        # Listed in the manifest since it exists; an older index simply has none (and
        # `make ingest` rebuilds it anyway, the ingestion code having changed).
        abbreviations = tuple(Abbreviation.from_dict(r) for r in _read_jsonl(resolved / ABBREVIATIONS)) \
            if ABBREVIATIONS in manifest["files"] else ()
        vectors = np.load(resolved / VECTORS, allow_pickle=False)
        sentence_vectors = np.load(resolved / SENTENCE_VECTORS, allow_pickle=False, mmap_mode="r")
        sentence_keys = [k for r in rows for k in (r.get("sentence_keys") or [])]
        offsets, pos = [], 0
        for c in chunks:
            offsets.append(pos)
            pos += len(c.sentences)
        faiss_index = faiss.read_index(str(resolved / FAISS))
        if manifest["vector_index"].get("type") == "hnsw":
            faiss_index.hnsw.efSearch = int(manifest["vector_index"].get("ef_search", 128))
        bm25 = None if manifest.get("bm25", {}).get("empty") else bm25s.BM25.load(
            str(resolved / BM25_DIR), allow_pickle=False)
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        raise IndexFormatError(f"index at {index_dir} is unusable: {e}") from e
    dim = int(manifest["embedding"]["dim"])
    if vectors.shape != (len(chunks), dim) or faiss_index.ntotal != len(chunks):
        raise IndexFormatError(f"index at {index_dir} is unusable: {len(chunks)} chunks but "
                               f"vectors {vectors.shape} / FAISS {faiss_index.ntotal}")
    if sentence_vectors.shape[0] != pos or len(sentence_keys) != pos:
        raise IndexFormatError(f"index at {index_dir} is unusable: {pos} sentences but "
                               f"{sentence_vectors.shape[0]} sentence vectors")
    return IndexContents(resolved, manifest, documents, chunks, keys, vectors, faiss_index, bm25,
                         references, sentence_keys, sentence_vectors, offsets, abbreviations)
