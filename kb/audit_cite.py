"""Citations as people write them, and which corpus documents they name.

- numbered `[2]`, `[2,3]`, `[2-4]`: through the draft's own reference list ("2. Smith AB.
  Cyclosporine in ..."); without one they are unresolvable;
- author-year `(Smith 2011)`, `(Smith et al., 2011)`, `Smith (2011)`: through the
  catalogue's authors and year, and through the reference lists parsed out of corpus documents
  (an entry's title that is a corpus document's title);
- a DOI or a PMID: through the catalogue;
- a document title in quotes: by normalised title.

A citation that names no document is reported with the reason; nothing is guessed. One that
names several (two documents by the same author and year) is "ambiguous" and lists them all.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from kb.audit_types import AMBIGUOUS, RESOLVED, UNRESOLVED, AuditCitation, DraftReference
from kb.types import Document, Reference

# -- the draft's reference list ----------------------------------------------------------------
_REF_HEADING = re.compile(r"(?im)^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?(?:references|reference list|bibliography|"
                          r"works cited|literature cited|sources)(?:\*\*)?[ \t]*:?[ \t]*$")
_REF_ENTRY = re.compile(r"^[ \t]*(?:\[(?P<b>\d{1,3})\]|(?P<n>\d{1,3})[.)])[ \t]+(?P<body>\S.*)$")
_YEAR = re.compile(r"(?<!\d)(?:1[89]|20)\d{2}(?!\d)")


@dataclass(frozen=True)
class _Entry:
    n: int
    start: int
    end: int


def _lines(text: str, start: int) -> list[tuple[int, int]]:
    out, pos = [], start
    for line in text[start:].splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((pos, pos + len(body)))
        pos += len(line)
    return out


def _entries(text: str, start: int) -> list[_Entry]:
    """Numbered entries from `start` on; an unnumbered line continues the entry above it."""
    entries: list[_Entry] = []
    for a, b in _lines(text, start):
        line = text[a:b]
        m = _REF_ENTRY.match(line)
        if m:
            entries.append(_Entry(int(m.group("b") or m.group("n")), a + m.start("body"), b))
        elif line.strip() and entries and not _REF_HEADING.match(line):
            entries[-1] = _Entry(entries[-1].n, entries[-1].start, b)
    return entries


def split_references(text: str) -> tuple[int, list[_Entry]]:
    """(where the body of the draft ends, the numbered entries of its reference list). The list
    is what follows a "References" heading, or else a closing run of numbered lines that each
    give a year (as reference entries do)."""
    heads = list(_REF_HEADING.finditer(text))
    if heads:
        head = heads[-1]
        entries = _entries(text, head.end())
        if entries:
            return head.start(), entries
    lines = _lines(text, 0)
    i = len(lines)
    while i > 0 and not text[lines[i - 1][0]:lines[i - 1][1]].strip():
        i -= 1
    j = i
    while j > 0:
        line = text[lines[j - 1][0]:lines[j - 1][1]]
        if not line.strip():
            j -= 1
            continue
        m = _REF_ENTRY.match(line)
        if not m or not _YEAR.search(line):
            break
        j -= 1
    tail = [ln for ln in lines[j:i] if _REF_ENTRY.match(text[ln[0]:ln[1]])]
    if len(tail) >= 2 or (tail and j > 0 and not text[lines[j - 1][0]:lines[j - 1][1]].strip()):
        start = tail[0][0]
        return start, _entries(text, start)
    return len(text), []


# -- normalising -------------------------------------------------------------------------------

def normalise(s: str) -> str:
    s = re.sub(r"['’‘`´]", "", s)  # "Don’t" and "Don't" read the same
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s).split())


def surname(author: str) -> str:
    """ "Smith AB" -> "smith"; "Mei Ling Tan" -> "tan"; "Smith, A. B." -> "smith"."""
    author = author.strip()
    if "," in author:
        return normalise(author.split(",")[0])
    parts = author.split()
    if len(parts) >= 2 and re.fullmatch(r"[A-Z]{1,3}\.?|(?:[A-Z]\.){1,3}", parts[-1]):
        return normalise(" ".join(parts[:-1]))  # "Smith AB", "Van Der Berg AB"
    return normalise(parts[-1]) if parts else ""


def _doi(s: str) -> str:
    return s.strip().lower().removeprefix("https://doi.org/").removeprefix("doi:").rstrip(".")


# -- resolving against the corpus ----------------------------------------------------------------

class Resolver:
    """Resolves citations against the documents of an index and their parsed reference lists."""

    def __init__(self, documents: Sequence[Document], references: Sequence[Reference]) -> None:
        self.documents = list(documents)
        self.references = list(references)
        self._titles = {d.source: normalise(d.meta.title) for d in self.documents if d.meta.title}

    def by_title(self, title: str) -> list[str]:
        """Documents whose normalised title equals `title`'s, or is contained in it (an entry
        "Smith AB. Drug X in the ... . Kidney J. 2011") when at least 4 words long."""
        t = normalise(title)
        if not t:
            return []
        exact = [s for s, dt in self._titles.items() if dt == t]
        if exact:
            return exact
        within = [s for s, dt in self._titles.items() if len(dt.split()) >= 4 and f" {dt} " in f" {t} "]
        # "Focal segmental glomerulosclerosis (FSGS)" is inside a longer matching title: that one is meant.
        return [s for s in within if not any(o != s and f" {self._titles[s]} " in f" {self._titles[o]} "
                                             and self._titles[s] != self._titles[o] for o in within)]

    def by_doi(self, doi: str) -> list[str]:
        return [d.source for d in self.documents if d.meta.doi and _doi(d.meta.doi) == _doi(doi)]

    def by_pmid(self, pmid: str) -> list[str]:
        return [d.source for d in self.documents if d.meta.pmid and d.meta.pmid.strip() == pmid.strip()]

    def by_author_year(self, name: str, year: int) -> tuple[list[str], str]:
        """(documents, how) for a first-author surname and a year."""
        key = normalise(name)
        direct = [d.source for d in self.documents if d.meta.authors and surname(d.meta.authors[0]) == key
                  and d.meta.year == year]
        if direct:
            return direct, "catalogue authors and year"
        via: list[str] = []
        titles: list[str] = []
        for r in self.references:
            if r.authors and surname(r.authors[0]) == key and r.year == year:
                titles.append(r.title)
                via.extend(s for s in self.by_title(r.title) if s not in via)
        if via:
            return via, "title of a matching entry in a corpus document's reference list"
        undated = [d.source for d in self.documents if d.meta.authors and surname(d.meta.authors[0]) == key
                   and d.meta.year is None]
        if undated:
            return [], (f"{name} is the first author of {', '.join(undated)}, but the catalogue gives no "
                        f"year to confirm {year}")
        if titles:
            return [], (f"corpus reference lists cite {name} {year} as \"{titles[0]}\", which is not in the corpus")
        return [], f"no corpus document by {name} from {year}"

    def entry(self, raw: str) -> tuple[list[str], str]:
        """(documents, how) for a free-text reference entry."""
        m = DOI.search(raw)
        if m:
            found = self.by_doi(m.group(0))
            if found:
                return found, "DOI"
        m = PMID.search(raw)
        if m:
            found = self.by_pmid(m.group(1))
            if found:
                return found, "PMID"
        found = self.by_title(raw)
        if found:
            return found, "title"
        m = re.match(r"\s*([A-Z][A-Za-z'\-]+(?:\s+[A-Z][A-Za-z'\-]+)*?)(?:\s+[A-Z]{1,3}\b|,)", raw)
        year = _YEAR.search(raw)
        if m and year:
            found, how = self.by_author_year(m.group(1), int(year.group(0)))
            if found:
                return found, how
        return [], "it names no document of the corpus (no matching DOI, PMID, title, or author and year)"


def _status(sources: Sequence[str]) -> str:
    return RESOLVED if len(sources) == 1 else AMBIGUOUS if sources else UNRESOLVED


def resolve_references(text: str, entries: Iterable[_Entry], resolver: Resolver) -> list[DraftReference]:
    out = []
    for e in entries:
        raw = text[e.start:e.end]
        found, how = resolver.entry(raw)
        note = f"by {how}" if found else how
        out.append(DraftReference(n=e.n, raw=raw, start=e.start, end=e.end, sources=tuple(found),
                                  status=_status(found), note=note))
    return out


# -- citations in a sentence ---------------------------------------------------------------------
NUMBERED = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:[,;]|[-–])\s*\d{1,3})*)\s*\]")
DOI = re.compile(r"\b10\.\d{4,9}/[^\s\]\)>;,\"]+[^\s\]\)>;,\".]")
PMID = re.compile(r"\bPMID\s*:?\s*(\d{1,9})\b", re.IGNORECASE)
_NAME = r"[A-Z][A-Za-z'’\-]+(?:\s+(?:van|de|der|von|den|da|del|la|le)\s+[A-Z][A-Za-z'’\-]+)?"
_AUTHOR_YEAR_ONE = re.compile(
    rf"(?P<name>{_NAME})(?:\s+(?:and|&)\s+{_NAME}|\s+et\s+al\.?)?,?\s+(?P<year>(?:1[89]|20)\d{{2}})[a-z]?")
PAREN = re.compile(r"\((?P<body>[^()]{4,200})\)")
NARRATIVE = re.compile(rf"(?P<name>{_NAME})(?:\s+(?:and|&)\s+{_NAME}|\s+et\s+al\.?)?\s+\((?P<year>(?:1[89]|20)\d{{2}})[a-z]?\)")
QUOTED = re.compile(r"[\"“](?P<title>[^\"”]{12,300})[\"”]")
DOI_PREFIX = re.compile(r"(?:\bdoi\s*:?\s*|https?://(?:dx\.)?doi\.org/)$", re.IGNORECASE)


def _expand(group: str) -> list[int]:
    nums: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group):
        m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            nums.extend(range(a, b + 1) if 0 <= b - a < 30 else (a, b))
        elif part.strip().isdigit():
            nums.append(int(part))
    return list(dict.fromkeys(nums))


def find_citations(text: str, start: int, end: int, references: Sequence[DraftReference],
                   resolver: Resolver, has_reference_list: bool) -> list[AuditCitation]:
    """Every citation inside text[start:end], resolved, in reading order."""
    found: list[AuditCitation] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return not any(a < y and x < b for x, y in taken)

    def add(c: AuditCitation) -> None:
        found.append(c)
        taken.append((c.start, c.end))

    by_n = {r.n: r for r in references}
    for m in NUMBERED.finditer(text, start, end):
        nums = _expand(m.group(1))
        sources: list[str] = []
        notes = []
        for n in nums:
            ref = by_n.get(n)
            if ref is None:
                notes.append(f"[{n}]: " + ("no such entry in the draft's reference list" if has_reference_list
                                            else "the draft has no reference list to resolve it"))
            elif not ref.sources:
                notes.append(f"[{n}] \"{_short(ref.raw)}\": {ref.note}")
            else:
                sources.extend(s for s in ref.sources if s not in sources)
                notes.append(f"reference {n} \"{_short(ref.raw)}\" {ref.note}")
        add(AuditCitation(text=m.group(0), start=m.start(), end=m.end(), kind="numbered", sources=tuple(sources),
                          status=_status(sources) if len(nums) == 1 or not sources else RESOLVED,
                          note="; ".join(notes)))
    for m in DOI.finditer(text, start, end):
        a = m.start()
        pre = DOI_PREFIX.search(text, max(start, a - 20), a)
        a = pre.start() if pre else a
        if not free(a, m.end()):
            continue
        sources = resolver.by_doi(m.group(0))
        add(AuditCitation(text=text[a:m.end()], start=a, end=m.end(), kind="doi", sources=tuple(sources),
                          status=_status(sources),
                          note="by DOI" if sources else f"no corpus document has DOI {m.group(0)}"))
    for m in PMID.finditer(text, start, end):
        if not free(m.start(), m.end()):
            continue
        sources = resolver.by_pmid(m.group(1))
        add(AuditCitation(text=m.group(0), start=m.start(), end=m.end(), kind="pmid", sources=tuple(sources),
                          status=_status(sources),
                          note="by PMID" if sources else f"no corpus document has PMID {m.group(1)}"))
    for m in NARRATIVE.finditer(text, start, end):
        a = m.start("year") - 1  # only "(2011)" is the citation; the name stays in the sentence
        if not free(a, m.end()):
            continue
        sources, how = resolver.by_author_year(m.group("name"), int(m.group("year")))
        add(AuditCitation(text=m.group(0), start=a, end=m.end(), kind="author-year", sources=tuple(sources),
                          status=_status(sources), note=f"by {how}" if sources else how))
    for m in PAREN.finditer(text, start, end):
        if not free(m.start(), m.end()):
            continue
        parts = [p.strip() for p in re.split(r";", m.group("body"))]
        hits = [_AUTHOR_YEAR_ONE.fullmatch(re.sub(r"^(?:see|e\.g\.,?|cf\.)\s+", "", p, flags=re.I)) for p in parts]
        if not parts or not all(hits):
            continue
        sources = []
        notes = []
        for h in hits:
            assert h is not None
            got, how = resolver.by_author_year(h.group("name"), int(h.group("year")))
            sources.extend(s for s in got if s not in sources)
            notes.append(f"{h.group(0)}: " + (f"{', '.join(got)} (by {how})" if got else how))
        add(AuditCitation(text=m.group(0), start=m.start(), end=m.end(), kind="author-year", sources=tuple(sources),
                          status=_status(sources) if len(hits) == 1 or not sources else RESOLVED,
                          note="; ".join(notes)))
    for m in QUOTED.finditer(text, start, end):
        if not free(m.start(), m.end()):
            continue
        sources = resolver.by_title(m.group("title"))
        if sources:
            add(AuditCitation(text=m.group(0), start=m.start(), end=m.end(), kind="title", sources=tuple(sources),
                              status=_status(sources), note="by title"))
    found.sort(key=lambda c: c.start)
    return found


def _short(s: str, n: int = 60) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def strip_citations(text: str, start: int, end: int, citations: Sequence[AuditCitation]) -> str:
    """The sentence text[start:end] without its citations (what is checked), tidied."""
    pieces, pos = [], start
    for c in sorted(citations, key=lambda c: c.start):
        if c.kind == "title":
            pieces.append(text[pos:c.start] + text[c.start + 1:c.end - 1])  # a title reads as words
        else:
            pieces.append(text[pos:c.start])
        pos = c.end
    pieces.append(text[pos:end])
    out = "".join(pieces)
    out = re.sub(r"\s+([.,;:!?])", r"\1", out)
    out = re.sub(r"\(\s*\)", "", out)
    return " ".join(out.split()).strip()
