"""The answerer on the development set's TEST split (eval/dev/): documents and questions the
answerer was not written against and its settings were not fitted on. Asserted a little below
the levels docs/EVALUATION.md reports, so a regression fails the suite.

Issue 9's targets on this split are fact recall >= 90%, right source in the top 3 >= 90%,
out-of-corpus abstention >= 90% and false abstentions <= 5%; measured (2026-12-03, after the
settings were cross-validated on the tuning split and the test split gained 21 near-miss
unanswerable questions, 41 in all): 71.9%, 82.3%, 53.7% and 8.0% (before: 69.6%, 80.5%, 55% of
20, 10.6%); after the rare-missing-word rule (wordfreq Zipf) and its companion fixes: 71.1%,
81.4%, 53.7% and 8.8%. The targets are not reached yet: these floors guard what is, and are to be
raised as the answerer improves (the measured levels did not rise, so neither did the floors). The
abstention floor stays at its earlier 0.50 (the harder 41-question set measures 53.7%)."""
from __future__ import annotations

import pytest

from eval.dev.score import bootstrap, open_dev_kb, score_split

FACT_RECALL = 0.70
SOURCE_TOP3 = 0.80
ABSTENTION = 0.50
FALSE_ABSTENTION_RATE = 0.10


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
