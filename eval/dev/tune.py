"""Fit the answerer's scoring and coverage settings (kb/config.py ScoringSettings) on the
TUNING split of the development set only, by coordinate descent over a few values per field.

    python -m eval.dev.tune          # plain fit on the whole tuning split
    python -m eval.dev.tune --cv 4   # document-group cross-validation within the tuning split

Cross-validation (`cross_validate`): the tuning split's questions are cut into folds by
document group (a question goes with the group of its first source, an unanswerable one with
the group of the documents it is a near miss of, so no group straddles folds). Each fold's
settings are fitted on the other folds and scored on it; the settings chosen take, field by
field, the median of the folds' choices (of two middle values, the one nearer the current value:
the flatter choice). The held-out objective estimates how the fit generalises to
documents it was not fitted on; the gap to the in-fold objective shows how much it overfits.

Objective: fact recall + right source in the top 3 + abstention on unanswerable questions
- 2 x the false-abstention rate (a wrong abstention and a wrong answer both cost; a false
answer on an unanswerable question is already counted by the abstention term). Answers that
break an invariant (uncited text, a number absent from its quote, a quote that is not its
span) disqualify a setting. The test split is never looked at here.
"""
from __future__ import annotations

import logging
import argparse
import hashlib
from collections import Counter, defaultdict
from dataclasses import astuple, replace
from typing import Any, Sequence

from eval.dev.score import open_dev_kb, score_split, split_questions

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
    "absent_term_dense": (0.0, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65),
    "absent_share": (0.0, 0.3, 0.4, 0.5),
    "rare_absent_zipf": (0.0, 2.0, 2.5, 3.0, 3.5, 4.0),
    "rare_absent_dense": (0.6, 0.65, 0.7, 0.75, 0.8, 1.01),
    "require_answer_type": (True, False),
    "document_entity_factor": (0.8, 0.9, 1.0),
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


def row_objective(rows: Sequence[Any]) -> float:
    """`objective` computed from per-question rows (a fold's share of a report)."""
    if any(r.uncited or r.numbers_missing or r.quote_errors for r in rows):
        return -1.0
    ans = [r for r in rows if r.answerable]
    una = [r for r in rows if not r.answerable]
    facts = sum(r.facts_total for r in ans)
    recall = sum(r.facts_found for r in ans) / facts if facts else 1.0
    top3 = sum(r.source_ok for r in ans) / len(ans) if ans else 1.0
    abst = sum(r.abstained for r in una) / len(una) if una else 1.0
    far = sum(r.abstained for r in ans) / len(ans) if ans else 0.0
    return recall + top3 + abst - 2 * far


def _h(text: str) -> int:
    return int(hashlib.sha256(f"fsgs-devset-cv:{text}".encode()).hexdigest(), 16)


def group_folds(split: str = "tune", k: int = 4) -> dict[str, int]:
    """Question id -> fold, folds made of whole document groups (see `fold_groups`)."""
    group_of, fold_of = _question_groups(split), fold_groups(split, k)
    return {qid: fold_of[g] for qid, g in group_of.items()}


def fold_groups(split: str = "tune", k: int = 4) -> dict[str, int]:
    """Document group (or "q:<id>" for a question with no document) -> fold: largest groups
    first, each to the fold with the fewest questions so far; order among equal sizes by a
    seeded hash."""
    members: dict[str, list[str]] = defaultdict(list)
    for qid, g in _question_groups(split).items():
        members[g].append(qid)
    sizes = [0] * k
    fold: dict[str, int] = {}
    for g in sorted(members, key=lambda g: (-len(members[g]), _h(g))):
        fold[g] = min(range(k), key=lambda i: (sizes[i], i))
        sizes[fold[g]] += len(members[g])
    return fold


def _question_groups(split: str) -> dict[str, str]:
    """Question id -> the group of its first source (an unanswerable one: of the first document
    it is a near miss of)."""
    from eval.dev import load_dev_catalogue, load_dev_questions

    cat = load_dev_catalogue()
    group_of: dict[str, str] = {}
    for q in load_dev_questions():
        if q.split != split:
            continue
        docs = q.sources or q.near
        group_of[q.id] = cat[docs[0]].group if docs and docs[0] in cat else "q:" + q.id
    return group_of


def _descent(start, rows_of, ids: set[str], passes: int, log: str, fields: Sequence[str] = ()) -> Any:
    """Coordinate descent of `start` on the questions `ids` (rows_of(settings) -> rows)."""
    current = start
    best = row_objective([r for r in rows_of(current) if r.id in ids])
    for p in range(passes):
        changed = False
        for name, values in GRID.items():
            if fields and name not in fields:
                continue
            for v in values:
                if getattr(current, name) == v:
                    continue
                trial = replace(current, **{name: v})
                j = row_objective([r for r in rows_of(trial) if r.id in ids])
                if j > best + 1e-9:
                    best, current, changed = j, trial, True
                    print(f"{log} pass {p + 1}: {name}={v!r} -> {best:.4f}", flush=True)
        if not changed:
            break
    return current


