"""Query understanding (placeholder: the question as is). Replaced by abbreviation and
synonym expansion from the vocabulary file."""
from __future__ import annotations

from kb.types import Filters, Query


def understand(question: str, filters: Filters | None = None) -> Query:
    return Query(text=question, filters=filters or Filters())
