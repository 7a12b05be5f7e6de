"""The knowledge base: open an index, retrieve, compose cited answers."""
from kb.api import KnowledgeBase, open_kb
from kb.types import Answer, Citation, Filters, Hit

__all__ = ["Answer", "Citation", "Filters", "Hit", "KnowledgeBase", "open_kb"]
