"""Parses the blocks marked as references into Reference records (authors, title, journal,
year). Vancouver-style entries ("Kim JS, Han BG. Title. Journal. 2016;2016:1630365.") are one
block each; plain-text lists ("Research" / title / "Journal, 2001") span several short blocks."""
from __future__ import annotations

import hashlib
import re

from ingest.structure import REFERENCE, Block
from kb.types import Document, Reference

_YEAR = re.compile(r"\b((?:19|20)\d\d)\b")
_VANCOUVER_YEAR = re.compile(r"(?:^|\.\s*)((?:19|20)\d\d)\b[^.]*?[;:]")
_SOURCE_LINE = re.compile(r"^(?P<journal>.+?),\s*(?P<year>(?:19|20)\d\d)\.?$")
_AUTHOR = re.compile(r"^(?:[A-Z][A-Za-z'’\-]+(?: [A-Z][A-Za-z'’\-]+)* [A-Z]{1,3}|et al)$")
_SEGMENT_SPLIT = re.compile(r"\.\s+(?=[A-Z0-9\"“(])")
# Labels some sites put above each entry ("Guideline", "Research").
_TYPE_LABEL = re.compile(
    r"^(guideline|research|review|meta-analysis|systematic review|trial|study|article|book|website)s?$",
    re.IGNORECASE,
)


def _ref_id(source: str, start: int, end: int) -> str:
    return hashlib.sha1(f"{source}\x00{start}\x00{end}".encode("utf-8")).hexdigest()[:16]


def _split_authors(segment: str) -> tuple[str, ...] | None:
    names = [n.strip() for n in segment.split(",")]
    if names and all(_AUTHOR.match(n) for n in names if n):
        return tuple(n for n in names if n and n != "et al")
    return None


def parse_vancouver(raw: str) -> tuple[tuple[str, ...], str, str, int | None]:
    """(authors, title, journal, year) of one Vancouver-style entry; fields it cannot find
    stay empty rather than guessed."""
    text = " ".join(raw.split())
    year_match = None
    for m in _VANCOUVER_YEAR.finditer(text):
        year_match = m
    year = int(year_match.group(1)) if year_match else None
    head = text[: year_match.start(1)].rstrip(" .") if year_match else text.rstrip(".")
    segments = [s.strip() for s in _SEGMENT_SPLIT.split(head) if s.strip()]
    authors: tuple[str, ...] = ()
    if segments:
        found = _split_authors(segments[0])
        if found is not None:
            authors = found
            segments = segments[1:]
    journal = segments[-1] if len(segments) >= 2 else ""
    title_parts = segments[:-1] if journal else segments
    return authors, ". ".join(title_parts), journal, year


def parse_references(doc: Document, blocks: list[Block]) -> list[Reference]:
    text = doc.text
    refs: list[tuple[int, int, tuple[str, ...], str, str, int | None]] = []
    pending: list[Block] = []  # lines of a multi-line entry seen so far

    def flush_pending() -> None:
        lines = [b for b in pending if not _TYPE_LABEL.match(b.text(text).strip())]
        pending.clear()
        if not lines:
            return
        start, end = lines[0].start, lines[-1].end
        title = " ".join(lines[0].text(text).split()).rstrip(".")
        journal, year = "", None
        if len(lines) > 1:
            m = _SOURCE_LINE.match(" ".join(lines[-1].text(text).split()))
            if m:
                journal, year = m.group("journal"), int(m.group("year"))
        refs.append((start, end, (), title, journal, year))

    for blk in blocks:
        if blk.kind != REFERENCE:
            flush_pending()
            continue
        raw = blk.text(text)
        one_line = " ".join(raw.split())
        if _VANCOUVER_YEAR.search(one_line) and len(one_line) > 40:
            flush_pending()
            authors, title, journal, year = parse_vancouver(raw)
            refs.append((blk.start, blk.end, authors, title, journal, year))
            continue
        if _TYPE_LABEL.match(one_line) and any(not _TYPE_LABEL.match(b.text(text).strip()) for b in pending):
            flush_pending()  # a label opens the next entry
        pending.append(blk)
        if _SOURCE_LINE.match(one_line):
            flush_pending()  # "Journal, 2001" closes an entry
    flush_pending()

    return [
        Reference(
            ref_id=_ref_id(doc.source, s, e),
            doc_id=doc.doc_id,
            source=doc.source,
            n=i,
            raw=text[s:e],
            start=s,
            end=e,
            authors=authors,
            title=title,
            journal=journal,
            year=year,
        )
        for i, (s, e, authors, title, journal, year) in enumerate(refs, start=1)
    ]
