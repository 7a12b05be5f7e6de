"""Builds the index from the corpus folder: load -> clean -> chunk -> embed -> write aside ->
publish atomically. Re-embeds only chunks whose text is new; an unchanged corpus is detected
from file hashes alone, without loading the model."""
from __future__ import annotations

import hashlib
import logging
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from ingest.abbreviations import mine as mine_abbreviations
from ingest.catalogue import read_catalogue
from ingest.chunking import chunk_blocks, embedding_text, sentence_embedding_texts
# Which files are read (never a FIFO, a link out of the corpus, a name that is not UTF-8) is
# decided there; SkippedFile, corpus_files and input_hashes are re-exported from here.
from ingest.corpus_files import (CorpusScan, SkippedFile, corpus_files, file_hash as _file_hash,  # noqa: F401
                                 indexed_hashes, input_hashes, keep_order, scan_corpus, source_key)
from ingest.embed_cache import StagingCache
from ingest.loaders import LoadedText, human_size, load_bytes, load_file
from ingest.lock import index_lock
from ingest.metadata import infer_meta
from ingest.references import parse_references
from ingest.structure import classify
from kb import evidence_types, store
from kb.config import INDEX_FORMAT_VERSION, Settings, get_settings
from kb.embed import Embedder, embedding_id, load_embedder, vector_family
from kb.errors import KBError, SourceError
from kb.types import Chunk, DocMeta, Document, Reference, Span

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[[], Embedder]


@dataclass(frozen=True)
class IngestReport:
    index_path: str
    documents: int
    chunks: int
    references: int
    embedded: int  # chunks encoded by the model in this run
    reused: int  # chunks whose vectors came from the previous index or the staging cache (a resumed build)
    skipped: tuple[SkippedFile, ...] = ()
    removed: tuple[str, ...] = ()  # sources that left the corpus since the last build
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    up_to_date: bool = False  # nothing changed: the existing index was kept as it is

    def summary(self) -> str:
        if self.up_to_date:
            head = f"Index is up to date: {self.documents} documents, {self.chunks} chunks"
        else:
            head = (f"Indexed {self.documents} documents, {self.chunks} chunks "
                    f"({self.embedded} embedded, {self.reused} reused), {self.references} references")
        parts = [head]
        if self.removed:
            parts.append(f"removed {len(self.removed)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}: " + "; ".join(f"{s.source} ({s.reason})" for s in self.skipped))
        parts.append(f"{self.seconds:.1f} s")
        return " | ".join(parts)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def doc_id_for(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]


def embed_key(model_name: str, text: str) -> str:
    return hashlib.sha1(f"{model_name}\x00{text}".encode("utf-8")).hexdigest()


def derive_title(text: str) -> str:
    """First non-empty line, without markdown markers, cut at 150 characters."""
    for line in text.splitlines():
        s = line.strip().lstrip("#").strip()
        if s:
            return s if len(s) <= 150 else s[:147].rstrip() + "..."
    return ""


_PAIR = ("doc_type", "evidence_level")  # taken together from one layer, so they never disagree


