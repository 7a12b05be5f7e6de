"""Sentence spans for chunking: the splitter lives in kb/sentences.py so that kb (the draft
audit) uses the very same Punkt setup without importing ingest."""
from __future__ import annotations

from kb.sentences import sentence_spans

__all__ = ["sentence_spans"]
