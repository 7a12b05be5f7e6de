"""Data types of a draft audit (`python -m kb audit`, the UI's "Check a draft" view): frozen
dataclasses, like kb/types.py, kept apart so the answerer's types can change independently.

Verdicts (exactly one per sentence; VERDICTS is the one place they are defined):
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kb.evidence import Evidence

SUPPORTED_BY_CITED = "supported-by-cited"
SUPPORTED_ELSEWHERE = "supported-elsewhere"
NUMBERS_DIFFER = "numbers-differ"
NOT_FOUND = "not-found"
NO_CLAIM = "no-claim"

# verdict -> (short label for badges, what it means). The order is the order of precedence.
VERDICTS: dict[str, tuple[str, str]] = {
    SUPPORTED_BY_CITED: ("Supported by the cited source",
                         "a passage of a cited document has the sentence's key terms, entities and "
                         "figures (figures within the source's range, in comparable units)"),
    NUMBERS_DIFFER: ("Numbers differ",
                     "a passage on the same subject (of the cited document first) gives a different "
                     "figure for the same kind of quantity; both figures are shown"),
    SUPPORTED_ELSEWHERE: ("Supported by another source only",
                          "no cited document supports it (or it cites none, or its citation could not "
                          "be resolved), but another document of the corpus does"),
    NOT_FOUND: ("Not found in the corpus",
                "no passage of the corpus has the sentence's key terms, entities and figures"),
    NO_CLAIM: ("No claim to check",
               "a heading, a question, a transition or a sentence with too few content words"),
}
SUPPORTED = frozenset({SUPPORTED_BY_CITED, SUPPORTED_ELSEWHERE})

# Citation resolution statuses.
RESOLVED, AMBIGUOUS, UNRESOLVED = "resolved", "ambiguous", "unresolved"


@dataclass(frozen=True)
class DraftReference:
    """One entry of the draft's own reference list ("2. Cattran DC. Cyclosporine in ...")."""

    n: int
    raw: str  # == draft[start:end]
    start: int
    end: int
    sources: tuple[str, ...] = ()  # corpus documents it names
    status: str = UNRESOLVED
    note: str = ""  # how it was resolved, or why not

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "raw": self.raw, "start": self.start, "end": self.end,
                "sources": list(self.sources), "status": self.status, "note": self.note}


@dataclass(frozen=True)
class AuditCitation:
    """A citation as written in a sentence, and the corpus documents it resolves to."""

    text: str  # as written: "[2,3]", "(Cattran et al., 2003)", "doi:10.1053/...", a quoted title
    start: int  # offsets in the draft
    end: int
    kind: str  # "numbered", "author-year", "doi", "pmid", "title"
    sources: tuple[str, ...] = ()  # resolved corpus documents (empty = unresolved)
    status: str = UNRESOLVED  # RESOLVED, AMBIGUOUS (several documents match) or UNRESOLVED
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "kind": self.kind,
                "sources": list(self.sources), "status": self.status, "note": self.note}


@dataclass(frozen=True)
class FigureCheck:
    """A figure of the sentence against the closest comparable figure of a passage."""

    claim: str  # as written in the sentence, e.g. "70%"
    source_figure: str  # as written in the source, e.g. "40-50%" ("" = no comparable figure)
    source: str  # document of the passage
    start: int  # offsets of source_figure in that document
    end: int
    consistent: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuditSentence:
    index: int
    text: str  # == draft[start:end]
    start: int
    end: int
    claim: str  # the sentence without its citations: what is checked
    verdict: str  # a key of VERDICTS
    reason: str
    citations: tuple[AuditCitation, ...] = ()
    evidence: tuple[Evidence, ...] = ()  # best passages, the one the verdict rests on first
    figures: tuple[FigureCheck, ...] = ()

    @property
    def resolved_sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for c in self.citations for s in c.sources))

    @property
    def citation_text(self) -> str:
        return " ".join(c.text for c in self.citations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "sentence": self.text, "start": self.start, "end": self.end,
            "claim": self.claim, "citation": self.citation_text,
            "citations": [c.to_dict() for c in self.citations],
            "resolved_source": list(self.resolved_sources), "verdict": self.verdict,
            "label": VERDICTS[self.verdict][0], "reason": self.reason,
            "evidence": [dict(e.__dict__, missing=list(e.missing)) for e in self.evidence],
            "figures": [f.to_dict() for f in self.figures],
        }


@dataclass(frozen=True)
class AuditReport:
    name: str  # the draft's file name ("" for pasted text)
    text: str  # the draft text all sentence offsets refer to
    sentences: tuple[AuditSentence, ...] = ()
    references: tuple[DraftReference, ...] = ()
    titles: dict[str, str] = field(default_factory=dict)  # source -> title, for display

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for s in self.sentences:
            out[s.verdict] += 1
        return out
