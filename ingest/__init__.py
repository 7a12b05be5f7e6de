"""Ingestion: load, clean, chunk, embed and index the corpus (`python -m ingest`)."""
from ingest.build import IngestReport, SkippedFile, add_file, build_index, ingest_corpus

__all__ = ["IngestReport", "SkippedFile", "add_file", "build_index", "ingest_corpus"]