def merge_meta(loaded: DocMeta, catalogue: DocMeta | None, text: str,
               inferred: DocMeta | None = None) -> DocMeta:
    """Field by field: the catalogue wins, then what the file states (a PubMed record, HTML
    meta tags, PDF info), then what ingest/metadata.py read from the text; the title last falls
    back to the text's first line. Each filled field records where it came from."""
    layers: list[tuple[DocMeta, Callable[[str], str]]] = []
    if catalogue is not None:
        layers.append((catalogue, lambda _name: "catalogue"))
    # A PubMed record marks its fields "pubmed"; what other files state counts as inferred
    # (automatic, not curated).
    layers.append((loaded, lambda name: loaded.source_of(name) or "inferred"))
    if inferred is not None:
        layers.append((inferred, lambda _name: "inferred"))
    fields: dict[str, object] = {}
    provenance: dict[str, str] = {}
    for name in DocMeta.__dataclass_fields__:
        if name in (*_PAIR, "flags", "provenance"):
            continue
        for meta, origin in layers:
            value = getattr(meta, name)
            if value not in ("", (), None):
                fields[name], provenance[name] = value, origin(name)
                break
    for meta, origin in layers:
        if meta.doc_type or meta.evidence_level:
            doc_type, level = meta.doc_type, meta.evidence_level
            if not level and doc_type in evidence_types.BY_DOC_TYPE:
                level = evidence_types.BY_DOC_TYPE[doc_type].evidence_level
            fields.update(doc_type=doc_type, evidence_level=level)
            provenance.update({k: origin(k) for k in _PAIR if fields[k]})
            break
    if not fields.get("title"):
        title = derive_title(text)
        if title:
            fields["title"], provenance["title"] = title, "inferred"
    flags = [f for meta, _ in layers[:2] for f in meta.flags if f != evidence_types.INFERRED]
    if provenance.get("doc_type") == "inferred":
        flags.append(evidence_types.INFERRED)
    order = [n for n in DocMeta.__dataclass_fields__ if n in provenance]
    return DocMeta(**fields, flags=tuple(dict.fromkeys(flags)),  # type: ignore[arg-type]
                   provenance=tuple((n, provenance[n]) for n in order))


def make_document(source: str, loaded: LoadedText, content_hash: str,
                  catalogue: dict[str, DocMeta]) -> Document:
    # A PubMed record states its own metadata; other files get what their text states.
    inferred = None if loaded.fmt == "pubmed" else infer_meta(loaded.text, loaded.meta)
    return Document(
        doc_id=doc_id_for(source), source=source, text=loaded.text,
        meta=merge_meta(loaded.meta, catalogue.get(source), loaded.text, inferred),
        content_hash=content_hash, fmt=loaded.fmt, page_starts=loaded.page_starts,
    )


def _catalogue_hash(settings: Settings) -> str:
    cat = settings.catalogue_path
    return (_file_hash(cat) or "") if cat.exists() else ""


def load_corpus(corpus_dir: Path, settings: Settings, hashes: dict[str, str | None] | None = None,
                index_dir: Path | None = None, scan: CorpusScan | None = None,
                ) -> tuple[list[Document], list[SkippedFile], list[str]]:
    """Load every source; a bad file is reported and skipped, never fatal to the others.
    `hashes` (from input_hashes) avoids reading each file a second time to hash it, and `scan`
    listing the folder again (pass the scan the hashes came from). Of files with the same
    content the catalogued one is kept, else the one the index at `index_dir` (default:
    settings.index_dir) holds, else the oldest (corpus_files.keep_order)."""
    scan = scan or scan_corpus(corpus_dir, settings)
    hashes = input_hashes(corpus_dir, settings, scan) if hashes is None else hashes
    catalogue = read_catalogue(settings.catalogue_path)
    docs: list[Document] = []
    skipped: list[SkippedFile] = list(scan.skipped)
    warnings: list[str] = []
    by_hash: dict[str, str] = {}
    loaded_files: dict[str, tuple[list[LoadedText], str]] = {}
    previous = indexed_hashes(Path(index_dir or settings.index_dir))
    for f in keep_order(scan.files, hashes, catalogue, previous):  # the copy to keep comes first
        try:
            loaded = load_file(f.path, settings.max_file_bytes)
            content_hash = hashes.get(f.source) or _file_hash(f.path) or ""
        except SourceError as e:  # includes UnsupportedFormatError
            skipped.append(SkippedFile(f.source, e.reason))
            continue
        if content_hash in by_hash:
            skipped.append(SkippedFile(f.source, f"duplicate of {by_hash[content_hash]} (same content)"))
            continue
        by_hash[content_hash] = f.source
        loaded_files[f.source] = (loaded, content_hash)
    skipped.sort(key=lambda s: source_key(s.source))
    for s in skipped:
        logger.warning("skipped %s: %s", s.source, s.reason)
    for f in scan.files:  # documents in corpus order
        if f.source not in loaded_files:
            continue
        loaded, content_hash = loaded_files[f.source]
        source = f.source
        for item in loaded:
            part_source = f"{source}#{item.part}" if item.part and len(loaded) > 1 else source
            docs.append(make_document(part_source, item, content_hash, catalogue))
            warnings.extend(f"{part_source}: {w}" for w in item.warnings)
    return docs, skipped, warnings


