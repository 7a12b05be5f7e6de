"""The answerer on the development set's TEST split (eval/dev/): documents and questions the
answerer was not written against and its settings were not fitted on. Asserted at the levels
docs/EVALUATION.md reports (the targets of issue 9 where reached; see the thresholds below)."""
from __future__ import annotations

import pytest

from eval.dev.score import bootstrap, open_dev_kb, score_split

# Issue 9 asks for >= 90% / 90% / 90% and <= 5% false abstentions on this split.
FACT_RECALL = 0.90
SOURCE_TOP3 = 0.90
ABSTENTION = 0.90
FALSE_ABSTENTION_RATE = 0.05


@pytest.fixture(scope="module")
def test_split_report(tmp_path_factory: pytest.TempPathFactory):
    base = open_dev_kb("test", root=tmp_path_factory.mktemp("dev"))
    return score_split(base, "test")


@pytest.mark.realmodel
def test_dev_test_split_meets_the_targets(test_split_report) -> None:
    r = test_split_report
    failed = [(x.id, x.missing_facts, x.top_sources, x.abstained) for x in r.failed]
    assert r.uncited_sentences == 0 and r.numbers_missing == 0 and r.quote_errors == 0
    assert r.fact_recall >= FACT_RECALL, failed
    assert r.source_top3 >= SOURCE_TOP3, failed
    assert r.abstention_accuracy >= ABSTENTION, failed
    assert r.false_abstentions / r.n_answerable <= FALSE_ABSTENTION_RATE, failed


@pytest.mark.realmodel
def test_bootstrap_intervals_contain_the_point_estimates(test_split_report) -> None:
    for name, ci in bootstrap(test_split_report, n=200).items():
        assert ci.low <= ci.value <= ci.high, name
