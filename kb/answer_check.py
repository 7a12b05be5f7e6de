"""The checks every extractive answer must pass, used by the gold-set scorer and the tests.

Answer text format (written by kb/answer.py):
    **Heading**                           structure: no figures, no claims
    Sources differ:                       structure (a line ending in ":" with no marker)
    - quoted sentence [n] quoted sentence [n] — evidence label
    - attribute (subject): figure [n] vs figure [m]      (in a "Sources differ" block)
Every piece of text before a marker is supported by the citation(s) right after it; the text
after the last marker may only be a "— label" without figures.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.answer_text import comparable, numbers
from kb.types import Answer

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

MARKER = re.compile(r"\[(\d+)\]")
_HEADING = re.compile(r"^\*\*[^*]+\*\*$")
_DIFFER = "Sources differ"


@dataclass(frozen=True)
class CheckReport:
    uncited: tuple[str, ...] = ()  # text carrying no citation
    numbers_missing: tuple[str, ...] = ()  # "number in 'segment' not in quote [n]"
    quote_errors: tuple[str, ...] = ()  # quote != document span, or display != quote
    marker_errors: tuple[str, ...] = ()  # [n] without a citation n

    @property
    def ok(self) -> bool:
        return not (self.uncited or self.numbers_missing or self.quote_errors or self.marker_errors)


def _segments(line: str) -> tuple[list[tuple[str, tuple[int, ...]]], str]:
    """[(text, cited numbers)] for a line, plus the tail after the last marker."""
    out: list[tuple[str, tuple[int, ...]]] = []
    pos = 0
    pending_text = ""
    pending: list[int] = []
    for m in MARKER.finditer(line):
        between = line[pos:m.start()]
        if pending and between.strip():
            out.append((pending_text, tuple(pending)))
            pending_text, pending = "", []
        pending_text += between
        pending.append(int(m.group(1)))
        pos = m.end()
    if pending:
        out.append((pending_text, tuple(pending)))
    return out, line[pos:]


def check_structure(answer: Answer) -> CheckReport:
    """The invariants on an answer's structure (sections -> quotes -> citations): every quote
    cites a citation that exists; every unit shown is verbatim text of its cited quote (pieces
    between " … " / " • " each); every number shown is in the quote; and the text is the
    rendering of the structure."""
    from kb.render import to_markdown

    by_n = {c.n: c for c in answer.citations}
    missing: list[str] = []
    quote_errors: list[str] = []
    marker_errors: list[str] = []
    for sec in answer.sections:
        if numbers(sec.label):
            quote_errors.append(f"section heading {sec.label!r} states a figure")
        for q in sec.quotes:
            c = by_n.get(q.citation)
            if c is None:
                marker_errors.append(f"[{q.citation}] in section {sec.label!r} has no citation")
                continue
            quote = comparable(c.quote)
            quote_numbers = set(numbers(c.quote))
            for unit in (q.units or (q.shown,)):
                for x in numbers(unit):
                    if x not in quote_numbers:
                        missing.append(f"{x} in {unit[:80]!r} is not in quote [{c.n}]")
                for piece in re.split(r"[…•]", unit):
                    piece = comparable(piece)
                    if piece and piece not in quote:
                        quote_errors.append(f"{piece[:80]!r} is not in quote [{c.n}]")
    if answer.text != to_markdown(answer):
        quote_errors.append("answer text is not the rendering of its sections")
    return CheckReport((), tuple(missing), tuple(quote_errors), tuple(marker_errors))


def check_answer(answer: Answer, base: "KnowledgeBase | None" = None) -> CheckReport:
    """Every claim cited, every number in its quote, every quote exact. Abstentions and
    rejected questions carry no claims, so only their closest passages are checked. Extractive
    answers are checked on their structure; prose (the LLM mode) on its text."""
    quote_errors: list[str] = []
    by_n = {c.n: c for c in answer.citations}
    if base is not None:
        for c in (*answer.citations, *answer.closest):
            if base.document(c.source).text[c.start:c.end] != c.quote:
                quote_errors.append(f"[{c.n}] quote is not the document span {c.source}[{c.start}:{c.end}]")
    if answer.abstained or answer.error:
        return CheckReport(quote_errors=tuple(quote_errors))
    if answer.sections:
        structural = check_structure(answer)
        return CheckReport(structural.uncited, structural.numbers_missing,
                           (*quote_errors, *structural.quote_errors), structural.marker_errors)
    uncited: list[str] = []
    missing: list[str] = []
    marker_errors: list[str] = []
    block = ""
    for raw in answer.text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _HEADING.match(line) or (line.endswith(":") and not MARKER.search(line)):
            block = line
            if numbers(line):
                uncited.append(line)  # a heading stating a figure is an uncited claim
            continue
        segments, tail = _segments(line)
        if not segments:
            uncited.append(line)
            continue
        tail = tail.strip()
        if tail and (not tail.startswith("—") or numbers(tail)):
            uncited.append(tail)
        for text, ns in segments:
            cited = [by_n[n] for n in ns if n in by_n]
            for n in ns:
                if n not in by_n:
                    marker_errors.append(f"[{n}] in {line[:80]!r} has no citation")
            if not cited:
                continue
            quote_numbers = {x for c in cited for x in numbers(c.quote)}
            for x in numbers(text):
                if x not in quote_numbers:
                    missing.append(f"{x} in {text.strip()[:80]!r} is not in quote {list(ns)}")
            shown = text.strip().removeprefix("- ").strip()
            if block.startswith(_DIFFER):
                shown = re.split(r"^vs\s+|:\s|\svs\s", shown)[-1]
            quotes = [comparable(c.quote) for c in cited]
            for piece in re.split(r"[…•]", shown):  # each piece verbatim; elisions are marked
                piece = comparable(piece)
                if piece and not any(piece in q for q in quotes):
                    quote_errors.append(f"{piece[:80]!r} is not in quote {list(ns)}")
    return CheckReport(tuple(uncited), tuple(missing), tuple(quote_errors), tuple(marker_errors))
