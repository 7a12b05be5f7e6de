"""Source sentences as quotable units: exact spans, footnote markers trimmed, list items tied
to their intro line ("Target trough levels:"), pronoun-led sentences tied to the sentence
before, and the figures (numbers with units) each sentence states."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kb.types import Chunk, Span

# A trailing footnote marker: "... kidney survival. 1", "... in adult cases 2."
_FOOTNOTE = re.compile(r"(?<=[A-Za-z\)\].%'’])\s+\d{1,2}\.?$")
# Words a trailing number belongs to ("stage 3", "type 2", "at least 12"): not a footnote.
_NUMBER_WORDS = frozenset("""stage type grade class phase week day month year cycle
level version part step to of by from than at is was were are be about approximately over under
and or vs least most nearly around only exactly covid""".split())
_LIST_MARKER = re.compile(r"^\s*(?:[•▪◦●*\-–]|\d{1,2}[.)])\s*$")
# Pronoun-led sentences need the sentence before them to be understood.
_ANAPHOR = re.compile(r"^(?:(?:for example|however|in addition|also|then|therefore|thus),?\s+)?"
                      r"(?:it|its|this(?! case)|these|they|their|the drug|the dosage|the dose|such)\b",
                      re.IGNORECASE)
# Punkt keeps "... cyclosporine A. Cyclophosphamide is ..." as one sentence (it reads "A." as an
# initial); in running text a single capital after a lower-case word ends the sentence.
_MISSED_BREAK = re.compile(r"(?<=[a-z]{3} [A-Z])\.\s+(?=[A-Z][a-z]+\s)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Sentence:
    """One citable sentence of a chunk. `start:end` is exact in the document text, with a
    trailing footnote marker left out; `intro` is the list intro it needs, `lead` the
    sentence a pronoun refers to."""

    source: str
    chunk_id: str
    index: int
    start: int
    end: int
    text: str
    section: str
    is_list_item: bool = False
    intro: Span | None = None
    lead: Span | None = None
    heading: str = ""  # headings inside the chunk above the sentence (with the section)
    intros: tuple[Span, ...] = ()  # the intro, its own intro, ... (nested lists)
    context: tuple[Span, ...] = ()  # every span whose words tell what this one is about

    @property
    def is_question(self) -> bool:
        return self.text.rstrip().endswith("?")

    @property
    def ends_with_colon(self) -> bool:
        return self.text.rstrip().endswith(":")

    def quote_span(self) -> Span:
        """The exact span to cite: from the intro or lead sentence through this one."""
        start = min(s[0] for s in (self.intro, self.lead, (self.start, self.end)) if s)
        return start, self.end


def trim_footnote(text: str, start: int, end: int) -> int:
    """New end of text[start:end] without a trailing footnote number."""
    segment = text[start:end]
    m = _FOOTNOTE.search(segment)
    if not m:
        return end
    before = segment[: m.start()].rstrip()
    last_word = re.findall(r"[A-Za-z]+", before[-20:])
    if last_word and last_word[-1].lower() in _NUMBER_WORDS:
        return end
    return start + len(before)


def _split_missed(text: str, spans: tuple[Span, ...]) -> list[Span]:
    out: list[Span] = []
    for a, b in spans:
        for m in _MISSED_BREAK.finditer(text, a, b):
            out.append((a, m.start() + 1))
            a = m.end()
        out.append((a, b))
    return out


def _line_prefix(text: str, start: int) -> str:
    return text[text.rfind("\n", 0, start) + 1:start]


def _indent(prefix: str) -> int:
    return len(prefix) - len(prefix.lstrip(" \t"))


def refine_spans(text: str, spans: tuple[Span, ...], section: str = "") -> tuple[Span, ...]:
    """Final citable sentence spans, computed once at ingest (never re-split when answering):
    Punkt's missed breaks split, trailing footnote markers trimmed, and a page title glued to
    the first sentence ("...FSGS PatientsThere was...") left out."""
    out = [(a, trim_footnote(text, a, b)) for a, b in _split_missed(text, spans)]
    out = [(a, b) for a, b in out if b > a]
    if out and len(section) > 10 and text.startswith(section, out[0][0]):
        a, b = out[0]
        rest = a + len(section)
        while rest < b and text[rest].isspace():
            rest += 1
        if rest < b and text[rest].isupper():
            out[0] = (rest, b)
    return tuple(out)


def chunk_sentences(text: str, chunk: Chunk) -> list[Sentence]:
    """The chunk's sentences (document `text`, spans fixed at ingest), with list intros and
    pronoun leads resolved."""
    spans = [(a, b) for a, b in chunk.sentences if b > a]
    prefixes = [_line_prefix(text, a) for a, _ in spans]
    is_item = [bool(_LIST_MARKER.match(p)) and p.strip() != "" for p in prefixes]
    at_line_start = [p.strip() == "" or bool(_LIST_MARKER.match(p)) for p in prefixes]
    indents = [_indent(p) if at_line_start[i] else -1 for i, p in enumerate(prefixes)]
    # Chunks start at a section boundary: lines before the first sentence are its headings
    # ("First-Line Approach..." then "Calcineurin Inhibitors (CNIs)").
    head = text[chunk.start:spans[0][0]] if spans else ""
    head_lines = [ln.strip() for ln in head.splitlines() if ln.strip() and not _LIST_MARKER.match(ln)]
    out: list[Sentence] = []
    for i, (a, b) in enumerate(spans):
        intro = None
        if is_item[i]:
            for j in range(i - 1, -1, -1):
                sj = text[spans[j][0]:spans[j][1]].rstrip()
                if sj.endswith(":") and (j == i - 1 or not is_item[j] or indents[j] < indents[i]):
                    intro = spans[j]
                    break
                if not is_item[j] or indents[j] < indents[i]:
                    break  # a paragraph, or a parent item without a colon: no intro
        lead = None
        if i > 0 and _ANAPHOR.match(text[a:b]) and "\n\n" not in text[spans[i - 1][1]:a]:
            lead = spans[i - 1]
        heading = " / ".join(dict.fromkeys(h for h in (chunk.section, *head_lines) if h))
        out.append(Sentence(source=chunk.source, chunk_id=chunk.chunk_id, index=i, start=a, end=b,
                            text=text[a:b], section=chunk.section, is_list_item=is_item[i],
                            intro=intro, lead=lead, heading=heading))
    # Nested lists: an intro's own intro ("For CNI-resistant patients:" > "Refer to ...:" > item)
    # and an intro's pronoun lead also say what an item is about.
    by_span = {(s.start, s.end): s for s in out}
    done: list[Sentence] = []
    for s in out:
        chain: list[Span] = []
        cur = s.intro
        while cur is not None and cur not in chain and len(chain) < 4:
            chain.append(cur)
            parent = by_span.get(cur)
            cur = parent.intro if parent else None
        context = [*chain, *([s.lead] if s.lead else [])]
        context += [by_span[c].lead for c in chain if c in by_span and by_span[c].lead]
        done.append(replace(s, intros=tuple(chain), context=tuple(dict.fromkeys(context))))
    return done


def normalise_space(s: str) -> str:
    return " ".join(s.split())


_BULLETS = re.compile(r"(?m)^\s*(?:[•▪◦●*]|-(?=\s)|\d{1,2}[.)](?=\s))\s*")
# In-text reference numbers ("as shown [12]") would read as our citation markers: not shown.
REF_MARK = re.compile(r"\s?\[\d+(?:\s*[,–\-]\s*\d+)*\]")


def comparable(s: str) -> str:
    """Text without list markers, in-text reference numbers and runs of whitespace: how a
    displayed quote is compared with its source span."""
    return normalise_space(_BULLETS.sub(" ", REF_MARK.sub("", s)).replace("•", " "))


def numbers(s: str) -> list[str]:
    """Every number written in `s` ("3-5 mg/kg" -> ["3", "5"]; "0.05" stays one number)."""
    return [n.rstrip(".,") for n in _NUMBER.findall(s)]


# ---------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class Figure:
    start: int  # absolute offsets of the figure phrase in the document
    end: int
    text: str  # verbatim phrase, e.g. "2-4 mg/kg/day", "8 mg/kg or less", "more than 9 months"
    values: tuple[float, ...]
    unit: str  # normalised by kb.quantities ("mg/kg/day", "%", "week", ...; "" when none)
    kind: str = ""  # kb.quantities kind: percent, dose, concentration, duration, count, ...


def figures(doc_text: str, start: int, end: int) -> list[Figure]:
    """The figures of doc_text[start:end], read by the project's one number/unit parser
    (kb.quantities)."""
    from kb.quantities import quantities

    out: list[Figure] = []
    for q in quantities(doc_text, start, end):
        values = (q.low,) if q.high == q.low else (q.low, q.high)
        out.append(Figure(start=q.start, end=q.end, text=normalise_space(q.text), values=values,
                          unit=q.unit, kind=q.kind))
    return out
