"""The gold set: its file is well formed (fast), and the answerer meets the thresholds on it
with the real model (realmodel)."""
from __future__ import annotations

import pytest

from eval.gold import GoldQuestion, load_gold, score
from tests.conftest import SEED_CORPUS

# Facts that are structure the answerer adds, not words of a source.
STRUCTURAL_FACTS = {"sources differ", "case report"}


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def test_gold_file_is_well_formed() -> None:
    gold = load_gold()
    assert len(gold) >= 40
    assert len([q for q in gold if not q.answerable]) >= 6
    assert len({q.id for q in gold}) == len(gold)
    tags = {t for q in gold for t in q.tags}
    assert {"abbreviation", "lay", "comparison", "disagreement"} <= tags
    corpus = {p.name: _norm(p.read_text(encoding="utf-8")) for p in SEED_CORPUS.glob("*.txt")}
    for q in gold:
        if not q.answerable:
            assert not q.facts
            continue
        assert q.facts and q.sources, q.id
        assert set(q.sources) <= set(corpus), f"{q.id}: unknown source"
        for fact in q.facts:
            # every fact is written in one of the question's sources (or is answer structure)
            assert _norm(fact) in STRUCTURAL_FACTS or any(_norm(fact) in corpus[s] for s in q.sources), (q.id, fact)


def test_load_gold_rejects_bad_files(tmp_path) -> None:
    bad = tmp_path / "gold.yaml"
    bad.write_text("questions:\n  - id: a\n    question: 'x?'\n    answerable: true\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_gold(bad)
    bad.write_text("questions:\n  - id: a\n    question: 'x?'\n    answerable: false\n"
                   "  - id: a\n    question: 'y?'\n    answerable: false\n", encoding="utf-8")
    with pytest.raises(ValueError):
        load_gold(bad)


def test_score_counts_what_it_should(base_for_scoring) -> None:
    """The scorer on two hand-made questions: one fact present, one absent; one abstention."""
    qs = [GoldQuestion("a", "tac trough target?", True, ("5-10 ng/ml", "no such fact"), ("000_af2669614d1c7faa.txt",)),
          GoldQuestion("b", "How do I bake bread?", False)]
    r = score(base_for_scoring, qs)
    assert r.n_questions == 2 and r.n_unanswerable == 1
    assert r.fact_recall == 0.5 and r.source_top3 == 1.0 and r.abstention_accuracy == 1.0
    assert r.rows[0].missing_facts == ("no such fact",) and not r.rows[0].passed and r.rows[1].passed
    assert r.failed == (r.rows[0],)


@pytest.fixture
def base_for_scoring(fake_kb):
    return fake_kb


@pytest.mark.realmodel
def test_gold_thresholds_real_model(real_kb) -> None:
    report = score(real_kb, load_gold())
    failed = [(r.id, r.missing_facts, r.top_sources, r.abstained) for r in report.failed]
    # Issue 9: the bundled set stays at its level (>= 95%): 95.8% (68 of 71 facts) with the torch,
    # onnx and onnx-int8 backends since list questions got their answer type.
    assert report.fact_recall >= 0.95, failed
    assert report.source_top3 >= 0.95, failed
    assert report.abstention_accuracy == 1.0, failed
    assert report.false_abstentions <= 1, failed
    assert report.uncited_sentences == 0
    assert report.numbers_missing == 0
    assert report.quote_errors == 0
