"""`python -m bench`: ingest and query speed, a plain LangChain pipeline on the same corpus, and
FAISS flat vs HNSW at scale; writes docs/BENCHMARKS.md."""
