"""Answer -> HTML pieces for the chat UI. Pure functions, no Streamlit.

Everything that came from a document (titles, quotes, passages, whole texts) goes through
`html.escape` here and is shown with `st.html`, which does no Markdown processing: tags,
Markdown links or <script> inside a source are displayed as text, never rendered or run.
Short text for Streamlit's Markdown widgets (st.warning, st.caption) goes through `md_escape`.

Anchors tie the pieces together without JavaScript: `[n]` links to its passage card
(`#{mid}-c{n}`), and "View in document" links to the `<mark id>` of the cited span inside a
closed <details> full-text view; Chromium opens a <details> when a link targets something
inside it and scrolls the span into view, inner scroll box included.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from kb.instructions import WARNING as INSTRUCTION_WARNING
from kb.render import citation_warnings
from kb.types import Answer, AnswerSentence, Citation, ComparisonRow, Document, Filters, Span
from ui import Turn

DOC_VIEW_LIMIT = 150_000  # characters of a full-text view; longer documents show a window
PASSAGE_PAD = 220  # context either side of a quote, cut at sentence boundaries
PASSAGE_MAX = 520  # a chunk up to this long is shown whole

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
_MARKER = re.compile(r"\[(\d{1,3})\]")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_ENDS = ".!?:;"  # a passage cut right after one of these needs no ellipsis


def esc(text: object) -> str:
    """HTML-escape, quotes included (safe inside attributes too); form feeds (PDF page
    breaks) become line breaks."""
    return html.escape(str(text), quote=True).replace("\f", "\n")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown punctuation so st.warning / st.caption show text as text."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# ---------------------------------------------------------------- highlighting

@dataclass(frozen=True)
class Mark:
    """A span to highlight: absolute offsets into the document text; `anchor` is the element
    id links scroll to; `label` (e.g. "1") is shown as a small [n] before the span."""

    start: int
    end: int
    anchor: str = ""
    label: str = ""


def highlight(text: str, marks: Sequence[Mark], offset: int = 0) -> str:
    """HTML of `text` (which starts at absolute `offset`) with every mark wrapped in
    <mark class="kb-hl">. Overlapping marks are split into segments so each span stays
    highlighted; the first segment of a span carries its id."""
    lo, hi = offset, offset + len(text)
    spans = [Mark(max(m.start, lo), min(m.end, hi), m.anchor, m.label)
             for m in marks if m.end >= lo and m.start <= hi and m.start <= m.end]
    cuts = sorted({lo, hi, *(m.start for m in spans), *(m.end for m in spans)})
    out: list[str] = []
    for a, b in zip(cuts, cuts[1:] + [hi]):
        starting = [m for m in spans if m.start == a]
        ids: list[str] = []
        for m in starting:
            if m.label:
                out.append(f'<sup class="kb-hl-n">[{esc(m.label)}]</sup>')
            if m.anchor:
                ids.append(m.anchor)
        if b <= a:
            out.extend(f'<span class="kb-anchor" id="{esc(i)}"></span>' for i in ids)
            continue
        piece = esc(text[a - lo:b - lo])
        if any(m.start <= a < m.end for m in spans):
            first, rest = (ids[0], ids[1:]) if ids else ("", [])
            out.extend(f'<span class="kb-anchor" id="{esc(i)}"></span>' for i in rest)
            id_attr = f' id="{esc(first)}"' if first else ""
            out.append(f'<mark class="kb-hl"{id_attr}>{piece}</mark>')
        else:
            out.extend(f'<span class="kb-anchor" id="{esc(i)}"></span>' for i in ids)
            out.append(piece)
    return "".join(out)


_BOUNDARY = re.compile(r"(?<=[.!?;:])\s+|\n+")


def _snap_left(text: str, i: int, limit: int) -> int:
    """Move a window start forward to the first sentence (or line) start before `limit`,
    else to the next word, so a passage never begins mid-word."""
    m = _BOUNDARY.search(text, i, limit)
    if m:
        return m.end()
    w = re.compile(r"\s").search(text, i, limit)
    return w.end() if w else i


def _snap_right(text: str, i: int, limit: int) -> int:
    ends = [m.start() for m in _BOUNDARY.finditer(text, limit, i)]
    if ends:
        return ends[-1]
    j = max(text.rfind(" ", limit, i), text.rfind("\n", limit, i))
    return j if j > limit else i


def passage_bounds(text: str, start: int, end: int, chunk: Span | None = None,
                   pad: int = PASSAGE_PAD, max_chars: int = PASSAGE_MAX) -> Span:
    """The passage shown with a quote: its chunk when that is short, otherwise the sentences
    around the quote (about `pad` characters either side, within the chunk if known)."""
    lo, hi = 0, len(text)
    if chunk is not None and chunk[0] <= start and end <= chunk[1]:
        lo, hi = chunk
        if hi - lo <= max_chars:
            return lo, hi
    a = _snap_left(text, max(lo, start - pad), start) if start - lo > pad else lo
    b = _snap_right(text, min(hi, end + pad), end) if hi - end > pad else hi
    a, b = min(a, start), max(b, end)
    while a < start and text[a].isspace():
        a += 1
    while b > end and text[b - 1].isspace():
        b -= 1
    return a, b


def doc_window(n_chars: int, marks: Sequence[Mark], limit: int = DOC_VIEW_LIMIT) -> Span:
    """Which part of a document the full-text view shows: all of it up to `limit` characters,
    else a `limit`-sized window starting a little before the first highlighted span."""
    if n_chars <= limit:
        return 0, n_chars
    first = min((m.start for m in marks), default=0)
    a = max(0, min(first - limit // 10, n_chars - limit))
    return a, a + limit


# ---------------------------------------------------------------- badges

_EVIDENCE_CLASSES = (
    ("peer-reviewed", "kb-ev-strong"), ("guideline", "kb-ev-guideline"),
    ("trial", "kb-ev-strong"), ("meta-analysis", "kb-ev-strong"), ("systematic", "kb-ev-strong"),
    ("case report", "kb-ev-case"), ("patient", "kb-ev-weak"), ("not peer reviewed", "kb-ev-weak"),
)


def evidence_class(level: str) -> str:
    low = level.lower()
    return next((cls for key, cls in _EVIDENCE_CLASSES if key in low), "kb-ev-other")


def badges(doc_type: str, evidence: str, year: int | None, extra: Iterable[str] = ()) -> str:
    parts = []
    if doc_type:
        parts.append(f'<span class="kb-badge kb-type">{esc(doc_type)}</span>')
    if evidence:
        parts.append(f'<span class="kb-badge {evidence_class(evidence)}" title="evidence level">'
                     f'{esc(evidence)}</span>')
    parts.append(f'<span class="kb-badge kb-year">{esc(year) if year else "undated"}</span>')
    parts.extend(f'<span class="kb-meta">{esc(x)}</span>' for x in extra if x)
    return f'<div class="kb-badges">{"".join(parts)}</div>'


# ---------------------------------------------------------------- answer body

def _cite_links(numbers: Iterable[int], mid: str) -> str:
    return "".join(f'<a class="kb-cite" href="#{esc(mid)}-c{n}" title="source [{n}]">[{n}]</a>'
                   for n in numbers)


def _sentence_html(s: AnswerSentence, mid: str) -> str:
    body = esc(s.text.strip())
    if not s.supported:
        body = (f'<span class="kb-unsupported" title="Not supported by the cited sources">{body}</span>'
                '<span class="kb-flag" title="Not supported by the cited sources">unverified</span>')
    return f'<span class="kb-sent">{body}{_cite_links(s.citations, mid)}</span>'


def _linked_text(text: str, mid: str) -> str:
    """Plain answer text with its [n] markers turned into links (answers without sentences)."""
    return _MARKER.sub(lambda m: _cite_links([int(m.group(1))], mid), esc(text))


def _sections_html(answer: Answer, mid: str) -> str:
    """An extractive answer from its structure: a heading per section, one bullet per quote
    (each unit followed by its [n] link, then the source's evidence label), "Sources differ"
    lines naming what differs and each side's figure."""
    out: list[str] = ['<div class="kb-answer">']
    warnings = citation_warnings(answer.citations)
    for sec in answer.sections:
        if sec.label:
            note = f" — {esc(sec.note)}" if not sec.quotes and sec.note else ""
            out.append(f'<div class="kb-section">{esc(sec.label)}{note}</div>')
        if not sec.quotes:
            continue
        out.append("<ul>")
        if sec.label == "Sources differ":
            leads: dict[str, list] = {}
            for q in sec.quotes:
                leads.setdefault(q.lead, []).append(q)
            for lead, qs in leads.items():
                sides = " vs ".join(f"{esc(q.shown)}{_cite_links([q.citation], mid)}" for q in qs)
                out.append(f"<li>{esc(lead)}: {sides}</li>")
        else:
            for q in sec.quotes:
                units = " ".join(f'<span class="kb-sent">{esc(u)}{_cite_links([q.citation], mid)}</span>'
                                 for u in q.units)
                label = f' <span class="kb-muted">— {esc(q.evidence)}</span>' if q.evidence else ""
                label += "".join(f' <span class="kb-warn kb-inline">⚠ {esc(w)}</span>'
                                 for w in warnings.get(q.citation, ()))
                out.append(f"<li>{units}{label}</li>")
        out.append("</ul>")
    out.append("</div>")
    return "".join(out)


def answer_html(answer: Answer, mid: str) -> str:
    """The answer as paragraphs grouped by section, each sentence followed by its [n] links.
    Extractive answers are rendered from their structure (sections -> quotes -> citations)."""
    if answer.sections:
        return _sections_html(answer, mid)
    if not answer.sentences:
        return f'<div class="kb-answer"><p>{_linked_text(answer.text, mid)}</p></div>'
    # Extractive sentences come from different places: one per bullet reads honestly; a
    # model's prose (other modes) stays a paragraph.
    open_tag, close_tag, item = (("<ul>", "</ul>", "<li>{}</li>") if answer.mode == "extractive"
                                 else ("<p>", "</p>", "{} "))
    out: list[str] = ['<div class="kb-answer">']
    section: str | None = None
    for s in answer.sentences:
        if s.section != section:
            if section is not None:
                out.append(close_tag)
            if s.section:
                out.append(f'<div class="kb-section">{esc(s.section)}</div>')
            out.append(open_tag)
            section = s.section
        out.append(item.format(_sentence_html(s, mid)))
    out.append(close_tag + "</div>")
    return "".join(out)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def comparison_html(rows: Sequence[ComparisonRow], mid: str,
                    documents: Mapping[str, Document] | None = None) -> str:
    """The comparison as a table; consecutive rows of one entity share its cell. The source
    column names the document by title when it is known, with its [n] link."""
    if not rows:
        return ""
    documents = documents or {}
    head = "".join(f"<th>{h}</th>" for h in ("Compared", "Finding", "Figure", "Source", "Evidence"))
    body = []
    for i, r in enumerate(rows):
        cells = []
        if i == 0 or rows[i - 1].entity != r.entity:
            span = 1
            while i + span < len(rows) and rows[i + span].entity == r.entity:
                span += 1
            cells.append(f'<td class="kb-entity" rowspan="{span}">{esc(r.entity)}</td>')
        doc = documents.get(r.source)
        name = doc.meta.title if doc is not None and doc.meta.title else r.source
        level = r.evidence.split(" (")[0]
        cells.append(f"<td>{esc(r.finding)}</td>")
        cells.append(f'<td class="kb-figure">{esc(r.figure)}</td>')
        cells.append(f'<td class="kb-src-cell">{_cite_links([r.n], mid)} '
                     f'<span class="kb-muted" title="{esc(r.source)}">{esc(_short(name))}</span></td>')
        cells.append(f'<td><span class="kb-badge {evidence_class(r.evidence)}" title="{esc(r.evidence)}">'
                     f"{esc(level)}</span></td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="kb-cmp-wrap"><table class="kb-cmp"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def search_terms_html(terms: Sequence[str]) -> str:
    if not terms:
        return ""
    chips = "".join(f'<span class="kb-term">{esc(t)}</span>' for t in terms)
    return f'<div class="kb-terms"><span class="kb-muted">Searched for</span> {chips}</div>'


def filters_summary(f: Filters) -> str:
    """One line of text, e.g. 'case report; 2015-2025' ('' when nothing is filtered)."""
    parts = [", ".join(f.doc_types), ", ".join(f.evidence_levels)]
    if f.year_min is not None or f.year_max is not None:
        parts.append(f"{f.year_min or '…'}–{f.year_max or '…'}")
    parts.append(", ".join(f.sources))
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------- sources panel

def _group_by_document(citations: Sequence[Citation]) -> list[tuple[str, list[Citation]]]:
    groups: dict[str, list[Citation]] = {}
    for c in citations:
        groups.setdefault(c.source, []).append(c)
    return list(groups.items())


def _quote_matches(doc: Document | None, c: Citation) -> bool:
    return doc is not None and 0 <= c.start <= c.end <= len(doc.text) and doc.text[c.start:c.end] == c.quote


def _planted_html(doc: Document, flagged: Sequence[Span], a: int, b: int, known: Sequence[str] = ()) -> str:
    """A warning for each flagged span (text addressing the reader or a model) shown in
    doc.text[a:b], quoting its start so the reader knows which text it is."""
    out = []
    for x, y in flagged:
        if x < b and a < y and INSTRUCTION_WARNING not in known:
            snippet = " ".join(doc.text[x:y].split())
            snippet = snippet if len(snippet) <= 90 else snippet[:87].rstrip() + "…"
            out.append(f'<div class="kb-warn">⚠ {esc(INSTRUCTION_WARNING)}: “{esc(snippet)}”</div>')
    return "".join(out)


def _passage_html(c: Citation, doc: Document | None, passages: Mapping[str, Span], mid: str,
                  ids: str, flagged: Sequence[Span] = ()) -> str:
    """One cited passage with the quote highlighted, plus a link into the full-text view."""
    where = [f"[{c.n}]"] if ids == "c" else []
    page = doc.page_at(c.start) if doc is not None else None
    if page:
        where.append(f"p. {page}")
    if c.section:
        where.append(c.section)
    head = f'<div class="kb-passage-head">{esc(" · ".join(where))}</div>' if where else ""
    if _quote_matches(doc, c):
        assert doc is not None
        a, b = passage_bounds(doc.text, c.start, c.end, passages.get(c.chunk_id))
        body = _BLANK_LINES.sub("\n", highlight(doc.text[a:b], [Mark(c.start, c.end)], offset=a))
        cut_left = a > 0 and doc.text[a - 1] not in "\n\f" and doc.text[max(0, a - 80):a].rstrip()[-1:] not in _ENDS
        cut_right = b < len(doc.text) and doc.text[b] not in "\n\f" and doc.text[b - 1] not in _ENDS
        body = ("…" if cut_left else "") + body + ("…" if cut_right else "")
        planted = _planted_html(doc, flagged, a, b, c.warnings)  # in the context shown around the quote
        link = f'<a class="kb-open" href="#{esc(mid)}-{ids}m{c.n}">View in document ↓</a>'
    else:  # offsets do not match the text we hold (e.g. a stale index): show the quote only
        planted = ""
        body = f'<mark class="kb-hl">{esc(c.quote)}</mark>'
        link = '<span class="kb-muted">quoted text not found at its offsets in the document</span>'
    warn = "".join(f'<div class="kb-warn">⚠ {esc(w)}</div>' for w in c.warnings) + planted
    return (f'<div class="kb-passage" id="{esc(mid)}-{ids}{c.n}">{head}{warn}'
            f'<div class="kb-passage-text">{body}</div>{link}</div>')


def _doc_view_html(doc: Document, cites: Sequence[Citation], anchor_prefix: str, view_id: str,
                   ids: str, flagged: Sequence[Span] = ()) -> str:
    marks = [Mark(c.start, c.end, f"{anchor_prefix}-{ids}m{c.n}", str(c.n) if ids == "c" else "")
             for c in cites if _quote_matches(doc, c)]
    a, b = doc_window(len(doc.text), marks)
    note = ""
    if (a, b) != (0, len(doc.text)):
        note = (f'<div class="kb-muted">Showing characters {a:,}–{b:,} of {len(doc.text):,} '
                "(the document is too long to show whole).</div>")
    note += _planted_html(doc, flagged, a, b)
    return (f'<details class="kb-doc" id="{esc(view_id)}"><summary>Full document '
            f'({len(doc.text):,} characters)</summary>{note}'
            f'<div class="kb-doctext">{highlight(doc.text[a:b], marks, offset=a)}</div></details>')


def sources_html(turn: Turn, mid: str, *, closest: bool = False) -> str:
    """Cards of the cited documents (or, for an abstention, the closest passages): title, type,
    evidence level and year, each cited passage with its span highlighted, and the full text."""
    cites = turn.answer.closest if closest else turn.answer.citations
    ids = "x" if closest else "c"
    cards = []
    for d, (source, group) in enumerate(_group_by_document(cites)):
        doc = turn.documents.get(source)
        first = group[0]
        meta = doc.meta if doc is not None else None
        title = (meta.title if meta and meta.title else first.title) or source
        doc_type = meta.doc_type if meta else first.doc_type
        evidence = meta.shown_evidence if meta else first.evidence
        year = meta.year if meta else first.year
        extra = [meta.publisher if meta else "", source]
        flagged = turn.flagged.get(source, ())
        passages = "".join(_passage_html(c, doc, turn.passages, mid, ids, flagged) for c in group)
        view = _doc_view_html(doc, group, mid, f"{mid}-{ids}d{d}", ids, flagged) if doc is not None else ""
        cards.append(f'<div class="kb-src"><div class="kb-src-title">{esc(title)}</div>'
                     f'{badges(doc_type, evidence, year, extra)}{passages}{view}</div>')
    label = "Closest passages found (not judged to answer the question)" if closest else "Sources"
    return f'<div class="kb-sources"><div class="kb-sources-label">{label}</div>{"".join(cards)}</div>'


# ---------------------------------------------------------------- style

CSS = """
<style>
.kb-answer { font-size: 1rem; line-height: 1.7; }
.kb-answer p { margin: 0 0 .6rem 0; }
.kb-answer ul { margin: 0 0 .5rem 0; padding-left: 1.1rem; }
.kb-answer li { margin: 0 0 .3rem 0; }
.kb-section { font-weight: 650; font-size: .8rem; letter-spacing: .04em; text-transform: uppercase;
  color: #4f46e5; margin: .9rem 0 .15rem 0; }
.kb-cite { display: inline-block; font-size: .7rem; font-weight: 650; line-height: 1.25;
  padding: 0 .28rem; margin-left: .15rem; border-radius: .3rem; vertical-align: super;
  background: rgba(79, 70, 229, .12); color: #4338ca !important; text-decoration: none !important; }
.kb-cite:hover { background: rgba(79, 70, 229, .25); }
.kb-unsupported { text-decoration: underline wavy rgba(217, 119, 6, .9); text-underline-offset: 3px; }
.kb-flag { font-size: .65rem; font-weight: 650; text-transform: uppercase; margin-left: .3rem;
  padding: .05rem .3rem; border-radius: .25rem; background: rgba(217, 119, 6, .15); color: #b45309; }
.kb-cmp-wrap { overflow-x: auto; margin: .4rem 0 .8rem 0; }
table.kb-cmp { border-collapse: collapse; width: 100%; font-size: .88rem; }
table.kb-cmp th { text-align: left; font-weight: 650; font-size: .75rem; text-transform: uppercase;
  letter-spacing: .03em; opacity: .75; border-bottom: 2px solid rgba(128,128,128,.35); padding: .45rem .6rem; }
table.kb-cmp td { border-bottom: 1px solid rgba(128,128,128,.2); padding: .45rem .6rem; vertical-align: top; }
td.kb-entity { font-weight: 650; width: 13rem; }
td.kb-src-cell { width: 14rem; }
table.kb-cmp td .kb-badge { white-space: nowrap; }
td.kb-figure { font-variant-numeric: tabular-nums; font-weight: 600; white-space: nowrap; }
.kb-sources { max-height: 78vh; overflow-y: auto; padding-right: .35rem; }
.kb-sources-label { font-weight: 650; font-size: .8rem; letter-spacing: .04em; text-transform: uppercase;
  opacity: .7; margin: .6rem 0 .3rem 0; }
.kb-src { border: 1px solid rgba(128,128,128,.25); border-radius: .6rem; padding: .7rem .9rem;
  margin: 0 0 .6rem 0; background: rgba(128,128,128,.03); }
.kb-src-title { font-weight: 650; line-height: 1.35; }
.kb-badges { margin: .3rem 0 .2rem 0; display: flex; flex-wrap: wrap; gap: .3rem; align-items: center; }
.kb-badge { font-size: .72rem; padding: .08rem .5rem; border-radius: 999px; background: rgba(128,128,128,.14); }
.kb-type { background: rgba(14, 116, 144, .13); color: #0e7490; }
.kb-ev-strong { background: rgba(22, 163, 74, .14); color: #15803d; }
.kb-ev-guideline { background: rgba(37, 99, 235, .13); color: #1d4ed8; }
.kb-ev-case { background: rgba(217, 119, 6, .15); color: #b45309; }
.kb-ev-weak { background: rgba(107, 114, 128, .16); color: #4b5563; }
.kb-meta { font-size: .72rem; opacity: .65; }
.kb-passage { border-left: 3px solid rgba(79,70,229,.45); padding: .35rem .75rem; margin: .5rem 0;
  background: rgba(128,128,128,.05); border-radius: 0 .4rem .4rem 0; scroll-margin-top: 5rem; }
.kb-passage:target { outline: 2px solid rgba(79,70,229,.6); }
.kb-passage-head { font-size: .72rem; font-weight: 650; opacity: .7; margin-bottom: .15rem; }
.kb-passage-text { font-size: .9rem; line-height: 1.6; white-space: pre-line; }
mark.kb-hl { background: rgba(250, 204, 21, .45); color: inherit; padding: 0 .08rem; border-radius: .15rem;
  scroll-margin-top: 4rem; }
mark.kb-hl:target { outline: 2px solid rgba(217, 119, 6, .9); }
.kb-anchor { scroll-margin-top: 4rem; }
.kb-hl-n { font-size: .65rem; font-weight: 700; color: #4338ca; margin-right: .1rem; }
.kb-open { font-size: .78rem; text-decoration: none !important; }
details.kb-doc { margin-top: .4rem; }
details.kb-doc summary { cursor: pointer; font-size: .78rem; opacity: .8; }
.kb-doctext { max-height: 24rem; overflow-y: auto; white-space: pre-wrap; font-size: .85rem; line-height: 1.55;
  border: 1px solid rgba(128,128,128,.25); border-radius: .4rem; padding: .7rem .9rem; margin-top: .4rem; }
.kb-terms { margin: .2rem 0 .6rem 0; font-size: .85rem; }
.kb-term { display: inline-block; font-family: ui-monospace, monospace; font-size: .78rem;
  padding: .05rem .45rem; margin: .1rem .2rem; border-radius: .3rem; background: rgba(128,128,128,.14); }
.kb-muted { opacity: .65; font-size: .8rem; }
.kb-warn { font-size: .8rem; font-weight: 600; margin: .2rem 0; padding: .15rem .45rem; border-radius: .3rem;
  background: rgba(217, 119, 6, .15); color: #b45309; }
.kb-warn.kb-inline { display: inline; font-size: .75rem; margin-left: .3rem; }
</style>
"""
