"""The SciFact sentence-selection check: aligning gold sentence indices to spans of the joined
BEIR text, the overlap rule, and a run end to end on a tiny made-up SciFact folder."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from eval import scifact as sf
from eval import scifact_sentences as ss
from kb.types import Span

ABSTRACT = ("Tacrolimus induced remission in 40% of patients. Rituximab was less effective in adults. "
            "Relapse occurred after 6 months in most cases.")


def texts(text: str, spans: list[Span]) -> list[str]:
    return [text[a:b] for a, b in spans]


def test_both_splitters_split_a_plain_abstract_alike() -> None:
    expected = ["Tacrolimus induced remission in 40% of patients.", "Rituximab was less effective in adults.",
                "Relapse occurred after 6 months in most cases."]
    assert texts(ABSTRACT, ss.rule_spans(ABSTRACT)) == expected
    assert texts(ABSTRACT, ss.punkt_spans(ABSTRACT)) == expected
    assert ss.align(ABSTRACT, 2).status == "aligned"


def test_alignment_flags_too_few_sentences_and_disagreement() -> None:
    assert ss.align(ABSTRACT, 3).status == "too few sentences"
    tricky = "Families came from Aosta (N. Italy). Obesity was common."
    assert ss.align(tricky, 0).status == "splitters disagree"


def test_rule_spans_trim_whitespace() -> None:
    text = "  First one.  Second one. "
    assert texts(text, ss.rule_spans(text)) == ["First one.", "Second one."]


@pytest.mark.parametrize("quote, gold, hit", [
    ((0, 100), (0, 100), True),
    ((0, 200), (50, 100), True),  # a quote of two sentences holding the gold one
    ((60, 90), (50, 100), True),  # a fragment of the gold sentence
    ((0, 55), (50, 150), False),  # a neighbour touching it by 5 characters
    ((100, 150), (50, 100), False),  # adjacent, no overlap
])
def test_overlap_hit(quote: Span, gold: Span, hit: bool) -> None:
    assert ss.overlap_hit(quote, gold) is hit


def test_document_offset_maps_beir_text_into_the_indexed_document() -> None:
    title, text = "A title ", "  Body sentence one. Two."
    doc = sf.abstract_document("7", title, text)
    off = ss._document_offset(title, text)
    a, b = ss.rule_spans(text)[1]
    assert doc.text[a + off:b + off] == "Two."


def _tiny_scifact(root: Path) -> None:
    corpus = [
        {"_id": "1", "title": "Tacrolimus in FSGS", "text": ABSTRACT},
        {"_id": "2", "title": "Sparsentan", "text": "Sparsentan lowered proteinuria. It was well tolerated."},
        {"_id": "3", "title": "Vaccines", "text": "Live vaccines are avoided during immunosuppression. Timing matters."},
    ]
    queries = [
        {"_id": "10", "text": "Relapse occurred after 6 months in most cases of tacrolimus.",
         "metadata": {"1": [{"sentences": [2], "label": "SUPPORT"}]}},
        {"_id": "11", "text": "Sparsentan lowered proteinuria.", "metadata": {"2": [{"sentences": [0], "label": "SUPPORT"}]}},
        {"_id": "12", "text": "Claim without evidence.", "metadata": {}},
        {"_id": "13", "text": "A training claim.", "metadata": {"3": [{"sentences": [1], "label": "SUPPORT"}]}},
    ]
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n10\t1\t1\n11\t2\t1\n12\t3\t1\n")


def test_run_end_to_end_on_a_tiny_scifact(tmp_path, fake_settings, fake_embedder) -> None:
    from ingest.build import build_index
    from kb.api import open_kb

    root = tmp_path / "scifact"
    _tiny_scifact(root)
    gold = ss.load_gold(root)
    assert [c.qid for c in gold.claims] == ["10", "11"] and all(c.aligned for c in gold.claims)
    assert gold.statuses == {"1": "aligned", "2": "aligned"} and gold.n_test == 3

    data = sf.load(root)
    settings = replace(fake_settings, index_dir=tmp_path / "sf-index")
    build_index(data.documents, settings.index_dir, embedder=fake_embedder, settings=settings, show_progress=False)
    base = open_kb(settings.index_dir, embedder=fake_embedder, settings=settings)
    first = gold.claims[0]
    (a, b), = first.evidence["1"]
    assert base.document("1").text[a:b] == "Relapse occurred after 6 months in most cases."

    res = ss.run(base=base, root=root)
    assert (res.n_aligned, res.n_all) == (2, 2)
    ceiling = next(v for k, v in res.rows.items() if k.startswith("ceiling"))
    assert (ceiling["aligned"], ceiling["all"], ceiling["ci"]) == (1.0, 1.0, (1.0, 1.0))  # every sentence is a candidate
    retrieval_order = next(v for k, v in res.rows.items() if "retrieval order" in k)
    assert retrieval_order["aligned"] == 1.0  # each gold sentence is within the first 3 of its top chunk
    md = ss.render(res, reference={"date": "then", "commit": "abc", "rows": {ss.ANSWERER: {"aligned": 0.25}}})
    assert "current (before rebuild)" in md and "25.0%" in md and "aligned claims (n=2)" in md


def test_claim_hit_needs_the_right_document() -> None:
    claim = ss.GoldClaim("1", "c", {"A": ((10, 50),)}, True)
    assert ss.claim_hit([("A", 0, 40)], claim)
    assert not ss.claim_hit([("B", 10, 50)], claim)
    assert not ss.claim_hit([], claim)
