"""Extractive answers (placeholder: top sentence of each top hit, cited)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from kb.types import Answer, AnswerSentence, Citation, Filters

if TYPE_CHECKING:
    from kb.api import KnowledgeBase


def answer(base: "KnowledgeBase", question: str, filters: Filters | None = None) -> Answer:
    hits = base.search(question, k=3, filters=filters)
    citations, sentences = [], []
    for n, hit in enumerate(hits, start=1):
        doc = base.document(hit.chunk.source)
        a, b = hit.chunk.sentences[0]
        citations.append(Citation(n=n, source=doc.source, title=doc.title, quote=doc.text[a:b], start=a,
                                  end=b, score=hit.score, evidence=doc.meta.evidence_level,
                                  doc_type=doc.meta.doc_type, year=doc.meta.year,
                                  section=hit.chunk.section, chunk_id=hit.chunk.chunk_id))
        sentences.append(AnswerSentence(text=doc.text[a:b], citations=(n,)))
    text = " ".join(f"{s.text} [{s.citations[0]}]" for s in sentences)
    return Answer(question=question, text=text, citations=tuple(citations), sentences=tuple(sentences))
