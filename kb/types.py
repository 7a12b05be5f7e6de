"""The data types every layer passes around (ingest -> kb -> ui).

All are frozen dataclasses so a value can be shared between threads (Streamlit sessions)
and cached without defensive copies. Offsets are character offsets into `Document.text`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Span = tuple[int, int]


PROVENANCE = ("catalogue", "pubmed", "inferred")  # where a metadata field's value came from


@dataclass(frozen=True)
class DocMeta:
    """Metadata of one source document; empty string / None / () = unknown."""

    title: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    publisher: str = ""  # journal or publishing organisation
    doi: str = ""
    pmid: str = ""
    url: str = ""
    doc_type: str = ""  # guideline summary, review, case report, patient information, ...
    evidence_level: str = ""
    journal: str = ""  # the journal, when the document is a journal article
    mesh: tuple[str, ...] = ()  # MeSH descriptors (PubMed records)
    publication_types: tuple[str, ...] = ()  # PubMed publication types, as PubMed writes them
    flags: tuple[str, ...] = ()  # e.g. ("retracted",), ("erratum",), ("type inferred",): shown with every citation
    # (field, "catalogue" | "pubmed" | "inferred") for each filled field: where its value came from
    provenance: tuple[tuple[str, str], ...] = ()

    @property
    def shown_evidence(self) -> str:
        """The evidence level as shown with a quote: a retraction or erratum flagged."""
        from kb.evidence_types import flagged_label

        return flagged_label(self.evidence_level, self.flags)

    def source_of(self, name: str) -> str:
        """Where field `name` came from ("" when unknown or empty)."""
        return dict(self.provenance).get(name, "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("authors", "mesh", "publication_types", "flags"):
            d[name] = list(getattr(self, name))
        d["provenance"] = dict(self.provenance)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DocMeta":
        year = d.get("year")
        prov = d.get("provenance") or {}
        pairs = prov.items() if isinstance(prov, dict) else (tuple(x) for x in prov)
        return cls(
            title=str(d.get("title") or ""),
            authors=tuple(str(a) for a in (d.get("authors") or ())),
            year=int(year) if year not in (None, "") else None,
            publisher=str(d.get("publisher") or ""),
            doi=str(d.get("doi") or ""),
            pmid=str(d.get("pmid") or ""),
            url=str(d.get("url") or ""),
            doc_type=str(d.get("doc_type") or ""),
            evidence_level=str(d.get("evidence_level") or ""),
            journal=str(d.get("journal") or ""),
            mesh=tuple(str(m) for m in (d.get("mesh") or ())),
            publication_types=tuple(str(m) for m in (d.get("publication_types") or ())),
            flags=tuple(str(f) for f in (d.get("flags") or ())),
            provenance=tuple((str(k), str(v)) for k, v in pairs),
        )


@dataclass(frozen=True)
class Document:
    """One source document. `text` is what every offset refers to: the decoded file text for
    text formats, the extracted text for HTML/PDF/PubMed (pages joined by a form feed)."""

    doc_id: str
    source: str  # path relative to corpus/, posix separators
    text: str
    meta: DocMeta
    content_hash: str  # sha256 of the raw source bytes
    fmt: str = "txt"
    page_starts: tuple[int, ...] = ()  # offset at which each page begins (PDF only)

    @property
    def title(self) -> str:
        return self.meta.title

    def page_at(self, offset: int) -> int | None:
        """1-based page number containing `offset`, or None for unpaged documents."""
        if not self.page_starts:
            return None
        page = 0
        for i, start in enumerate(self.page_starts):
            if start <= offset:
                page = i
            else:
                break
        return page + 1


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: `text == document.text[start:end]` exactly."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    start: int
    end: int
    section: str = ""
    page: int | None = None
    sentences: tuple[Span, ...] = ()  # absolute offsets of each sentence inside the chunk
    # The sentences (a subset of `sentences`) that address the reader or a model ("ignore
    # previous instructions ..."), flagged at ingest by kb/instructions.py: never evidence.
    flagged: tuple[Span, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sentences"] = [list(s) for s in self.sentences]
        d["flagged"] = [list(s) for s in self.flagged]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        return cls(
            chunk_id=d["chunk_id"],
            doc_id=d["doc_id"],
            source=d["source"],
            text=d["text"],
            start=int(d["start"]),
            end=int(d["end"]),
            section=d.get("section") or "",
            page=d.get("page"),
            sentences=tuple((int(a), int(b)) for a, b in d.get("sentences") or ()),
            flagged=tuple((int(a), int(b)) for a, b in d.get("flagged") or ()),
        )


@dataclass(frozen=True)
class Reference:
    """One entry of a document's reference list, parsed; kept out of passage retrieval."""

    ref_id: str
    doc_id: str
    source: str
    n: int  # 1-based position in the list
    raw: str  # == document.text[start:end]
    start: int
    end: int
    authors: tuple[str, ...] = ()
    title: str = ""
    journal: str = ""
    year: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["authors"] = list(self.authors)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Reference":
        return cls(
            ref_id=d["ref_id"],
            doc_id=d["doc_id"],
            source=d["source"],
            n=int(d["n"]),
            raw=d["raw"],
            start=int(d["start"]),
            end=int(d["end"]),
            authors=tuple(d.get("authors") or ()),
            title=d.get("title") or "",
            journal=d.get("journal") or "",
            year=d.get("year"),
        )


