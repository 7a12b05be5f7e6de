"""The gold set (eval/gold.yaml) and its scorer.

    from eval.gold import load_gold, score
    report = score(base, load_gold())      # base = kb.open_kb(...)
    report.fact_recall, report.source_top3, report.abstention_accuracy, report.rows ...

Metrics (all over the gold questions):
    fact_recall          facts found in answer texts / facts of answerable questions
                         (case-insensitive, whitespace-normalised substring match)
    source_top3          answerable questions with a gold source among citations [1]-[3]
    abstention_accuracy  unanswerable questions that abstained / unanswerable questions
    false_abstentions    answerable questions that abstained (count)
    uncited_sentences    answer text carrying no citation (count, kb.answer_check)
    numbers_missing      numbers in the answer text absent from their cited quote (count)
    quote_errors         quotes that are not their exact document span, or shown text that
                         is not in its quote (count)
    p50_ms / p95_ms      answer time per question
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import yaml

from kb.answer_check import check_answer
from kb.answer_text import normalise_space

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

GOLD_PATH = Path(__file__).with_name("gold.yaml")


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    answerable: bool
    facts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoldRow:
    """The outcome for one question."""

    id: str
    question: str
    answerable: bool
    abstained: bool
    facts_found: int
    facts_total: int
    missing_facts: tuple[str, ...]
    source_ok: bool  # a gold source among the top-3 citations (answerable questions)
    top_sources: tuple[str, ...]
    uncited: int
    numbers_missing: int
    quote_errors: int
    ms: float
    tags: tuple[str, ...] = ()
    abstain_rule: str = ""  # when abstained: which check of kb/evidence.coverage failed

    @property
    def passed(self) -> bool:
        if not self.answerable:
            return self.abstained
        return (not self.abstained and self.facts_found == self.facts_total and self.source_ok
                and not (self.uncited or self.numbers_missing or self.quote_errors))


@dataclass(frozen=True)
class GoldReport:
    n_questions: int
    n_answerable: int
    n_unanswerable: int
    fact_recall: float
    source_top3: float
    abstention_accuracy: float
    false_abstentions: int
    uncited_sentences: int
    numbers_missing: int
    quote_errors: int
    p50_ms: float
    p95_ms: float
    rows: tuple[GoldRow, ...]

    @property
    def failed(self) -> tuple[GoldRow, ...]:
        return tuple(r for r in self.rows if not r.passed)

    def summary(self) -> str:
        return (f"{self.n_questions} questions ({self.n_unanswerable} unanswerable): "
                f"fact recall {self.fact_recall:.1%}, right source in top 3 {self.source_top3:.1%}, "
                f"abstained on unanswerable {self.abstention_accuracy:.1%}, "
                f"false abstentions {self.false_abstentions}, uncited {self.uncited_sentences}, "
                f"numbers missing from quotes {self.numbers_missing}, quote errors {self.quote_errors}, "
                f"p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms")


def load_gold(path: str | Path | None = None) -> list[GoldQuestion]:
    """The gold questions of `path` (default eval/gold.yaml), validated."""
    p = Path(path) if path is not None else GOLD_PATH
    with open(p, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    out: list[GoldQuestion] = []
    seen: set[str] = set()
    for i, d in enumerate(data.get("questions") or []):
        qid = str(d.get("id") or f"q{i + 1:02d}")
        if qid in seen:
            raise ValueError(f"{p}: duplicate question id {qid!r}")
        seen.add(qid)
        question = str(d.get("question") or "").strip()
        if not question:
            raise ValueError(f"{p}: question {qid!r} has no text")
        answerable = bool(d.get("answerable", True))
        facts = tuple(str(x) for x in d.get("facts") or ())
        sources = tuple(str(x) for x in d.get("sources") or ())
        if answerable and not (facts and sources):
            raise ValueError(f"{p}: answerable question {qid!r} needs facts and sources")
        out.append(GoldQuestion(qid, question, answerable, facts, sources, tuple(str(t) for t in d.get("tags") or ())))
    return out


def normalise(s: str) -> str:
    """Lower case, runs of white space as one space: how a fact is matched in a text."""
    return normalise_space(s.lower())


def score_one(base: "KnowledgeBase", q: GoldQuestion) -> GoldRow:
    t0 = time.perf_counter()
    answer = base.ask(q.question)
    ms = (time.perf_counter() - t0) * 1000
    # A fact counts when the answer or one of its quotes states it (a quote is shown in full
    # beside the answer; the answer may show only the sentences of it that were picked).
    text = normalise(" ".join((answer.text, *(c.quote for c in answer.citations))))
    missing = tuple(f for f in q.facts if normalise(f) not in text) if not answer.abstained else q.facts
    top = tuple(dict.fromkeys(c.source for c in sorted(answer.citations, key=lambda c: c.n)[:3]))
    check = check_answer(answer, base)
    return GoldRow(
        id=q.id, question=q.question, answerable=q.answerable, abstained=answer.abstained,
        facts_found=len(q.facts) - len(missing), facts_total=len(q.facts), missing_facts=missing,
        source_ok=bool(set(top) & set(q.sources)) if q.answerable else True, top_sources=top,
        uncited=len(check.uncited), numbers_missing=len(check.numbers_missing),
        quote_errors=len(check.quote_errors) + len(check.marker_errors), ms=ms, tags=q.tags,
        abstain_rule=answer.abstain_rule)


def score(base: "KnowledgeBase", questions: Iterable[GoldQuestion] | None = None) -> GoldReport:
    """Ask every gold question once and aggregate (questions default to load_gold())."""
    qs = list(questions) if questions is not None else load_gold()
    return aggregate([score_one(base, q) for q in qs])


def aggregate(scored: Sequence[GoldRow]) -> GoldReport:
    """One report over rows scored one by one (possibly against different indexes)."""
    rows = tuple(scored)
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    facts_total = sum(r.facts_total for r in answerable)
    times = sorted(r.ms for r in rows)
    return GoldReport(
        n_questions=len(rows), n_answerable=len(answerable), n_unanswerable=len(unanswerable),
        fact_recall=sum(r.facts_found for r in answerable) / facts_total if facts_total else 1.0,
        source_top3=sum(r.source_ok for r in answerable) / len(answerable) if answerable else 1.0,
        abstention_accuracy=sum(r.abstained for r in unanswerable) / len(unanswerable) if unanswerable else 1.0,
        false_abstentions=sum(r.abstained for r in answerable),
        uncited_sentences=sum(r.uncited for r in rows),
        numbers_missing=sum(r.numbers_missing for r in rows),
        quote_errors=sum(r.quote_errors for r in rows),
        p50_ms=statistics.median(times) if times else 0.0,
        p95_ms=times[min(len(times) - 1, int(0.95 * len(times)))] if times else 0.0,
        rows=rows)
