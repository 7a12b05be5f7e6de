"""Held-out near misses (eval/dev/held_out.py): which documents each fold's index leaves out,
which questions it then asks, and that a question whose fact another document still states is
not counted as a near miss."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from eval.dev import load_dev_catalogue
from eval.dev.held_out import HeldOutFold, near_misses, plan
from eval.dev.score import dev_corpus
from eval.gold import GoldQuestion


@pytest.mark.parametrize("split", ["tune", "test"])
def test_folds_leave_out_whole_groups_and_ask_only_what_they_answered(split: str) -> None:
    cat = load_dev_catalogue()
    folds = plan(split)
    assert len(folds) >= 2
    seen: set[str] = set()
    for f in folds:
        assert f.excluded and f.excluded.isdisjoint(seen)  # a document leaves in one fold only
        seen |= f.excluded
        assert {cat[n].split for n in f.excluded} == {split}
        groups = {cat[n].group for n in f.excluded}
        # a fold takes a document group whole: no document of its groups stays in the index
        assert {n for n, d in cat.items() if d.group in groups and d.split == split} == f.excluded
        for q in f.questions:
            assert not q.answerable and q.facts and set(q.sources) <= f.excluded
    asked = [q.id for f in folds for q in f.questions]
    assert len(asked) == len(set(asked)) >= 20


@dataclass
class _Doc:
    text: str


def test_a_fact_still_stated_elsewhere_is_not_a_near_miss() -> None:
    gone = GoldQuestion("g", "How long?", False, ("Six  Months",), ("a.txt",))
    kept = GoldQuestion("k", "What dose?", False, ("2 mg/kg",), ("a.txt",))
    base = SimpleNamespace(contents=SimpleNamespace(documents={
        "b.txt": _Doc("Treatment lasted six\nmonths in all arms.")}))
    fold = HeldOutFold(0, frozenset({"a.txt"}), (gone, kept))
    assert near_misses(base, fold) == (kept,)  # type: ignore[arg-type]


def test_dev_corpus_leaves_out_excluded_documents(tmp_path: Path) -> None:
    cat = load_dev_catalogue()
    tune = sorted(n for n, d in cat.items() if d.split == "tune")
    dest = dev_corpus("tune", tmp_path / "c", exclude=frozenset(tune[:2]))
    names = {p.name for p in dest.iterdir()}
    assert tune[2] in names and not names & set(tune[:2])
    dev_corpus("tune", dest)  # rebuilt without exclusion: the files come back
    assert set(tune) <= {p.name for p in dest.iterdir()}


def test_the_report_counts_abstentions_by_check_in_the_right_column() -> None:
    from eval.dev_eval import _rules_table
    from eval.gold import GoldRow, aggregate

    def row(i: int, answerable: bool, rule: str) -> GoldRow:
        return GoldRow(f"q{i}", "?", answerable, bool(rule), 0, 1 if answerable else 0, (), False, (), 0, 0, 0,
                       1.0, abstain_rule=rule)

    tune = aggregate([row(1, True, "key-terms"), row(2, False, "key-terms"), row(3, False, "time-point"),
                      row(4, True, "")])
    held = aggregate([row(5, False, "not-in-corpus"), row(6, False, "not-in-corpus"), row(7, False, "")])
    empty = aggregate([])
    table = _rules_table({"tune": {"report": tune, "held_out": held}, "test": {"report": empty, "held_out": empty}})
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert lines["key-terms"].startswith("| key-terms | 1 | 1 | 0 | 0 | 0 | 0")
    assert lines["time-point"].startswith("| time-point | 0 | 1 | 0 |")
    assert lines["not-in-corpus"].startswith("| not-in-corpus | 0 | 0 | 2 |")