@dataclass(frozen=True)
class Filters:
    """Restricts retrieval to documents whose catalogue metadata matches (empty = any)."""

    doc_types: tuple[str, ...] = ()
    evidence_levels: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    sources: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self == Filters()

    def accepts(self, meta: DocMeta, source: str = "") -> bool:
        if self.doc_types and meta.doc_type not in self.doc_types:
            return False
        if self.evidence_levels and meta.evidence_level not in self.evidence_levels:
            return False
        if self.year_min is not None and (meta.year is None or meta.year < self.year_min):
            return False
        if self.year_max is not None and (meta.year is None or meta.year > self.year_max):
            return False
        if self.sources and source not in self.sources:
            return False
        return True


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever evidence behind it."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None


@dataclass(frozen=True)
class Citation:
    """A quoted span: `quote == document.text[start:end]`. `n` matches `[n]` in the answer."""

    n: int
    source: str
    title: str
    quote: str
    start: int
    end: int
    score: float
    evidence: str = ""
    doc_type: str = ""
    year: int | None = None
    section: str = ""
    chunk_id: str = ""
    flags: tuple[str, ...] = ()  # the document's flags, e.g. ("retracted",): shown with the quote
    # Set when the source file in corpus/ no longer matches the index (kb/source_check.py),
    # e.g. "source changed since indexing; re-ingest": the quote may not be what the file says.
    source_warning: str = ""
    # The quoted span holds text flagged as addressing the reader or a model (kb/instructions.py).
    addresses_reader: bool = False

    @property
    def warnings(self) -> tuple[str, ...]:
        """What must be shown with this quote, besides its document's flags."""
        from kb.instructions import WARNING

        return tuple(w for w in (self.source_warning, WARNING if self.addresses_reader else "") if w)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        d["warnings"] = list(self.warnings)
        return d


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer with the citation numbers that support it."""

    text: str
    citations: tuple[int, ...]
    section: str = ""
    supported: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["citations"] = list(self.citations)
        return d


@dataclass(frozen=True)
class ComparisonRow:
    entity: str
    finding: str
    figure: str
    source: str
    evidence: str
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnswerQuote:
    """One quote of an answer section: the cited span as shown (verbatim pieces, whitespace
    collapsed, " … " where source text is left out, " • " between list items), split into
    `units` that each stand as one supported statement, all cited by `citation`. In the
    "Sources differ" section a quote is one side's figure and `lead` names what differs."""

    citation: int
    shown: str
    units: tuple[str, ...]
    evidence: str = ""  # evidence label of its source, shown after it
    lead: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["units"] = list(self.units)
        return d


