"""Exports of one answer or a whole conversation. Pure functions: turns in, file text out.

- Markdown (teaching material): the answers with a numbered reference list. `[n]` markers are
  renumbered to the reference list's numbers, one per cited *document* across the export, so a
  conversation reads as one handout.
- BibTeX and RIS of the cited documents, from the catalogue metadata (nothing invented).
- Citation-audit CSV: one row per (answer sentence, citation) — the sentence, the source file,
  start/end offsets into the document text, the exact quote and the evidence level — so a
  reviewer can check every claim against `document_text[start:end]`.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Sequence

from kb.render import unmatched_line
from kb.types import Citation, DocMeta
from ui import Turn

# ---------------------------------------------------------------- the reference list


@dataclass(frozen=True)
class RefEntry:
    number: int
    source: str
    meta: DocMeta


def _meta_for(turn: Turn, c: Citation) -> DocMeta:
    doc = turn.documents.get(c.source)
    if doc is not None:
        return doc.meta
    return DocMeta(title=c.title, year=c.year, doc_type=c.doc_type, evidence_level=c.evidence, flags=c.flags)


def _venue(m: DocMeta) -> str:
    """The journal when known (PubMed records, HTML citation tags), else the publisher."""
    return m.journal or m.publisher


def reference_list(turns: Sequence[Turn]) -> list[RefEntry]:
    """Every cited document once, numbered in order of first citation. The closest passages of
    an abstention are not citations and are left out."""
    refs: dict[str, RefEntry] = {}
    for turn in turns:
        for c in turn.answer.citations:
            if c.source not in refs:
                refs[c.source] = RefEntry(len(refs) + 1, c.source, _meta_for(turn, c))
    return list(refs.values())


# ---------------------------------------------------------------- Markdown

_MD_INLINE = re.compile(r"([\\`*_\[\]<>|])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+[.)])")


def md_inline(text: str) -> str:
    """Markdown showing `text` literally inside a line: whitespace collapsed, link, emphasis
    and HTML characters escaped."""
    return _MD_INLINE.sub(r"\\\1", " ".join(str(text).split()))


def md_line(text: str) -> str:
    """Like md_inline, for text that starts a line: no accidental heading, quote or list."""
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), md_inline(text))


def _ref_markers(numbers: Sequence[int], turn: Turn, doc_number: dict[str, int]) -> str:
    by_n = {c.n: c for c in turn.answer.citations}
    refs: list[int] = []
    for n in numbers:
        c = by_n.get(n)
        k = doc_number.get(c.source) if c is not None else None
        if k is not None and k not in refs:
            refs.append(k)
    return "".join(f"[{k}]" for k in refs)


def _turn_markdown(turn: Turn, index: int | None, doc_number: dict[str, int]) -> list[str]:
    a = turn.answer
    title = f"Q{index}. " if index is not None else ""
    lines = [f"## {title}{md_inline(turn.question)}", ""]
    if turn.filters is not None and not turn.filters.is_empty():
        from ui.render import filters_summary

        lines += [f"*Filters: {md_inline(filters_summary(turn.filters))}*", ""]
    if a.error:
        return lines + [f"> {md_inline(a.error)}", ""]
    if a.abstained:
        lines += [md_line(a.text or "The indexed sources have no passage that answers this question."), ""]
        if a.search_terms:
            lines += ["Searched for: " + ", ".join(f"`{t.replace('`', '')}`" for t in a.search_terms), ""]
        return lines
    section: str | None = None
    para: list[str] = []
    warned = {c.n: c.warnings for c in a.citations if c.warnings}  # source changed, planted text
    for s in a.sentences:
        if s.section != section:
            if para:
                lines += [" ".join(para), ""]
                para = []
            if s.section:
                lines += [f"### {md_inline(s.section)}", ""]
            section = s.section
        text = (md_inline(s.text) if para else md_line(s.text)) + _ref_markers(s.citations, turn, doc_number)
        shown = dict.fromkeys(w for n in s.citations for w in warned.get(n, ()))
        text += "".join(f" *(⚠ {md_inline(w)})*" for w in shown)
        para.append(text if s.supported else text + " *(unverified)*")
    if para:
        lines += [" ".join(para), ""]
    if not a.sentences and a.text:
        lines += [md_line(a.text), ""]
    if a.comparison:
        lines += ["| Compared | Finding | Figure | Source | Evidence |", "|---|---|---|---|---|"]
        for r in a.comparison:
            cells = (r.entity, r.finding, r.figure)
            lines.append("| " + " | ".join(md_inline(x) for x in cells)
                         + f" | {_ref_markers([r.n], turn, doc_number)} | {md_inline(r.evidence)} |")
        lines.append("")
    lines += [f"> **Note:** {md_inline(n)}" for n in a.notes] + ([""] if a.notes else [])
    if unmatched := unmatched_line(a):
        lines += [f"*{md_inline(unmatched)}*", ""]
    return lines


def _reference_markdown(ref: RefEntry) -> str:
    m = ref.meta
    parts = []
    if m.authors:
        parts.append(md_inline(", ".join(m.authors)) + ".")
    parts.append(f"*{md_inline(m.title or ref.source)}*.")
    venue = _venue(m)
    if venue:
        parts.append(md_inline(venue) + ("" if venue.endswith(".") else "."))
    if m.year and str(m.year) not in venue:
        parts.append(f"{m.year}.")
    if m.doi:
        parts.append(f"doi:{md_inline(m.doi)}.")
    if m.pmid:
        parts.append(f"PMID {md_inline(m.pmid)}.")
    if m.url:
        parts.append(f"<{m.url.replace('>', '%3E')}>" if m.url.startswith(("http://", "https://")) else md_inline(m.url))
    kind = "; ".join(x for x in (m.doc_type, m.shown_evidence) if x)
    tail = f" — {md_inline(kind)}." if kind else ""
    return f"{ref.number}. " + " ".join(parts) + tail + f" File: `{ref.source.replace('`', '')}`"


def to_markdown(turns: Sequence[Turn], *, title: str = "FSGS knowledge base — answers") -> str:
    refs = reference_list(turns)
    doc_number = {r.source: r.number for r in refs}
    lines = [f"# {md_inline(title)}", "",
             "*Each sentence is a quotation from the cited source; the evidence level of every "
             "source is given in the reference list. Not a substitute for clinical judgement.*", ""]
    single = len(turns) == 1
    for i, turn in enumerate(turns, start=1):
        lines += _turn_markdown(turn, None if single else i, doc_number)
    if refs:
        lines += ["## References", ""] + [_reference_markdown(r) for r in refs] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------- BibTeX

_ARTICLE_TYPES = {"review", "case report", "article", "research article", "trial", "clinical trial",
                  "randomized controlled trial", "meta-analysis", "systematic review", "cohort study"}
_BIB_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def bib_escape(text: str) -> str:
    """A BibTeX field value: braces become parentheses (an unbalanced brace breaks the whole
    file), backslashes and LaTeX specials are escaped, whitespace collapsed."""
    s = " ".join(str(text).split()).replace("{", "(").replace("}", ")")
    s = s.replace("\\", r"\textbackslash{}")
    return "".join(_BIB_SPECIAL.get(ch, ch) for ch in s)


def _ascii_word(text: str) -> str:
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", norm.lower())


_STOP = {"a", "an", "the", "of", "in", "on", "for", "and", "what", "is", "if", "to", "with"}


def _bib_key(ref: RefEntry, used: set[str]) -> str:
    m = ref.meta
    who = _ascii_word(_surname(m.authors[0])) if m.authors and m.authors[0].split() else ""
    who = who or _ascii_word((_venue(m).split() or [""])[0]) or "doc"
    word = next((_ascii_word(w) for w in m.title.split() if _ascii_word(w) and _ascii_word(w) not in _STOP), "")
    base = f"{who}{m.year or 'nd'}{word}"[:40] or f"ref{ref.number}"
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}{chr(ord('a') + n - 2) if n <= 27 else n}"
    used.add(key)
    return key


def _surname(name: str) -> str:
    """'Cattran DC' -> Cattran (Vancouver); 'Adaeze Okafor' -> Okafor (given names first)."""
    parts = name.replace(",", " ").split()
    if "," in name or (len(parts) >= 2 and len(parts[-1]) <= 4 and parts[-1].isalpha() and parts[-1].isupper()):
        return parts[0]
    return parts[-1] if parts else ""


def _person(name: str, *, ris: bool = False) -> str:
    """'Cattran DC' (Vancouver) -> 'Cattran, D. C.'; other forms are kept as they are."""
    parts = name.split()
    if "," not in name and len(parts) >= 2 and len(parts[-1]) <= 4 and parts[-1].isalpha() and parts[-1].isupper():
        initials = ("." if ris else ". ").join(parts[-1]) + "."
        return f"{' '.join(parts[:-1])}, {initials}"
    return name.strip()


def _is_article(m: DocMeta) -> bool:
    return bool(m.doi or m.pmid or m.doc_type.lower() in _ARTICLE_TYPES) and bool(_venue(m))


def to_bibtex(turns: Sequence[Turn]) -> str:
    used: set[str] = set()
    entries = []
    for ref in reference_list(turns):
        m = ref.meta
        kind = "article" if _is_article(m) else "misc"
        fields: list[tuple[str, str]] = []
        if m.authors:
            fields.append(("author", " and ".join(bib_escape(_person(a)) for a in m.authors)))
        fields.append(("title", "{" + bib_escape(m.title or ref.source) + "}"))  # keep FSGS, CNI caps
        if _venue(m):
            fields.append(("journal" if kind == "article" else "howpublished", bib_escape(_venue(m))))
        if m.year:
            fields.append(("year", str(m.year)))
        if m.doi:
            fields.append(("doi", bib_escape(m.doi)))
        if m.pmid:
            fields.append(("pmid", bib_escape(m.pmid)))
        if m.url:
            fields.append(("url", bib_escape(m.url)))
        if m.mesh:
            fields.append(("keywords", bib_escape(", ".join(m.mesh))))
        note = "; ".join(x for x in (m.doc_type, f"evidence: {m.shown_evidence}" if m.shown_evidence else "",
                                     f"file: {ref.source}") if x)
        fields.append(("note", bib_escape(note)))
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
        entries.append(f"@{kind}{{{_bib_key(ref, used)},\n{body}\n}}\n")
    return "\n".join(entries)


# ---------------------------------------------------------------- RIS

def _ris_line(tag: str, value: str) -> str:
    return f"{tag}  - {' '.join(str(value).split())}"


def to_ris(turns: Sequence[Turn]) -> str:
    records = []
    for ref in reference_list(turns):
        m = ref.meta
        ty = "JOUR" if _is_article(m) else ("ELEC" if m.url else "GEN")
        lines = [_ris_line("TY", ty)]
        lines += [_ris_line("AU", _person(a, ris=True)) for a in m.authors]
        lines.append(_ris_line("TI", m.title or ref.source))
        if m.year:
            lines.append(_ris_line("PY", str(m.year)))
        if _venue(m):
            lines.append(_ris_line("JO" if ty == "JOUR" else "PB", _venue(m)))
        if m.doi:
            lines.append(_ris_line("DO", m.doi))
        if m.pmid:
            lines.append(_ris_line("AN", f"PMID: {m.pmid}"))
        if m.url:
            lines.append(_ris_line("UR", m.url))
        if m.doc_type:
            lines.append(_ris_line("KW", m.doc_type))
        lines += [_ris_line("KW", t) for t in m.mesh]
        note = "; ".join(x for x in (f"Evidence level: {m.shown_evidence}" if m.shown_evidence else "",
                                     f"File: {ref.source}") if x)
        lines.append(_ris_line("N1", note))
        lines.append("ER  - ")
        records.append("\r\n".join(lines))
    return "\r\n\r\n".join(records) + ("\r\n" if records else "")


# ---------------------------------------------------------------- citation-audit CSV

AUDIT_COLUMNS = ("question_no", "question", "part", "item_no", "sentence", "supported", "citation",
                 "source_file", "start", "end", "quote", "evidence_level", "title")


def _cell(value: object) -> object:
    """Spreadsheet-safe text: a leading = + - @ would be run as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def audit_rows(turns: Sequence[Turn]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(qi: int, turn: Turn, part: str, item: int, text: str, supported: bool,
            cites: Sequence[int]) -> None:
        by_n = {c.n: c for c in turn.answer.citations}
        base = {"question_no": qi, "question": turn.question, "part": part, "item_no": item,
                "sentence": text, "supported": "yes" if supported else "no"}
        found = [by_n[n] for n in cites if n in by_n]
        if not found:
            rows.append({**base, "citation": "", "source_file": "", "start": "", "end": "",
                         "quote": "", "evidence_level": "", "title": ""})
        for c in found:
            rows.append({**base, "citation": c.n, "source_file": c.source, "start": c.start,
                         "end": c.end, "quote": c.quote, "evidence_level": c.evidence,
                         "title": c.title})

    for qi, turn in enumerate(turns, start=1):
        a = turn.answer
        if a.error:
            add(qi, turn, "error", 1, a.error, True, ())
            continue
        if a.abstained:
            add(qi, turn, "abstained", 1, a.text, True, ())
            continue
        for i, s in enumerate(a.sentences, start=1):
            add(qi, turn, "answer", i, s.text, s.supported, s.citations)
        for i, r in enumerate(a.comparison, start=1):
            text = f"{r.entity}: {r.finding}" + (f" ({r.figure})" if r.figure else "")
            add(qi, turn, "table", i, text, True, (r.n,))
    return rows


def to_audit_csv(turns: Sequence[Turn]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=AUDIT_COLUMNS)
    writer.writeheader()
    for row in audit_rows(turns):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


# ---------------------------------------------------------------- what the UI offers


@dataclass(frozen=True)
class ExportFormat:
    key: str
    label: str
    extension: str
    mime: str
    render: Callable[[Sequence[Turn]], str]


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("md", "Markdown", "md", "text/markdown", to_markdown),
    ExportFormat("bib", "BibTeX", "bib", "application/x-bibtex", to_bibtex),
    ExportFormat("ris", "RIS", "ris", "application/x-research-info-systems", to_ris),
    ExportFormat("csv", "Audit CSV", "csv", "text/csv", to_audit_csv),
)
