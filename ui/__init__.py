"""The Streamlit chat UI (`make run`): app.py is the script, render.py and export.py are pure
functions it calls. `Turn` is the one value they share: a question, its answer and the source
documents it cites, captured when it was asked so history replays even after the index changes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from kb.types import Answer, Document, Filters, Span


@dataclass(frozen=True, eq=False)
class Turn:
    question: str
    answer: Answer
    documents: Mapping[str, Document] = field(default_factory=dict)  # source -> cited document
    passages: Mapping[str, Span] = field(default_factory=dict)  # chunk_id -> (start, end)
    filters: Filters = field(default_factory=Filters)
    asked_at: str = ""  # ISO time, for exports
    # source -> spans flagged at ingest as addressing the reader or a model (shown with a warning)
    flagged: Mapping[str, tuple[Span, ...]] = field(default_factory=dict)


__all__ = ["Turn"]