@dataclass(frozen=True)
class AnswerSection:
    """A part of an answer: the whole answer ("" label), one compared entity, or "Sources
    differ". `note` says why a section has no quote ("no passage in the corpus")."""

    label: str
    quotes: tuple[AnswerQuote, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "quotes": [q.to_dict() for q in self.quotes], "note": self.note}


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    abstained: bool = False
    sentences: tuple[AnswerSentence, ...] = ()
    comparison: tuple[ComparisonRow, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. "Sources differ: ..." or a fallback note
    search_terms: tuple[str, ...] = ()
    closest: tuple[Citation, ...] = ()  # when abstained: what was found but judged not relevant
    mode: str = "extractive"
    error: str = ""  # set for rejected questions (empty, too long); text then explains
    sections: tuple[AnswerSection, ...] = ()  # the structure `text` is rendered from
    abstain_reason: str = ""  # when abstained: the requirement no passage meets
    abstain_rule: str = ""  # ... and the check that failed (one of kb.evidence.GAP_RULES)
    suggestions: tuple[str, ...] = ()  # when abstained on a missing word: "sparsentin -> Sparsentan"
    vocabulary: str = ""  # sha256 of the vocabulary (YAML + corpus abbreviations) that was used
    unmatched: tuple[str, ...] = ()  # the question's key words no quoted passage (or its context) contains

    def to_dict(self) -> dict[str, Any]:
        return {
            "sections": [s.to_dict() for s in self.sections],
            "abstain_reason": self.abstain_reason,
            "abstain_rule": self.abstain_rule,
            "suggestions": list(self.suggestions),
            "vocabulary": self.vocabulary,
            "unmatched": list(self.unmatched),
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "sentences": [s.to_dict() for s in self.sentences],
            "comparison": [r.to_dict() for r in self.comparison],
            "notes": list(self.notes),
            "search_terms": list(self.search_terms),
            "closest": [c.to_dict() for c in self.closest],
            "mode": self.mode,
            "error": self.error,
        }


@dataclass(frozen=True)
class IndexInfo:
    """What the manifest says about an opened index (for the UI's corpus overview)."""

    path: str
    format_version: int
    model_name: str
    dim: int
    build_time: str
    n_documents: int
    n_chunks: int
    n_references: int
    index_type: str
    chunking: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceStatus:
    """Whether an opened index's documents still match their files in corpus/
    (kb/source_check.py). `checked` is False when the corpus folder was not available:
    then nothing is known and nothing is flagged."""

    checked: bool
    corpus_dir: str
    stale: tuple[tuple[str, str], ...] = ()  # (document source, why: "source changed ...; re-ingest")

    def warning_for(self, source: str) -> str:
        """The warning to show with a citation of `source` ("" when it matches its file)."""
        return dict(self.stale).get(source, "")


@dataclass(frozen=True)
class Query:
    """A question after query understanding: what each retriever is given."""

    text: str  # as asked
    dense_text: str = ""  # what is embedded ("" = text)
    bm25_terms: tuple[str, ...] = ()  # extra terms for BM25: expanded abbreviations, synonyms
    filters: Filters = field(default_factory=Filters)

    @property
    def embed_text(self) -> str:
        return self.dense_text or self.text

    @property
    def bm25_text(self) -> str:
        return " ".join((self.text, *self.bm25_terms))


@dataclass(frozen=True)
class Abbreviation:
    """An abbreviation-definition pair mined from the corpus at ingest (Schwartz-Hearst):
    `short` as written (a plural "CNIs" stored as "CNI"), `long` normalised (Title-case words
    lower-cased, whitespace collapsed). `sources` are the documents that define it, sorted;
    `start`/`end` locate its first defining occurrence in `sources[0]`, long form through the
    closing parenthesis: document.text[start:end] == "calcineurin inhibitors (CNIs)"."""

    short: str
    long: str
    sources: tuple[str, ...]
    start: int
    end: int
    doc_count: int  # documents that define this short form with this long form

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Abbreviation":
        return cls(short=str(d["short"]), long=str(d["long"]),
                   sources=tuple(str(s) for s in d.get("sources") or ()),
                   start=int(d["start"]), end=int(d["end"]), doc_count=int(d["doc_count"]))
