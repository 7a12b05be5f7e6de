"""The development-set part of `python -m eval`: the answerer on documents it was not written
against (eval/dev/), the tuning and the test split side by side with bootstrap intervals, and
the bundled-corpus gold set beside them for comparison."""
from __future__ import annotations

from typing import Any

from eval.report import markdown_table


def run() -> dict[str, Any]:
    from eval.dev import load_dev_catalogue
    from eval.dev.held_out import score_held_out
    from eval.dev.score import bootstrap, open_dev_kb, score_split

    out: dict[str, Any] = {}
    docs = load_dev_catalogue()
    for split in ("tune", "test"):
        base = open_dev_kb(split)
        report = score_split(base, split)
        held_out = score_held_out(split)
        out[split] = {"report": report, "ci": bootstrap(report),
                      "documents": sum(1 for d in docs.values() if d.split == split),
                      "held_out": held_out, "held_out_ci": bootstrap(held_out)["abstention"]}
    return out


def _row(name: str, tune: Any, test: Any) -> tuple[str, str, str]:
    return (name, str(tune), str(test))


def render(res: dict[str, Any]) -> str:
    t, s = res["tune"], res["test"]
    tr, sr = t["report"], s["report"]
    rows = [
        ("documents (added to the 5 bundled ones)", t["documents"], s["documents"]),
        ("questions (answerable / unanswerable)", f"{tr.n_answerable} / {tr.n_unanswerable}",
         f"{sr.n_answerable} / {sr.n_unanswerable}"),
        ("fact recall [95% bootstrap interval]", t["ci"]["fact_recall"], s["ci"]["fact_recall"]),
        ("right source among citations [1]-[3]", t["ci"]["source_top3"], s["ci"]["source_top3"]),
        ("out-of-corpus questions abstained", t["ci"]["abstention"], s["ci"]["abstention"]),
        ("false abstentions (share of answerable)", t["ci"]["false_abstention_rate"], s["ci"]["false_abstention_rate"]),
        ("held-out near misses (answerable questions asked without their documents)",
         t["held_out"].n_unanswerable, s["held_out"].n_unanswerable),
        ("held-out near misses abstained", t["held_out_ci"], s["held_out_ci"]),
        ("uncited sentences", tr.uncited_sentences, sr.uncited_sentences),
        ("numbers absent from their quote", tr.numbers_missing, sr.numbers_missing),
        ("quote / offset mismatches", tr.quote_errors, sr.quote_errors),
        ("answer latency p50 / p95", f"{tr.p50_ms:.0f} / {tr.p95_ms:.0f} ms", f"{sr.p50_ms:.0f} / {sr.p95_ms:.0f} ms"),
    ]
    table = markdown_table(("metric", "tuning split", "TEST split"), [tuple(str(c) for c in r) for r in rows])
    intro = ("Each split is indexed with the bundled corpus, as a user adding literature would have it "
             "(`eval/dev/score.py`). Every weight and threshold of the answerer (`ScoringSettings` in "
             "kb/config.py) was fitted on the tuning split only, by document-group cross-validation within it "
             "(`python -m eval.dev.tune --cv 4 --screen`: each fold's settings fitted on the other folds, the "
             "median of the fold fits kept); the test split's documents and questions were not looked at while "
             "fitting. Intervals: 2,000 "
             "bootstrap resamples of the questions. Held-out near misses (`eval/dev/held_out.py`): each split "
             "is indexed four times, each time without one cross-validation fold's documents, and that fold's "
             "answerable questions whose facts no remaining document states are asked; the right answer is an "
             "abstention. They outnumber the written out-of-corpus questions about four to one and are of the "
             "kind that fails in practice (the drugs and outcomes named are still in the corpus); the settings "
             "were not fitted on them.")
    fails = [r for r in sr.rows if not r.passed]
    by_kind: dict[str, int] = {}
    for r in fails:
        kind = ("answered an out-of-corpus question" if not r.answerable else
                "abstained" if r.abstained else "missing an expected fact" if r.missing_facts else
                "right source not in top 3")
        by_kind[kind] = by_kind.get(kind, 0) + 1
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])) or "none"
    return "\n\n".join([intro, table, f"Test-split questions not fully passed: {len(fails)} of "
                        f"{sr.n_questions} ({kinds}).", _rules_table(res)])


def _rules_table(res: dict[str, Any]) -> str:
    """Which check of the one abstention rule (kb/evidence.coverage, `Answer.abstain_rule`)
    abstained, on answerable questions (false abstentions), written out-of-corpus questions and
    held-out near misses: where a check costs answers and where it earns its keep."""
    from kb.evidence import GAP_RULES

    def count(rows: Any, rule: str, answerable: bool) -> int:
        return sum(r.abstained and r.abstain_rule == rule and r.answerable == answerable for r in rows)

    rows = []
    for rule in GAP_RULES:
        cells = []
        for split in ("tune", "test"):
            rep, held = res[split]["report"], res[split]["held_out"]
            cells += [count(rep.rows, rule, True), count(rep.rows, rule, False), count(held.rows, rule, False)]
        rows.append((rule, *(str(c) for c in cells)))
    head = ("check that abstained", "tune: answerable (false)", "tune: out-of-corpus", "tune: held-out near misses",
            "test: answerable (false)", "test: out-of-corpus", "test: held-out near misses")
    return "Abstentions by the check that made them (`Answer.abstain_rule`, in the order the checks run):\n\n" \
        + markdown_table(head, rows)


HEADING = "## Development set: literature the answerer was not written against (eval/dev/)"


def splice(doc_text: str, body: str) -> str:
    """`doc_text` with the development-set section replaced by (or, if absent, appended as)
    `body`, so this part can be re-run alone without the hour-long SciFact part."""
    start = doc_text.find(HEADING)
    if start < 0:
        return doc_text.rstrip() + "\n\n" + HEADING + "\n\n" + body + "\n"
    nxt = doc_text.find("\n## ", start + len(HEADING))
    end = len(doc_text) if nxt < 0 else nxt + 1
    return doc_text[:start] + HEADING + "\n\n" + body + "\n" + ("\n" + doc_text[end:] if nxt >= 0 else "")


def main() -> int:
    """`python -m eval.dev_eval`: this section alone, written into docs/EVALUATION.md."""
    from eval.report import now_utc
    from kb.config import REPO_ROOT

    body = render(run()) + f"\n\n(Section last run alone with `python -m eval.dev_eval` on {now_utc()}.)"
    print(body)
    doc = REPO_ROOT / "docs" / "EVALUATION.md"
    doc.write_text(splice(doc.read_text(encoding="utf-8") if doc.exists() else "# Evaluation\n", body),
                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
