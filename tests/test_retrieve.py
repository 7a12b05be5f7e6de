"""Hybrid retrieval internals: fusion arithmetic, fusion order on a real (fake-embedded) index,
exact per-retriever evidence, filters, the per-document cap, and the chunk -> document
aggregation the SciFact evaluation relies on."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eval.scifact import doc_ranking, ndcg_at, recall_at
from kb.bm25 import query_tokens
from kb.retrieve import Retriever, convex_scores, minmax, rrf_scores
from kb.types import Chunk, Filters, Hit, Query

QUESTION = "cyclosporine tacrolimus remission in steroid resistant FSGS"


def _retriever(kb, **changes) -> Retriever:
    return Retriever(kb.contents, kb.embedder, replace(kb.settings.retrieval, **changes))


# ---------------------------------------------------------------- pure functions

def test_rrf_rewards_agreement_and_rank() -> None:
    fused = rrf_scores([[(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 7.0), (4, 5.0)]], k=60)
    assert max(fused, key=fused.get) == 2  # in both lists
    assert fused[1] > fused[3]  # same list, better rank
    assert fused[1] == pytest.approx(1 / 61) and fused[4] == pytest.approx(1 / 62)  # rank 1, rank 2


def test_minmax_uses_the_reference_range_and_clips() -> None:
    ref = np.array([2.0, 4.0])
    assert minmax(np.array([2.0, 3.0, 4.0, 1.0, 9.0]), ref).tolist() == [0.0, 0.5, 1.0, 0.0, 1.0]
    assert minmax(np.array([5.0, 5.0]), np.array([5.0, 5.0])).tolist() == [0.0, 0.0]  # no signal
    assert minmax(np.array([1.0]), np.array([])).tolist() == [0.0]


def test_convex_scores_weight_the_two_normalised_scores() -> None:
    dense = np.array([0.9, 0.5, 0.1])
    bm25 = np.array([0.0, 10.0, 5.0])
    ref = np.array([True, True, True])
    only_dense = convex_scores(dense, bm25, ref, 1.0)
    only_bm25 = convex_scores(dense, bm25, ref, 0.0)
    assert np.argsort(-only_dense).tolist() == [0, 1, 2]
    assert np.argsort(-only_bm25).tolist() == [1, 2, 0]
    half = convex_scores(dense, bm25, ref, 0.5)
    assert half.tolist() == pytest.approx([0.5, 0.5 * 0.5 + 0.5, 0.0 + 0.25])
    # A candidate outside the reference lists does not stretch the range.
    narrow = convex_scores(dense, bm25, np.array([True, True, False]), 0.5)
    assert narrow[0] == pytest.approx(0.5) and narrow[1] == pytest.approx(0.5)


# ---------------------------------------------------------------- on the seed corpus

def test_default_fusion_is_convex_and_scores_are_ordered(fake_kb) -> None:
    assert fake_kb.settings.retrieval.fusion == "convex"
    hits = fake_kb.retriever.search(Query(text=QUESTION), k=8)
    assert [h.rank for h in hits] == list(range(1, 9))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_every_hit_carries_exact_dense_and_bm25_scores(fake_kb) -> None:
    c = fake_kb.contents
    q = Query(text=QUESTION)
    qvec = fake_kb.embedder.encode([q.embed_text])[0]
    tokens = [t for t in query_tokens(q.bm25_text) if t in c.bm25.vocab_dict]
    bm25_all = c.bm25.get_scores(tokens)
    row = {ch.chunk_id: i for i, ch in enumerate(c.chunks)}
    hits = fake_kb.retriever.search(q, k=15)
    for h in hits:
        i = row[h.chunk.chunk_id]
        assert h.dense_score == pytest.approx(float(c.vectors[i] @ qvec), abs=1e-5)
        assert h.bm25_score == pytest.approx(float(bm25_all[i]), abs=1e-4)


@pytest.mark.parametrize("weight, key", [(1.0, "dense_score"), (0.0, "bm25_score")])
def test_weight_extremes_reduce_to_one_retriever(fake_kb, weight: float, key: str) -> None:
    r = _retriever(fake_kb, dense_weight=weight, max_per_document=100)
    hits = r.search(Query(text=QUESTION), k=6)
    values = [getattr(h, key) for h in hits]
    assert values == sorted(values, reverse=True)
    alone = r.dense(Query(text=QUESTION), 6) if key == "dense_score" else r.bm25(Query(text=QUESTION), 6)
    assert [h.chunk.chunk_id for h in hits] == [fake_kb.contents.chunks[i].chunk_id for i, _ in alone]


def test_a_chunk_both_retrievers_rank_first_is_first(fake_kb) -> None:
    r = _retriever(fake_kb, max_per_document=100)
    q = Query(text=QUESTION)
    d, b = r.dense(q, 1), r.bm25(q, 1)
    hits = r.search(q, k=3)
    if d[0][0] == b[0][0]:
        assert hits[0].chunk == fake_kb.contents.chunks[d[0][0]]
    else:  # then the top hit must be one of the two leaders
        assert hits[0].chunk in (fake_kb.contents.chunks[d[0][0]], fake_kb.contents.chunks[b[0][0]])


def test_fused_scores_do_not_depend_on_k(fake_kb) -> None:
    """Scores are normalised on the top-`candidates` lists, so asking for more results adds
    candidates without changing the scores of those already found."""
    r = _retriever(fake_kb, candidates=5, max_per_document=100)
    q = Query(text=QUESTION)
    small = {h.chunk.chunk_id: h.score for h in r.search(q, k=5)}
    large = {h.chunk.chunk_id: h.score for h in r.search(q, k=25)}
    assert set(small) <= set(large)
    for cid, s in small.items():
        assert large[cid] == pytest.approx(s)


def test_rrf_mode_matches_reciprocal_rank_fusion(fake_kb) -> None:
    r = _retriever(fake_kb, fusion="rrf", rrf_k=60, candidates=20, max_per_document=100)
    q = Query(text=QUESTION)
    expected = rrf_scores([r.dense(q, 20), r.bm25(q, 20)], 60)
    hits = r.search(q, k=5)
    best = sorted(expected, key=lambda i: (-expected[i], i))[:5]
    assert [h.chunk.chunk_id for h in hits] == [fake_kb.contents.chunks[i].chunk_id for i in best]
    assert hits[0].score == pytest.approx(expected[best[0]])


def test_unknown_fusion_is_an_error(fake_kb) -> None:
    with pytest.raises(ValueError, match="fusion"):
        _retriever(fake_kb, fusion="nope").search(Query(text=QUESTION), k=3)


def test_query_with_no_bm25_term_still_gets_dense_hits(fake_kb) -> None:
    hits = fake_kb.retriever.search(Query(text="zzqx wvvy"), k=3)
    assert len(hits) == 3
    assert all(h.bm25_score == 0.0 for h in hits)


def test_filters_restrict_results(fake_kb) -> None:
    sources = sorted(fake_kb.contents.documents)
    only = sources[2]
    hits = fake_kb.retriever.search(Query(text=QUESTION, filters=Filters(sources=(only,))), k=10)
    assert hits and {h.chunk.source for h in hits} == {only}
    case = Filters(doc_types=("case report",))
    for h in fake_kb.retriever.search(Query(text=QUESTION, filters=case), k=10):
        assert fake_kb.document(h.chunk.source).meta.doc_type == "case report"


def test_per_document_cap(fake_kb) -> None:
    q = Query(text=QUESTION)
    capped = _retriever(fake_kb, max_per_document=1).search(q, k=4)
    assert len({h.chunk.source for h in capped}) == 4  # 5 documents: four different ones
    uncapped = _retriever(fake_kb, max_per_document=100).search(q, k=4)
    assert len({h.chunk.source for h in uncapped}) < 4 or uncapped == capped
    # Fewer documents than k: the cap gives way instead of returning fewer hits.
    assert len(_retriever(fake_kb, max_per_document=1).search(q, k=12)) == 12


# ---------------------------------------------------------------- chunk -> document (SciFact)

def _hit(source: str, score: float, rank: int) -> Hit:
    chunk = Chunk(chunk_id=f"{source}-{rank}", doc_id=source, source=source, text="x", start=0, end=1)
    return Hit(chunk=chunk, score=score, rank=rank)


def test_doc_ranking_takes_each_documents_best_chunk() -> None:
    hits = [_hit("A", 0.9, 1), _hit("B", 0.8, 2), _hit("A", 0.7, 3), _hit("C", 0.6, 4), _hit("B", 0.5, 5)]
    assert doc_ranking(hits, 10) == ["A", "B", "C"]
    assert doc_ranking(hits, 2) == ["A", "B"]


def test_ndcg_and_recall_count_documents_not_chunks() -> None:
    rel = {"A": 1, "C": 1}
    assert ndcg_at(["A", "C", "B"], rel) == pytest.approx(1.0)
    assert ndcg_at(["B", "A", "C"], rel) == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert ndcg_at(["B"], rel) == 0.0
    assert recall_at(["A", "B"], rel, 100) == 0.5
    # A document split into two chunks counts once: duplicates never reach the metric.
    hits = [_hit("A", 0.9, 1), _hit("A", 0.8, 2), _hit("C", 0.7, 3)]
    assert ndcg_at(doc_ranking(hits, 10), rel) == pytest.approx(1.0)


# ---------------------------------------------------------------- flat -> HNSW switch

def test_ingestion_switches_to_hnsw_at_the_threshold(fake_settings, fake_embedder, fake_kb, tmp_path) -> None:
    """Below hnsw_threshold the index is exact flat; at or above it ingestion builds HNSW, the
    manifest says so, and search still finds what exact search finds (tiny corpus: exact)."""
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    n = len(fake_kb.contents.chunks)
    assert fake_kb.manifest["vector_index"]["type"] == "flat"
    assert fake_kb.manifest["vector_index"]["threshold"] == fake_settings.retrieval.hnsw_threshold > n
    small = replace(fake_settings, index_dir=tmp_path / "hnsw-index",
                    retrieval=replace(fake_settings.retrieval, hnsw_threshold=n))
    ingest_corpus(small.corpus_dir, small.index_dir, embedder=fake_embedder, settings=small, show_progress=False)
    hnsw_kb = open_kb(small.index_dir, embedder=fake_embedder, settings=small)
    info = hnsw_kb.manifest["vector_index"]
    assert info["type"] == "hnsw" and info["m"] == small.retrieval.hnsw_m
    assert hnsw_kb.info.index_type == "hnsw"
    assert type(hnsw_kb.contents.faiss_index).__name__ == "IndexHNSWFlat"
    q = Query(text=QUESTION)
    exact = [fake_kb.contents.chunks[i].chunk_id for i, _ in fake_kb.retriever.dense(q, 5)]
    approx = [hnsw_kb.contents.chunks[i].chunk_id for i, _ in hnsw_kb.retriever.dense(q, 5)]
    assert approx == exact
    assert [h.chunk.chunk_id for h in hnsw_kb.search(q, k=5)] == [h.chunk.chunk_id for h in fake_kb.search(q, k=5)]
