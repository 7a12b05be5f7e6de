"""Fit the answerer's scoring and coverage settings (kb/config.py ScoringSettings) on the
TUNING split of the development set only, by coordinate descent over a few values per field.

    python -m eval.dev.tune          # prints each step and the chosen values

Objective: fact recall + right source in the top 3 + abstention on unanswerable questions
- 2 x the false-abstention rate (a wrong abstention and a wrong answer both cost; a false
answer on an unanswerable question is already counted by the abstention term). Answers that
break an invariant (uncited text, a number absent from its quote, a quote that is not its
span) disqualify a setting. The test split is never looked at here.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from eval.dev.score import open_dev_kb, score_split

GRID: dict[str, tuple[Any, ...]] = {
    "w_dense": (0.35, 0.45, 0.55),
    "w_lexical": (0.25, 0.35, 0.45),
    "w_type": (0.1, 0.2, 0.3),
    "untyped_factor": (0.6, 0.8, 1.0),
    "aim_factor": (0.5, 0.75, 1.0),
    "w_name": (0.15, 0.3, 0.5),
    "relative_floor": (0.5, 0.6, 0.7),
    "min_score": (0.25, 0.3, 0.35, 0.4),
    "min_key_coverage": (0.2, 0.3, 0.4),
    "min_dense_alone": (0.35, 0.4, 0.5),
    "absent_term_dense": (0.0, 0.5, 0.6),
    "require_answer_type": (True, False),
}


def objective(report) -> float:
    if report.uncited_sentences or report.numbers_missing or report.quote_errors:
        return -1.0
    far = report.false_abstentions / max(1, report.n_answerable)
    return report.fact_recall + report.source_top3 + report.abstention_accuracy - 2 * far


def _cache_retrieval() -> None:
    """Retrieval and question analysis do not depend on the settings tuned here: computed once
    per question instead of once per trial."""
    import functools

    import kb.answer as answer_mod

    needs = functools.lru_cache(maxsize=None)(answer_mod.needs_for)
    gathered = functools.lru_cache(maxsize=None)(
        lambda base, needs_obj, k, extra: answer_mod.__dict__["_gather_uncached"](base, needs_obj, k, list(extra)))
    answer_mod.__dict__["_gather_uncached"] = answer_mod.gather
    answer_mod.needs_for = needs
    answer_mod.gather = lambda base, needs_obj, k, extra=(): gathered(base, needs_obj, k, tuple(extra))


def tune(split: str = "tune", passes: int = 1) -> dict[str, Any]:
    base = open_dev_kb(split)
    _cache_retrieval()
    current = base.settings.scoring

    def run(scoring) -> tuple[float, Any]:
        base.settings = replace(base.settings, scoring=scoring)
        r = score_split(base, split)
        return objective(r), r

    best, report = run(current)
    print(f"start {best:.4f}  {report.summary()}", flush=True)
    for p in range(passes):
        changed = False
        for name, values in GRID.items():
            for v in values:
                if getattr(current, name) == v:
                    continue
                trial = replace(current, **{name: v})
                j, r = run(trial)
                if j > best + 1e-9:
                    best, current, report, changed = j, trial, r, True
                    print(f"pass {p + 1}: {name}={v!r} -> {best:.4f}  {r.summary()}", flush=True)
        if not changed:
            break
    chosen = {k: getattr(current, k) for k in GRID}
    print("chosen:", chosen)
    print("final:", report.summary())
    return chosen


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    tune()
