"""The FSGS gold-set part of `python -m eval`: eval.gold (another module's scorer) run on the
default index built by `make ingest`, rendered as markdown."""
from __future__ import annotations

import logging
from typing import Any

from eval.report import markdown_table

logger = logging.getLogger(__name__)


def run() -> Any | None:
    """The GoldReport, or None when eval.gold is not available (the scorer lives in its own
    module; the SciFact part does not depend on it)."""
    try:
        from eval.gold import load_gold, score
    except ImportError as e:
        logger.warning("FSGS gold set skipped: eval.gold is not importable (%s)", e)
        return None
    from kb.api import open_kb

    base = open_kb()  # the seed corpus index that `make ingest` builds
    return score(base, load_gold())


def render(report: Any | None) -> str:
    if report is None:
        return "FSGS gold set: skipped (eval.gold is not available in this checkout)."
    g = report
    table = markdown_table(("metric", "value"), [
        ("questions (answerable / unanswerable)", f"{g.n_questions} ({g.n_answerable} / {g.n_unanswerable})"),
        ("fact recall (facts found in answers of answerable questions)", f"{g.fact_recall:.1%}"),
        ("right source among citations [1]-[3]", f"{g.source_top3:.1%}"),
        ("abstention accuracy (unanswerable questions that abstained)", f"{g.abstention_accuracy:.1%}"),
        ("false abstentions (answerable questions that abstained)", g.false_abstentions),
        ("uncited answer sentences", g.uncited_sentences),
        ("numbers in answers missing from their cited quote", g.numbers_missing),
        ("quote errors (quote != its document span)", g.quote_errors),
        ("answer latency p50 / p95", f"{g.p50_ms:.0f} ms / {g.p95_ms:.0f} ms"),
    ])
    failed = list(getattr(g, "failed", ()))
    parts = [table]
    if failed:
        rows = []
        for r in failed:
            why = []
            if r.answerable and r.abstained:
                why.append("abstained")
            if not r.answerable and not r.abstained:
                why.append("answered an unanswerable question")
            if r.missing_facts and not r.abstained:
                why.append("missing: " + "; ".join(f"`{f}`" for f in r.missing_facts))
            if r.answerable and not r.source_ok and not r.abstained:
                why.append("gold source not in top 3 (got " + ", ".join(r.top_sources) + ")")
            for n, label in ((r.uncited, "uncited"), (r.numbers_missing, "numbers missing"),
                             (r.quote_errors, "quote errors")):
                if n:
                    why.append(f"{n} {label}")
            rows.append((r.id, r.question.replace("|", "/"), "; ".join(why) or "–"))
        parts += [f"Questions not fully passed ({len(failed)} of {g.n_questions}):",
                  markdown_table(("id", "question", "why"), rows)]
    else:
        parts.append(f"All {g.n_questions} questions pass every check.")
    return "\n\n".join(parts)
