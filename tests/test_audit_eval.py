"""The draft audit on its labelled set (eval/audit/labelled.yaml) with the real model, over
corpus/ + the development documents: the targets of the issue, asserted."""
from __future__ import annotations

import pytest

from kb.audit_types import NOT_FOUND, NUMBERS_DIFFER

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from eval import audit_eval

    base = audit_eval.open_eval_kb(tmp_path_factory.mktemp("audit-eval"))
    return audit_eval.run(base)


def test_labelled_set_is_big_enough_and_read_as_sentences(result) -> None:  # type: ignore[no-untyped-def]
    assert len(result.items) >= 60
    assert not result.split_errors
    kinds = {i.kind for i in result.items}
    assert {"right-citation", "wrong-citation", "altered-number", "absent", "paraphrase", "no-claim"} <= kinds


def test_targets(result) -> None:  # type: ignore[no-untyped-def]
    assert result.altered_supported == [], "a sentence with an altered number was called supported"
    assert (result.precision(NUMBERS_DIFFER) or 0) >= 0.9
    assert (result.precision(NOT_FOUND) or 0) >= 0.9
    assert result.accuracy >= 0.85

