"""Exports of a draft audit, shared by the CLI and the UI: CSV (one row per sentence and
evidence passage) and Markdown (the draft annotated sentence by sentence). Every quote is
`document_text[start:end]` of the named source file."""
from __future__ import annotations

import csv
import io
import json
import re

from kb.audit_types import VERDICTS, AuditReport, AuditSentence

CSV_FIELDS = ("sentence_no", "sentence", "sentence_start", "sentence_end", "citation", "citation_resolution",
              "resolved_source", "verdict", "reason", "evidence_rank", "source_file", "source_title",
              "quote", "start", "end", "key_terms", "similarity", "figures")
_FORMULA = re.compile(r"^[=+\-@\t\r]")


def _cell(value: object) -> str:
    """A spreadsheet shows it as text: a leading = + - @ would be run as a formula."""
    s = "" if value is None else str(value)
    return "'" + s if _FORMULA.match(s) else s


def _figures(s: AuditSentence) -> str:
    return "; ".join(f"{f.claim} vs {f.source_figure or '(not stated)'}" + ("" if f.consistent else " (differs)")
                     for f in s.figures)


def to_csv(report: AuditReport) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for s in report.sentences:
        head = [s.index + 1, s.text, s.start, s.end, s.citation_text,
                "; ".join(f"{c.text}: {c.status} {c.note}".strip() for c in s.citations),
                "; ".join(s.resolved_sources), s.verdict, s.reason]
        rows = [(i + 1, e) for i, e in enumerate(s.evidence)] or [(0, None)]
        for rank, e in rows:
            tail = ([rank, e.source, e.title, e.quote, e.start, e.end, f"{e.coverage:.2f}", f"{e.dense:.2f}"]
                    if e is not None else ["", "", "", "", "", "", "", ""])
            w.writerow([_cell(v) for v in (*head, *tail, _figures(s))])
    return out.getvalue()


def _md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(str(text).split()))


def to_markdown(report: AuditReport) -> str:
    counts = report.counts()
    lines = [f"# Citation audit{': ' + _md(report.name) if report.name else ''}", "",
             "Verdicts rest on exact evidence (key terms, named drugs, figures with units and ranges), not on "
             "an entailment model: a negation or a reversed direction is not detected. Read the quotes.", "",
             "| verdict | sentences |", "|---|---|"]
    lines += [f"| {VERDICTS[v][0]} | {n} |" for v, n in counts.items()]
    lines.append("")
    for s in report.sentences:
        lines.append(f"## {s.index + 1}. {VERDICTS[s.verdict][0]}")
        lines.append("")
        lines.append(f"> {_md(s.text)}")
        lines.append("")
        if s.citations:
            for c in s.citations:
                where = ", ".join(f"{_md(report.titles.get(x, x))} (`{x}`)" for x in c.sources) or "not resolved"
                lines.append(f"- Citation {_md(c.text)}: {where}" + (f" — {_md(c.note)}" if c.note else ""))
        lines.append(f"- Verdict: **{s.verdict}** — {_md(s.reason)}")
        for f in s.figures:
            lines.append(f"- Figure {_md(f.claim)}: source {_md(f.source_figure) or '(not stated)'}"
                         + ("" if f.consistent else " — differs"))
        for e in s.evidence:
            lines.append(f"- \"{_md(e.quote)}\" — {_md(e.title)}, `{e.source}` chars {e.start}–{e.end}")
        lines.append("")
    if report.references:
        lines += ["## The draft's reference list", ""]
        for r in report.references:
            where = ", ".join(f"`{x}`" for x in r.sources) or "not in the corpus"
            lines.append(f"{r.n}. {_md(r.raw)} → {where} ({_md(r.note)})")
        lines.append("")
    return "\n".join(lines)


def to_jsonl(report: AuditReport) -> str:
    return "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in report.sentences)
