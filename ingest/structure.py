"""Splits a document's text into typed blocks (headings, paragraphs, list items, boilerplate,
metadata, references) without changing a character: every block is a span of the text."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from ingest.boilerplate import METADATA_SECTION, REFERENCES_HEADING, is_boilerplate

HEADING, PARAGRAPH, LIST_ITEM = "heading", "paragraph", "list_item"
BOILERPLATE, METADATA, REFERENCE = "boilerplate", "metadata", "reference"
CONTENT_KINDS = frozenset({HEADING, PARAGRAPH, LIST_ITEM})

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_LIST_ITEM = re.compile(r"^(\s*)(?:[-*•+▪◦‣·]|\d{1,3}[.)]|[a-z][.)])\s+\S")
LIST_MARKER = re.compile(r"\s*(?:[-*•+▪◦‣·]|\d{1,3}[.)]|[a-z][.)])\s+")
# A Vancouver/APA-style reference: "...Journal. 2011;48(3):201-9." or "... 2014;2014."
_CITATION = re.compile(r"\b(19|20)\d\d\s*[;:]\s*\w")
_AUTHOR_START = re.compile(r"^[A-Z][A-Za-z'’\-]+(?: [A-Z][A-Za-z'’\-]+)* [A-Z]{1,3}[,.]")
_MIN_REFERENCE_RUN = 3
_LINE_BREAK = re.compile(r"\r\n|[\n\r\f]")


@dataclass(frozen=True)
class Block:
    start: int
    end: int
    kind: str
    indent: int = 0  # list nesting, in leading spaces

    def text(self, doc: str) -> str:
        return doc[self.start:self.end]


def _lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every line, without its line break; handles \\n, \\r\\n, \\r and \\f."""
    pos = 0
    for m in _LINE_BREAK.finditer(text):
        yield pos, m.start()
        pos = m.end()
    yield pos, len(text)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _looks_like_heading(line: str, next_line: str | None) -> bool:
    s = line.strip()
    if _MD_HEADING.match(line):
        return True
    if not s or len(s) > 120 or len(s.split()) > 16 or s.count(",") > 2:
        return False
    if not (s[0].isupper() or s[0].isdigit()):
        return False
    if s[-1] in ".;:,":
        return False
    # A hard-wrapped paragraph continues in lower case; a heading's content does not.
    if next_line is not None and next_line.strip()[:1].islower():
        return False
    return True


def _raw_blocks(text: str) -> list[Block]:
    """Headings, list items and paragraphs (consecutive plain lines) before classification."""
    lines = [(a, b) for a, b in _lines(text)]
    blocks: list[Block] = []
    para: tuple[int, int] | None = None
    item: Block | None = None

    def flush() -> None:
        nonlocal para, item
        for b in (para, item):
            if b is not None:
                if isinstance(b, Block):
                    blocks.append(b)
                else:
                    blocks.append(Block(b[0], b[1], PARAGRAPH))
        para, item = None, None

    for i, (a, b) in enumerate(lines):
        line = text[a:b]
        if not line.strip():
            flush()
            continue
        nxt = next((text[x:y] for x, y in lines[i + 1:i + 2] if text[x:y].strip()), None)
        indent = len(line) - len(line.lstrip())
        s, e = _trim(text, a, b)
        m = _LIST_ITEM.match(line)
        if m:
            flush()
            item = Block(s, e, LIST_ITEM, indent)
            continue
        if item is not None and indent > item.indent:
            item = Block(item.start, e, LIST_ITEM, item.indent)  # continuation of the item
            continue
        if para is not None and text[para[0]:para[1]].rstrip()[-1:] in ".?!:;)\"”":
            # One paragraph per line (web text) unless the line was wrapped mid-sentence.
            flush()
        if para is None and _looks_like_heading(line, nxt):
            flush()
            blocks.append(Block(s, e, HEADING))
            continue
        if item is not None:
            flush()
        para = (para[0], e) if para else (s, e)
    flush()
    return blocks


_BYLINE_NAME = re.compile(r"^[A-Z][\w'’.\-]*(?: [A-Z][\w'’.\-]*){0,4}$")


def _is_byline(t: str) -> bool:
    """An author line: three or more comma-separated capitalised names, no sentence."""
    parts = [p.strip() for p in re.split(r",| and ", t.strip().rstrip("."))]
    return len(parts) >= 3 and all(_BYLINE_NAME.match(p) for p in parts if p)


def _is_keywords(t: str) -> bool:
    """A keyword line: short lower-case phrases separated by semicolons."""
    parts = [p.strip() for p in t.strip().rstrip(".").split(";")]
    return len(parts) >= 2 and all(0 < len(p.split()) <= 6 for p in parts) and t.strip()[:1].islower()


def _is_citation(block_text: str) -> bool:
    t = " ".join(block_text.split())
    return bool(_CITATION.search(t)) and len(t) < 600


def classify(text: str) -> list[Block]:
    """Blocks in document order, each with its final kind."""
    blocks = _raw_blocks(text)
    out: list[Block] = []
    section_kind = ""  # "" | METADATA | REFERENCE: set by a heading, ended by the next one
    for blk in blocks:
        t = blk.text(text)
        plain = t.strip().lstrip("#").strip()
        if blk.kind == HEADING:
            if is_boilerplate(plain):
                out.append(Block(blk.start, blk.end, BOILERPLATE))
                section_kind = ""
                continue
            if METADATA_SECTION.match(plain):
                section_kind = METADATA
                out.append(Block(blk.start, blk.end, METADATA))
                continue
            if REFERENCES_HEADING.match(t.strip()):
                section_kind = REFERENCE
                out.append(Block(blk.start, blk.end, METADATA))  # the heading itself
                continue
            if section_kind == REFERENCE and not _MD_HEADING.match(t):
                # Plain-text reference lists use short lines ("Guideline", "Research")
                # that look like headings; the list runs on until furniture or a real heading.
                out.append(Block(blk.start, blk.end, REFERENCE))
                continue
            section_kind = ""
            out.append(blk)
            continue
        if is_boilerplate(t):
            out.append(Block(blk.start, blk.end, BOILERPLATE, blk.indent))
            if section_kind == REFERENCE:
                section_kind = ""
            continue
        if section_kind:
            out.append(Block(blk.start, blk.end, section_kind, blk.indent))
            continue
        if blk.kind == PARAGRAPH and (_is_byline(t) or _is_keywords(t)):
            out.append(Block(blk.start, blk.end, METADATA))
            continue
        out.append(blk)
    return _mark_reference_runs(text, _mark_repeats(text, out))


def _mark_repeats(text: str, blocks: list[Block]) -> list[Block]:
    """A long block repeated verbatim in one document (a repeated disclaimer) is kept once."""
    seen: set[str] = set()
    out = []
    for blk in blocks:
        key = " ".join(blk.text(text).split()).lower()
        if blk.kind in CONTENT_KINDS and len(key) >= 60 and key in seen:
            out.append(Block(blk.start, blk.end, BOILERPLATE, blk.indent))
            continue
        seen.add(key)
        out.append(blk)
    return out


def _mark_reference_runs(text: str, blocks: list[Block]) -> list[Block]:
    """A run of >= 3 citation-shaped paragraphs is a reference list even without a heading
    (the case report's 26 references follow its keywords line directly)."""
    out = list(blocks)
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and out[j].kind == PARAGRAPH and _is_citation(out[j].text(text)):
            j += 1
        if j - i >= _MIN_REFERENCE_RUN:
            for k in range(i, j):
                out[k] = Block(out[k].start, out[k].end, REFERENCE, out[k].indent)
            i = j
        else:
            i += 1
    return out
