"""The development set (eval/dev/) is complete and self-consistent: every check of
`python -m eval.dev.check` passes, and the checks themselves catch broken data."""
from __future__ import annotations

import pytest

from eval.dev import DevQuestion, dev_docs_dir, load_dev_catalogue, load_dev_questions
from eval.dev import check


@pytest.fixture(scope="module")
def report() -> check.Report:
    return check.validate()


def test_devset_passes_every_check(report: check.Report) -> None:
    assert report.errors == []


def test_loaders_return_the_files_on_disk() -> None:
    cat = load_dev_catalogue()
    files = {p.name for p in dev_docs_dir().iterdir() if p.suffix in (".txt", ".md")}
    assert set(cat) == files
    qs = load_dev_questions()
    assert len({q.id for q in qs}) == len(qs)
    assert all(isinstance(q, DevQuestion) for q in qs)


def test_test_split_is_answerable_from_test_documents_alone() -> None:
    cat = load_dev_catalogue()
    for q in load_dev_questions():
        if q.answerable and q.split == "test":
            assert {cat[s].split for s in q.sources} == {"test"}, q.id


def test_counts_meet_the_targets(report: check.Report) -> None:
    qs = load_dev_questions()
    assert len(load_dev_catalogue()) >= check.MIN_DOCS
    assert sum(q.answerable for q in qs) >= check.MIN_ANSWERABLE
    assert sum(q.answerable and q.split == "test" for q in qs) >= check.MIN_TEST_ANSWERABLE
    assert sum((not q.answerable) and q.split == "test" for q in qs) >= check.MIN_TEST_UNANSWERABLE


def test_fact_check_catches_a_fact_missing_from_its_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_dev_questions()
    broken = [q for q in real]
    q0 = next(q for q in real if q.answerable)
    broken[0] = DevQuestion(
        id=q0.id, question=q0.question, answerable=True, split=q0.split,
        facts=("a figure no document states 987654 mg",), sources=q0.sources,
    )
    monkeypatch.setattr(check, "load_dev_questions", lambda: broken)
    errors = check.validate().errors
    assert any("987654" in e and "none of its sources" in e for e in errors)


def test_split_check_catches_sources_in_the_other_split(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_dev_questions()
    q0 = next(q for q in real if q.answerable and q.split == "test")
    moved = [
        DevQuestion(id=q.id, question=q.question, answerable=q.answerable, split="tune",
                    facts=q.facts, sources=q.sources, tags=q.tags) if q is q0 else q
        for q in real
    ]
    monkeypatch.setattr(check, "load_dev_questions", lambda: moved)
    assert any(q0.id in e and "sources are in" in e for e in check.validate().errors)


def test_overlap_check_catches_a_copy_of_the_bundled_corpus(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus_text = next(p for p in sorted(check.CORPUS_DIR.glob("*.txt"))).read_text(encoding="utf-8")
    texts = {"copy.txt": "Intro line.\n" + corpus_text[1000:1400]}
    r = check.Report()
    check._check_overlap(texts, r)
    assert any("copy.txt" in e and "corpus/" in e for e in r.errors)
    r2 = check.Report()
    check._check_overlap({"fresh.txt": "FSGS text written for this test only. " * 20}, r2)
    assert r2.errors == []


def test_near_miss_check_catches_near_documents_in_the_other_split(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_dev_questions()
    q0 = next(q for q in real if not q.answerable and q.near)
    other = "test" if q0.split == "tune" else "tune"
    moved = [
        DevQuestion(id=q.id, question=q.question, answerable=False, split=other, reason=q.reason,
                    near_miss=q.near_miss, near=q.near) if q is q0 else q
        for q in real
    ]
    monkeypatch.setattr(check, "load_dev_questions", lambda: moved)
    assert any(q0.id in e and "documents it is near" in e for e in check.validate().errors)
