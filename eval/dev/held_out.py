"""Held-out near misses: a split's answerable questions asked of an index that lacks the
documents that answer them.

The written out-of-corpus questions are few (about 40 a split), and a threshold fitted on them
can learn their wording. This measure makes many more, of the kind that fails in practice: the
question names drugs, trials and outcomes the corpus still covers (other documents talk about
them), but the passage that answered it is gone. The split's documents are cut into the same
document-group folds as the cross-validation (`eval.dev.tune.fold_groups`); for each fold, the
split is indexed without that fold's documents, and the fold's answerable questions whose
sources all went with it are asked of that index. A question counts as a near miss only when
none of its expected facts occurs in any remaining document (matched as the scorer matches
them, `eval.gold.normalise`); the right behaviour is then to abstain. A paraphrase of the
answer elsewhere is not detected, so the measure slightly understates what a perfect
answerer would score.

    python -m eval.dev.held_out tune      # one split: near misses asked, abstained
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval.dev import load_dev_catalogue, load_dev_questions
from eval.gold import GoldQuestion, GoldReport, GoldRow, aggregate, normalise, score

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)

FOLDS = 4  # as the cross-validation of eval/dev/tune.py


@dataclass(frozen=True)
class HeldOutFold:
    """One index of the split without some documents, and the questions only those answered."""

    fold: int
    excluded: frozenset[str]  # document file names left out of the index
    questions: tuple[GoldQuestion, ...]  # answerable questions whose sources are all left out


def plan(split: str, k: int = FOLDS) -> list[HeldOutFold]:
    """The folds of `split`: each fold's documents (whole document groups) and its questions."""
    from eval.dev.tune import fold_groups

    cat = load_dev_catalogue()
    fold_of_group = fold_groups(split, k)
    questions = [q for q in load_dev_questions() if q.split == split and q.answerable]
    out: list[HeldOutFold] = []
    for f in range(k):
        excluded = frozenset(n for n, d in cat.items() if d.split == split and fold_of_group.get(d.group) == f)
        asked = tuple(GoldQuestion(q.id, q.question, False, q.facts, q.sources, q.tags)
                      for q in questions if q.sources and set(q.sources) <= excluded)
        if excluded and asked:
            out.append(HeldOutFold(f, excluded, asked))
    return out


def near_misses(base: "KnowledgeBase", fold: HeldOutFold) -> tuple[GoldQuestion, ...]:
    """The fold's questions none of whose facts any document of `base` states."""
    texts = [normalise(d.text) for d in base.contents.documents.values()]
    return tuple(q for q in fold.questions
                 if not any(normalise(f) in t for f in q.facts for t in texts))


def score_held_out(split: str, k: int = FOLDS) -> GoldReport:
    """Every near miss of `split`, asked of its fold's index (built under .cache/eval)."""
    from eval.dev.score import open_dev_kb

    rows: list[GoldRow] = []
    for fold in plan(split, k):
        base = open_dev_kb(split, exclude=fold.excluded, label=f"without-fold{fold.fold}")
        asked = near_misses(base, fold)
        logger.info("%s fold %d: %d documents left out, %d of %d questions are near misses",
                    split, fold.fold, len(fold.excluded), len(asked), len(fold.questions))
        rows += score(base, asked).rows
    return aggregate(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", choices=("tune", "test"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from eval.dev.score import bootstrap

    report = score_held_out(args.split)
    print(f"{args.split}: {report.n_unanswerable} near misses, abstained on "
          f"{bootstrap(report)['abstention']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