def _consensus(start, fitted: Sequence[Any]) -> Any:
    """Field by field, the median of the folds' choices (of the two middle values, the one
    nearer the current value: the flatter choice); a non-numeric field takes the value most
    folds chose (ties: the current value)."""
    chosen = {}
    for name in GRID:
        picks = [getattr(s, name) for s in fitted]
        cur = getattr(start, name)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in picks):
            xs = sorted(picks)
            lo, hi = xs[(len(xs) - 1) // 2], xs[len(xs) // 2]
            chosen[name] = min((lo, hi), key=lambda v: (abs(v - cur), v))
        else:
            votes = Counter(picks)
            top = max(votes.values())
            tied = [v for v, n in votes.items() if n == top]
            chosen[name] = cur if cur in tied else tied[0]
    return replace(start, **chosen)


def _scorer(split: str, verbose: bool) -> tuple[Any, Any]:
    """The split's current ScoringSettings, and a memoised function: settings -> the scored rows
    of every question of the split (one answer run per distinct settings)."""
    base = open_dev_kb(split)
    _cache_retrieval()
    questions = split_questions(split)
    from eval.gold import score

    memo: dict[tuple, tuple] = {}

    def rows_of(scoring) -> tuple:  # type: ignore[no-untyped-def]
        key = astuple(scoring)
        if key not in memo:
            base.settings = replace(base.settings, scoring=scoring)
            memo[key] = score(base, questions).rows
            if verbose:
                print(f"  run {len(memo)}: {row_objective(memo[key]):.4f}", flush=True)
        return memo[key]

    return base.settings.scoring, rows_of


def _folds(split: str, k: int, rows_of: Any, start: Any, names: Sequence[str],
           fit: Any) -> dict[str, Any]:
    """Document-group cross-validation: `fit(train_ids, label)` fits settings on k-1 folds, which
    are scored on the held-out fold; the settings kept are the per-field consensus of the folds
    (`_consensus`). Prints each fold and the summary."""
    fold = group_folds(split, k)
    all_ids = set(fold)
    fitted, held, held_start, inside = [], [], [], []
    for f in range(k):
        test_ids = {q for q, i in fold.items() if i == f}
        train_ids = all_ids - test_ids
        s_f = fit(train_ids, f"fold {f + 1}/{k}")
        fitted.append(s_f)
        inside.append(row_objective([r for r in rows_of(s_f) if r.id in train_ids]))
        held.append(row_objective([r for r in rows_of(s_f) if r.id in test_ids]))
        held_start.append(row_objective([r for r in rows_of(start) if r.id in test_ids]))
        print(f"fold {f + 1}/{k}: {len(test_ids)} held-out questions; fitted {inside[-1]:.4f} on its training "
              f"folds, {held[-1]:.4f} held out (current settings: {held_start[-1]:.4f})", flush=True)
        print("   ", {n: getattr(s_f, n) for n in names if getattr(s_f, n) != getattr(start, n)}, flush=True)
    final = _consensus(start, fitted)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    per_fold_final = [row_objective([r for r in rows_of(final) if fold[r.id] == f]) for f in range(k)]
    print(f"held-out objective of the fold fits: {mean(held):.4f} (on their training folds {mean(inside):.4f}; "
          f"current settings held out {mean(held_start):.4f})")
    print(f"consensus per fold: {[round(x, 4) for x in per_fold_final]}; all tuning questions "
          f"{row_objective(rows_of(final)):.4f} (current {row_objective(rows_of(start)):.4f})")
    changes = {n: getattr(final, n) for n in names if getattr(final, n) != getattr(start, n)}
    print("consensus changes:", changes, flush=True)
    return {"final": final, "changes": changes, "held_out": held, "in_fold": inside, "held_out_start": held_start}


def cross_validate(split: str = "tune", k: int = 4, passes: int = 2, fields: Sequence[str] = ()) -> dict[str, Any]:
    """Each fold's settings fitted by coordinate descent (`_descent`) on the other folds."""
    start, rows_of = _scorer(split, verbose=False)
    return _folds(split, k, rows_of, start, list(GRID),
                  lambda train, label: _descent(start, rows_of, train, passes, label, fields))


def screen_cv(split: str = "tune", k: int = 4, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A cheaper cross-validation for a shared CPU: every single-field change of the current
    settings is scored once on all tuning questions; each fold then takes, field by field, the
    value best on its training folds (fields chosen independently, not in sequence), and that
    combination is scored on the held-out fold. The settings kept are the per-field consensus
    of the folds (`_consensus`). About 1 + (grid values) + k + 1 runs instead of k descents."""
    start, rows_of = _scorer(split, verbose=True)
    names = [n for n in GRID if not fields or n in fields]
    single = {(n, v): rows_of(replace(start, **{n: v})) for n in names for v in GRID[n]}

    def fit(train: set[str], _label: str) -> Any:
        base_j = row_objective([r for r in rows_of(start) if r.id in train])
        chosen = {}
        for n in names:
            best_v, best_j = getattr(start, n), base_j
            for v in GRID[n]:
                j = row_objective([r for r in single[(n, v)] if r.id in train])
                if j > best_j + 1e-9:
                    best_v, best_j = v, j
            chosen[n] = best_v
        return replace(start, **chosen)

    return _folds(split, k, rows_of, start, names, fit)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cv", type=int, default=0, help="folds of document-group cross-validation (0: plain fit)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--screen", action="store_true", help="with --cv: the cheaper single-change screening")
    ap.add_argument("--fields", default="", help="comma-separated ScoringSettings fields to fit (default: all of GRID)")
    args = ap.parse_args()
    if args.cv and args.screen:
        screen_cv(k=args.cv, fields=[f for f in args.fields.split(",") if f])
    elif args.cv:
        cross_validate(k=args.cv, passes=args.passes, fields=[f for f in args.fields.split(",") if f])
    else:
        tune(passes=args.passes)