_PIPELINE_MODULES = ("loaders", "structure", "boilerplate", "sentences", "chunking", "references", "abbreviations",
                     "build", "corpus_files", "metadata", "../kb/evidence_types")


def pipeline_hash() -> str:
    """Hash of the ingestion code itself: a change to how text is cleaned or chunked makes the
    index stale even when no source changed (unchanged chunk texts still reuse their vectors)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _PIPELINE_MODULES:
        path = here / f"{name}.py"
        if path.exists():
            h.update(path.read_bytes())
    for shared in ("answer_text.py", "bm25.py", "sentences.py", "instructions.py", "text_decoding.py"):
        # sentence spans, BM25 tokens, flags, the decoding of text files
        h.update((here.parent / "kb" / shared).read_bytes())
    return h.hexdigest()[:16]


def _fingerprint(settings: Settings, model_name: str) -> dict:
    return {
        "format_version": INDEX_FORMAT_VERSION,
        "model": model_name,
        "chunking": settings.chunking.to_dict(),
        "pipeline": pipeline_hash(),
    }


def is_up_to_date(index_dir: Path, settings: Settings, hashes: dict[str, str | None]) -> bool:
    """True when the published index was built from exactly these files (`hashes`, from
    input_hashes), catalogue and settings, and its own files are intact: decided from hashes,
    sizes and file times (store.verify_files_quick), so `make run` starts fast."""
    try:
        manifest = store.read_manifest(Path(index_dir).resolve())
    except KBError:
        return False
    if manifest.get("fingerprint") != _fingerprint(settings, embedding_id(settings.model_name, settings.embed_backend)):
        return False
    if manifest.get("catalogue_sha256", "") != _catalogue_hash(settings):
        return False
    if hashes != manifest.get("input_files", {}):
        return False
    try:  # a deleted or damaged data file makes the index stale, so `make ingest` repairs it
        store.verify_files_quick(Path(index_dir).resolve(), manifest)
    except (KBError, OSError) as e:
        logger.warning("the published index is damaged, so it is rebuilt: %s", e)
        return False
    return True


def _previous_vectors(index_dir: Path, model_name: str,
                      staging: StagingCache | None = None) -> dict[str, np.ndarray]:
    """embed_key -> vector from the currently published index, as far as its vector files are
    intact (a damaged index being repaired), and from what an interrupted build staged (keys
    name the vector family, so vectors of another family are never reused)."""
    known: dict[str, np.ndarray] = {}
    try:
        known, problems = store.read_vectors(index_dir, model_name)
        for problem in problems:
            logger.warning("previous index's vectors partly not reused: %s", problem)
    except (KBError, OSError, ValueError, KeyError, TypeError) as e:  # damaged in any way: not reused
        if Path(index_dir).exists():
            logger.warning("previous index not reused (%s); its chunks will be embedded", e)
    if staging is not None:
        known.update(staging.load())  # exact float32 vectors: preferred to the index's float16 copies
    return known


def _embed_missing(model: Embedder | None, texts: Sequence[str], keys: Sequence[str],
                   known: dict[str, np.ndarray], unit: str, show_progress: bool,
                   staging: StagingCache | None, step: int) -> dict[str, np.ndarray]:
    """Vectors of the texts whose key has none yet, encoded in order of length (batches of
    similar length waste less padding). Each finished batch of `step` texts is staged, so a
    killed build loses at most one batch."""
    missing = sorted({k: i for i, k in enumerate(keys) if k not in known}.items(),
                     key=lambda kv: (len(texts[kv[1]]), kv[1]))
    out: dict[str, np.ndarray] = {}
    if not missing or model is None:
        return out
    # Texts per encode() call (Settings.embed_batch_texts). A distributed embedder
    # (ingest/ray_embed.py) takes them all in one job, staged once when it ends.
    step = len(missing) if getattr(model, "whole_batch", False) else max(1, step)
    with tqdm(total=len(missing), unit=unit, desc=f"embedding {unit}s", disable=not show_progress) as bar:
        for b in range(0, len(missing), step):
            part = missing[b:b + step]
            vecs = model.encode([texts[i] for _, i in part], batch_size=64)
            for (k, _), v in zip(part, vecs):
                out[k] = v
            if staging is not None:
                staging.add([k for k, _ in part], np.asarray(vecs))
            bar.update(len(part))
    return out


def _backend_record(model: Embedder | None, backend: str, index_dir: Path) -> dict[str, str]:
    """The manifest's record of the backend whose vectors the index holds: the model's (none for
    a custom embedder such as the tests' fake), or the previous index's when nothing was embedded."""
    if model is not None:
        given = getattr(model, "backend", None)
        return {"backend": given, "vectors": vector_family(given)} if given else {}
    try:
        old = store.read_manifest(index_dir.resolve()).get("embedding", {})
    except KBError:
        return {}
    return {k: old[k] for k in ("backend", "vectors") if k in old}


def build_index(
    documents: Sequence[Document],
    index_dir: Path,
    *,
    embedder: Embedder | EmbedderFactory | None = None,
    settings: Settings | None = None,
    skipped: Sequence[SkippedFile] = (),
    warnings: Sequence[str] = (),
    extra_manifest: dict | None = None,
    show_progress: bool = True,
    started: float | None = None,
) -> IngestReport:
    """Chunk, embed (reusing the previous index's vectors), write aside, publish atomically.
    Any failure leaves the published index exactly as it was."""
    settings = settings or get_settings()
    started = time.perf_counter() if started is None else started
    index_dir = Path(index_dir)
    store.remove_stale_builds(index_dir)

    chunks: list[Chunk] = []
    texts: list[str] = []
    sentence_texts: list[list[str]] = []  # per chunk, one text per citable sentence
    references: list[Reference] = []
    sources: dict[str, dict] = {}
    sentences: dict[str, list[Span]] = {}  # the chunks' sentence spans, for abbreviation mining
    for doc in documents:
        blocks = classify(doc.text)
        doc_chunks = chunk_blocks(doc, blocks, settings.chunking)
        doc_refs = parse_references(doc, blocks)
        chunks.extend(doc_chunks)
        texts.extend(embedding_text(doc, c) for c in doc_chunks)
        sentence_texts.extend(sentence_embedding_texts(doc, c) for c in doc_chunks)
        references.extend(doc_refs)
        sentences[doc.source] = [span for c in doc_chunks for span in c.sentences]
        sources[doc.source] = {"sha256": doc.content_hash, "doc_id": doc.doc_id, "title": doc.title,
                               "chunks": len(doc_chunks), "references": len(doc_refs)}

    # Recomputed from every document on each build: cheap, and always matches the corpus.
    abbreviations = mine_abbreviations(documents, sentences)

    model_name = settings.model_name
    backend = settings.embed_backend
    key_model = embedding_id(model_name, backend)  # the model, + the vector family if not fp32
    keys = [embed_key(key_model, t) for t in texts]
    sentence_keys = [[embed_key(key_model, t) for t in ts] for ts in sentence_texts]
    staging = StagingCache.for_index(index_dir, key_model)  # what a killed build had embedded
    known = _previous_vectors(index_dir, model_name, staging)
    flat_sentence_texts = [t for ts in sentence_texts for t in ts]
    flat_sentence_keys = [k for ks in sentence_keys for k in ks]
    model: Embedder | None = None
    all_keys = keys + flat_sentence_keys
    if any(k not in known for k in all_keys) or not known:
        model = embedder() if callable(embedder) and not hasattr(embedder, "encode") else embedder  # type: ignore[assignment]
        model = model or load_embedder(model_name, backend)
        if model.name != model_name:
            raise KBError(f"embedder {model.name!r} does not match the configured model {model_name!r}")
        given = getattr(model, "backend", None)
        if given is not None and vector_family(given) != vector_family(backend):
            raise KBError(f"embedder backend {given!r} does not give the vectors of the configured "
                          f"backend {backend!r} (FSGS_KB_EMBED_BACKEND)")
    dim = model.dim if model is not None else len(next(iter(known.values())))
    step = settings.embed_batch_texts
    new_vectors = _embed_missing(model, texts, keys, known, "chunk", show_progress, staging, step)
    new_vectors.update(_embed_missing(model, flat_sentence_texts, flat_sentence_keys, {**known, **new_vectors},
                                      "sentence", show_progress, staging, step))
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for i, k in enumerate(keys):
        vectors[i] = new_vectors[k] if k in new_vectors else known[k]
    sentence_vectors = np.zeros((len(flat_sentence_keys), dim), dtype=np.float32)
    for i, k in enumerate(flat_sentence_keys):
        sentence_vectors[i] = new_vectors[k] if k in new_vectors else known[k]
    reused = sum(1 for k in keys if k not in new_vectors)

    old_sources: dict = {}
    try:
        old_sources = store.read_manifest(index_dir.resolve()).get("sources", {})
    except KBError:
        pass
    removed = tuple(sorted(set(old_sources) - set(sources)))
    embedding = {"model": model_name, "dim": dim, **_backend_record(model, backend, index_dir)}

    manifest = {
        "embedding": embedding,
        "chunking": settings.chunking.to_dict(),
        # The vocabulary questions are read with (general YAML; the corpus's own abbreviations
        # are in abbreviations.jsonl): its hash here, and in every answer.
        "vocabulary": {"file": Path(settings.vocabulary_path).name,
                       "sha256": store.file_sha256(Path(settings.vocabulary_path))},
        "fingerprint": _fingerprint(settings, key_model),
        "sources": sources,
        "skipped": [{"source": s.source, "reason": s.reason} for s in skipped],
        "build_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra_manifest or {}),
    }
    build_dir = store.new_build_dir(index_dir)
    try:
        store.write_index(build_dir, manifest={**manifest, "build_seconds": round(time.perf_counter() - started, 3)},
                          documents=list(documents), chunks=chunks, embed_keys=keys, search_texts=texts,
                          vectors=vectors, references=references, retrieval=settings.retrieval,
                          sentence_keys=sentence_keys, sentence_vectors=sentence_vectors,
                          abbreviations=abbreviations)
        store.publish(build_dir, index_dir)
    except BaseException:
        store.discard(build_dir)  # the published index is untouched
        raise
    staging.clear()  # everything staged is in the published index now (or no longer needed)
    report = IngestReport(
        index_path=str(index_dir), documents=len(documents), chunks=len(chunks),
        references=len(references), embedded=sum(1 for k in keys if k in new_vectors), reused=reused,
        skipped=tuple(skipped), removed=removed, warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
    )
    logger.info(report.summary())
    return report


def _writer_lock(index_dir: Path, settings: Settings, wait_s: float | None) -> AbstractContextManager[None]:
    """The index's one-writer lock (ingest/lock.py): while another process writes the index,
    wait up to `wait_s` seconds (None: settings.index_lock_wait_s; 0: not at all), then
    IndexLockedError names that process. Re-entrant within a thread (add_file -> ingest_corpus)."""
    return index_lock(index_dir, settings.index_lock_wait_s if wait_s is None else wait_s)


def ingest_corpus(
    corpus_dir: Path | None = None,
    index_dir: Path | None = None,
    *,
    embedder: Embedder | EmbedderFactory | None = None,
    settings: Settings | None = None,
    force: bool = False,
    show_progress: bool = True,
    wait_s: float | None = None,
) -> IngestReport:
    """`python -m ingest`: (re)build the index of the corpus folder if anything changed, as its
    only writer (see _writer_lock)."""
    settings = settings or get_settings()
    corpus_dir = Path(corpus_dir or settings.corpus_dir)
    index_dir = Path(index_dir or settings.index_dir)
    if corpus_dir != settings.corpus_dir:
        settings = Settings(**{**settings.__dict__, "corpus_dir": corpus_dir})
    with _writer_lock(index_dir, settings, wait_s):
        started = time.perf_counter()
        if not corpus_dir.is_dir():
            raise KBError(f"corpus folder {corpus_dir} does not exist")
        scan = scan_corpus(corpus_dir, settings)  # listed once: the hashes and the load see the same files
        hashes = input_hashes(corpus_dir, settings, scan)
        if not force and is_up_to_date(index_dir, settings, hashes):
            manifest = store.read_manifest(index_dir.resolve())
            return IngestReport(
                index_path=str(index_dir), documents=manifest["counts"]["documents"],
                chunks=manifest["counts"]["chunks"], references=manifest["counts"]["references"],
                embedded=0, reused=manifest["counts"]["chunks"],
                skipped=tuple(SkippedFile(s["source"], s["reason"]) for s in manifest.get("skipped", [])),
                seconds=time.perf_counter() - started, up_to_date=True)
        docs, skipped, warnings = load_corpus(corpus_dir, settings, hashes, index_dir, scan)
        # The folder the sources came from: opening the index compares them with it (kb/source_check.py).
        extra = {"catalogue_sha256": _catalogue_hash(settings), "input_files": hashes,
                 "corpus_dir": str(corpus_dir.resolve())}
        return build_index(docs, index_dir, embedder=embedder, settings=settings, skipped=skipped,
                           warnings=warnings, extra_manifest=extra, show_progress=show_progress,
                           started=started)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str) -> str:
    """A plain file name for an upload: no folders, no leading dots, no odd characters."""
    base = Path(name.replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip("._") or "upload"
    return base[:120]


def add_file(
    name: str,
    data: bytes,
    *,
    corpus_dir: Path | None = None,
    index_dir: Path | None = None,
    embedder: Embedder | EmbedderFactory | None = None,
    settings: Settings | None = None,
    wait_s: float | None = None,
) -> tuple[str, IngestReport]:
    """Save an uploaded file into the corpus under a safe name and re-ingest incrementally,
    holding the index lock throughout (see _writer_lock; nothing is written while another
    process holds it). The file is validated first: a bad file raises SourceError and changes
    nothing."""
    settings = settings or get_settings()
    corpus_dir = Path(corpus_dir or settings.corpus_dir)
    index_dir = Path(index_dir or settings.index_dir)
    with _writer_lock(index_dir, settings, wait_s):
        safe = safe_file_name(name)
        if len(data) > settings.max_file_bytes:
            raise SourceError(safe, f"file is {human_size(len(data))}, above the "
                                    f"{human_size(settings.max_file_bytes)} limit")
        load_bytes(safe, data)  # raises SourceError for unsupported/empty/binary/corrupt input
        digest = _sha256(data)
        for existing, existing_hash in input_hashes(corpus_dir, settings).items():  # the file already there is kept
            if existing_hash == digest:
                raise SourceError(safe, f"duplicate of {existing} (same content)")
        target = corpus_dir / safe
        stem, suffix, n = target.stem, target.suffix, 1
        while target.exists():
            n += 1
            target = corpus_dir / f"{stem}-{n}{suffix}"
        tmp = corpus_dir / f".upload-{safe}"
        tmp.write_bytes(data)
        tmp.replace(target)
        try:
            report = ingest_corpus(corpus_dir, index_dir, embedder=embedder, settings=settings,
                                   show_progress=False)
        except BaseException:
            target.unlink(missing_ok=True)  # the corpus goes back to what the index describes
            raise
        return target.name, report
