"""The public Python interface: `open_kb(path)` -> KnowledgeBase with search / ask."""
from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from kb import store
from kb.config import Settings, get_settings
from kb.embed import Embedder, load_embedder
from kb.errors import KBError
from kb.question_input import clean_question, search_text
from kb.retrieve import Retriever
from kb.abbreviations import AbbreviationMap
from kb.instructions import WARNING as INSTRUCTION_WARNING
from kb.instructions import overlaps
from kb.render import to_markdown
from kb.source_check import STALE_NOTE, check_sources, sources_folder
from kb.types import (Abbreviation, Answer, Chunk, Citation, Document, Filters, Hit, IndexInfo, Query, Reference,
                      SourceStatus, Span)

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

logger = logging.getLogger(__name__)


class KnowledgeBase:
    """An opened index: read-only, safe to share between threads and UI sessions."""

    def __init__(self, contents: store.IndexContents, embedder: Embedder, settings: Settings) -> None:
        self.contents = contents
        self.embedder = embedder
        self.settings = settings
        self.retriever = Retriever(contents, embedder, settings.retrieval)
        self._chunks_by_id = {c.chunk_id: c for c in contents.chunks}
        from kb.query import load_vocabulary

        # The vocabulary this base answers with: the general YAML, plus the abbreviations its
        # own documents define (mined at ingest). Held here and passed explicitly.
        pairs = [(a.short, a.long) for a in getattr(contents, "abbreviations", ())]
        self.vocabulary = load_vocabulary(settings.vocabulary_path).with_abbreviations(pairs)
        # Which documents no longer match their files in corpus/ (hashed once, here).
        self.source_status: SourceStatus = check_sources(contents.documents, contents.manifest,
                                                         sources_folder(contents.manifest, settings.corpus_dir))
        self._flagged: dict[str, list[Span]] = {}
        for c in contents.chunks:
            if c.flagged:
                self._flagged.setdefault(c.source, []).extend(c.flagged)

    # -- what is in it -------------------------------------------------------------------
    @property
    def info(self) -> IndexInfo:
        return self.contents.info()

    @property
    def manifest(self) -> dict[str, Any]:
        return self.contents.manifest

    @cached_property
    def documents(self) -> list[Document]:
        return sorted(self.contents.documents.values(), key=lambda d: d.source)

    def document(self, source: str) -> Document:
        try:
            return self.contents.documents[source]
        except KeyError:
            raise KBError(f"no document {source!r} in the index") from None

    def chunk(self, chunk_id: str) -> Chunk:
        try:
            return self._chunks_by_id[chunk_id]
        except KeyError:
            raise KBError(f"no chunk {chunk_id!r} in the index") from None

    def chunks_of(self, source: str) -> list[Chunk]:
        return [c for c in self.contents.chunks if c.source == source]

    def flagged_spans(self, source: str) -> tuple[Span, ...]:
        """Spans of `source` flagged at ingest as addressing the reader or a model."""
        return tuple(self._flagged.get(source, ()))

    def warnings_for(self, chunk: Chunk) -> tuple[str, ...]:
        """What must be shown with a passage: that it holds text addressing the reader or a
        model, that its source changed since indexing."""
        out = [INSTRUCTION_WARNING] if chunk.flagged else []
        stale = self.source_status.warning_for(chunk.source)
        return tuple(out + [stale] if stale else out)

    def references(self, source: str | None = None) -> list[Reference]:
        return [r for r in self.contents.references if source is None or r.source == source]

    @cached_property
    def _abbreviation_map(self) -> AbbreviationMap:
        return AbbreviationMap(self.contents.abbreviations)

    def abbreviations(self) -> Mapping[str, list[str]]:
        """Abbreviations the corpus defines ("mycophenolate mofetil (MMF)"), mined at ingest:
        short form, looked up case-insensitively -> long forms, most defining documents first.
        `abbreviations()["mmf"] == ["mycophenolate mofetil"]`."""
        return self._abbreviation_map

    def abbreviation_pairs(self) -> tuple[Abbreviation, ...]:
        """The stored pairs with their sources and the offsets of a defining occurrence."""
        return self.contents.abbreviations

    # -- retrieval and answers -------------------------------------------------------------
    def understand(self, question: str, filters: Filters | None = None) -> Query:
        from kb.query import understand

        return understand(clean_question(question), self.vocabulary, filters)

    def search(self, query: str | Query, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """Hits for `query`; [] when it holds no letter or digit. Any str is searched (see
        kb/question_input.py); a non-str raises TypeError."""
        if not isinstance(query, Query):
            text = search_text(query, self.settings.answer.max_question_chars)
            if not text:
                return []
            query = self.understand(text, filters)
        return self.retriever.search(query, k)

    def ask(self, question: str, filters: Filters | None = None, *, chat_model: Any = None) -> Answer:
        """Extractive answer by default; with a chat model (given here or configured by
        FSGS_KB_LLM) the model writes prose that is then verified sentence by sentence, and the
        extractive answer is returned instead if the model fails."""
        from kb.answer import answer

        question = clean_question(question)  # any str answers; a non-str raises TypeError
        extractive = answer(self, question, filters)
        if chat_model is None and not self.settings.llm.enabled:
            return self.with_warnings(extractive)
        from kb.llm import answer_with_llm

        return self.with_warnings(answer_with_llm(self, question, extractive, filters, chat_model=chat_model))

    def with_warnings(self, answer: Answer) -> Answer:
        """The answer with its citations marked: a document whose source file changed since
        indexing (`source_warning`), a quoted span holding text flagged as addressing the
        reader or a model (`addresses_reader`); the Markdown re-rendered to show them."""
        def mark(c: Citation) -> Citation:
            warning = self.source_status.warning_for(c.source)
            planted = overlaps(self._flagged.get(c.source, ()), c.start, c.end)
            return replace(c, source_warning=warning, addresses_reader=planted) \
                if warning or planted else c

        citations = tuple(map(mark, answer.citations))
        closest = tuple(map(mark, answer.closest))
        if citations == answer.citations and closest == answer.closest:
            return answer
        notes = answer.notes
        if any(c.source_warning for c in citations):
            notes += (STALE_NOTE,)
        marked = replace(answer, citations=citations, closest=closest, notes=notes)
        return replace(marked, text=to_markdown(marked)) if answer.sections else marked

    def as_retriever(self, k: int = 5, filters: Filters | None = None) -> "BaseRetriever":
        from kb.lc import KBRetriever

        return KBRetriever(base=self, k=k, filters=filters or Filters())


def open_kb(path: str | Path | None = None, *, embedder: Embedder | None = None,
            settings: Settings | None = None) -> KnowledgeBase:
    """Open the index at `path` (None = the default built by `make ingest`). The embedding model
    is the one the index records; it is loaded once per process."""
    settings = settings or get_settings()
    index_dir = Path(path) if path is not None else settings.index_dir
    manifest = store.read_manifest(index_dir.resolve() if index_dir.exists() else index_dir)
    model_name = str(manifest["embedding"]["model"])
    if embedder is not None and embedder.name != model_name:
        from kb.errors import ModelMismatchError

        raise ModelMismatchError(f"index at {index_dir} was built with embedding model "
                                 f"{model_name!r}, but {embedder.name!r} was given")
    from kb.embed import ensure_compatible

    # The vectors in the index and the query vectors must come from one vector family.
    ensure_compatible(manifest, getattr(embedder, "backend", None) or settings.embed_backend, index_dir)
    contents = store.read_index(index_dir, expected_model=model_name)
    from kb.query import warm_up

    warm_up()  # load the vocabulary and drug dictionary now, not on the first question
    return KnowledgeBase(contents, embedder or load_embedder(model_name, settings.embed_backend), settings)
