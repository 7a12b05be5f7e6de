"""Renderers of an `Answer`'s structure (sections -> quotes -> citation numbers): one for
Markdown (`Answer.text`, exports) and one for the terminal (`python -m kb ask`). The UI has
its own HTML renderer (ui/render.py) over the same structure.

Markdown format (checked by kb/answer_check.py):
    **Heading**                           a compared entity; no figures, no claims
    **Heading — no passage in the corpus**
    - unit [n] unit [n] — evidence label  a quote: every unit is verbatim source text
    - unit [n] — evidence label — ⚠ warning   its citation's warnings (source changed, ...)
    Sources differ:
    - what differs: figure [n] vs figure [m]
"""
from __future__ import annotations

from typing import Mapping

from kb.types import Answer, AnswerQuote, AnswerSection, Citation

DIFFER = "Sources differ"
WARN = "⚠"


def _quote_line(q: AnswerQuote, warnings: Mapping[int, tuple[str, ...]]) -> str:
    body = " ".join(f"{u} [{q.citation}]" for u in q.units)
    line = f"- {body} — {q.evidence}" if q.evidence else f"- {body}"
    return "".join([line, *(f" — {WARN} {w}" for w in warnings.get(q.citation, ()))])


def citation_warnings(citations: tuple[Citation, ...]) -> dict[int, tuple[str, ...]]:
    """Citation number -> the warnings shown with its quotes (none for most)."""
    return {c.n: c.warnings for c in citations if c.warnings}


def _differ_lines(sec: AnswerSection) -> list[str]:
    leads: dict[str, list[AnswerQuote]] = {}
    for q in sec.quotes:
        leads.setdefault(q.lead, []).append(q)
    return [f"- {lead}: " + " vs ".join(f"{q.shown} [{q.citation}]" for q in qs) for lead, qs in leads.items()]


def to_markdown(answer: Answer) -> str:
    """The answer's text: from its sections when it has them, else its own text (abstentions,
    rejected questions and LLM prose carry their text as written)."""
    if not answer.sections:
        return answer.text
    lines: list[str] = []
    warnings = citation_warnings(answer.citations)
    for sec in answer.sections:
        if sec.label == DIFFER:
            lines.append(f"{DIFFER}:")
            lines += _differ_lines(sec)
            continue
        if not sec.quotes:
            lines.append(f"**{sec.label} — {sec.note}**")
            continue
        if sec.label:
            lines.append(f"**{sec.label}**")
        lines += [_quote_line(q, warnings) for q in sec.quotes]
    return "\n".join(lines)


def unmatched_line(answer: Answer) -> str:
    """For a reviewer: the question's key words that no quoted passage contains ("" when none),
    a hint that the answer may not address them (or says them in other words)."""
    if answer.abstained or not answer.unmatched:
        return ""
    return "Question words in no quoted passage: " + ", ".join(answer.unmatched)


def to_cli(answer: Answer) -> str:
    """Plain text for a terminal: the answer, then each citation with its source and offsets."""
    lines = [f"Q: {answer.question}", "", to_markdown(answer) if answer.sections else answer.text, ""]
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            label = c.evidence or c.doc_type or "source type not catalogued"
            lines.append(f"  [{c.n}] {c.title or c.source} ({c.source}, chars {c.start}-{c.end}) — {label}")
            lines.append(f"      \"{c.quote}\"")
            lines += [f"      {WARN} {w}" for w in c.warnings]
        lines.append("")
    if answer.abstained and answer.closest:
        lines.append("Closest passages (they do not answer the question):")
        for c in answer.closest:
            lines.append(f"  [{c.n}] {c.source} chars {c.start}-{c.end}: {' '.join(c.quote.split())[:200]}")
            lines += [f"      {WARN} {w}" for w in c.warnings]
        lines.append("")
    for note in answer.notes:
        lines.append(f"Note: {note}")
    if unmatched := unmatched_line(answer):
        lines.append(unmatched)
    if answer.search_terms:
        lines.append("Searched for: " + ", ".join(answer.search_terms))
    return "\n".join(lines).rstrip() + "\n"
