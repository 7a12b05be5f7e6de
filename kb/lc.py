"""The knowledge base as a LangChain retriever, so users can drop it into their own chains.

Each returned `Document` is one retrieved chunk: `page_content` is the chunk text (exactly
`document.text[start:end]`) and `metadata` carries what is needed to cite it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator

from kb.types import Filters, Hit

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)


def hit_metadata(base: "KnowledgeBase", hit: Hit) -> dict[str, Any]:
    """Citation fields of one hit (plain JSON types, so chains can serialise them)."""
    chunk = hit.chunk
    meta = base.document(chunk.source).meta
    return {
        "source": chunk.source,
        "title": meta.title,
        "start": chunk.start,
        "end": chunk.end,
        "evidence": meta.shown_evidence,
        "flags": list(meta.flags),
        "doc_type": meta.doc_type,
        "year": meta.year,
        "section": chunk.section,
        "page": chunk.page,
        "chunk_id": chunk.chunk_id,
        "score": float(hit.score),
        "rank": hit.rank,
        "warnings": list(base.warnings_for(chunk)),  # planted instructions, source changed since indexing
    }


def _as_filters(value: Any) -> Filters:
    """Filters, a dict of Filters fields, or None (= no restriction)."""
    if value is None:
        return Filters()
    if isinstance(value, Filters):
        return value
    if isinstance(value, dict):
        return Filters(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise TypeError(f"filters must be kb.types.Filters or a dict, not {type(value).__name__}")


class KBRetriever(BaseRetriever):
    """`base.as_retriever(k=5, filters=Filters(...))`. `k` and `filters` can also be given per
    call: `retriever.invoke("query", k=3)`."""

    # KnowledgeBase is not a pydantic model; validate it by isinstance only.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    base: Any
    k: int = Field(default=5, ge=1)
    filters: Filters = Field(default_factory=Filters)

    @field_validator("base")
    @classmethod
    def _check_base(cls, value: Any) -> Any:
        from kb.api import KnowledgeBase

        if not isinstance(value, KnowledgeBase):
            raise TypeError(f"base must be a kb.api.KnowledgeBase, not {type(value).__name__}")
        return value

    @field_validator("filters", mode="before")
    @classmethod
    def _check_filters(cls, value: Any) -> Filters:
        return _as_filters(value)

    def _search(self, query: str, k: int | None, filters: Any) -> list[LCDocument]:
        n = self.k if k is None else int(k)
        if n < 1:
            return []
        flt = self.filters if filters is None else _as_filters(filters)
        hits = self.base.search(query, k=n, filters=flt)
        return [LCDocument(page_content=h.chunk.text, metadata=hit_metadata(self.base, h),
                           id=h.chunk.chunk_id) for h in hits]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, filters: Any = None) -> list[LCDocument]:
        return self._search(query, k, filters)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, filters: Any = None) -> list[LCDocument]:
        # The base class's async default drops per-call kwargs such as k; search is CPU-bound,
        # so it runs in the default executor instead of blocking the event loop.
        return await run_in_executor(None, self._search, query, k, filters)
