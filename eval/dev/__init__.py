"""The development set: third-party FSGS / SRNS documents that are not the bundled corpus.

    from eval.dev import dev_docs_dir, load_dev_catalogue, load_dev_questions
    docs = load_dev_catalogue()            # {file name: DevDocument}
    questions = load_dev_questions()       # [DevQuestion, ...]
    [q for q in questions if q.split == "test"]

The documents (eval/dev/docs/) are verbatim excerpts of public pages; the questions
(eval/dev/questions.yaml) were written from them, independently of any answerer. See
eval/dev/README.md for sources, licences and the split rule, and `python -m eval.dev.check`
for the validator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEV_DIR = Path(__file__).resolve().parent
CATALOGUE_PATH = DEV_DIR / "catalogue.yaml"
QUESTIONS_PATH = DEV_DIR / "questions.yaml"
SPLITS = ("tune", "test")
KINDS = (
    "trial-abstract",
    "review-abstract",
    "systematic-review",
    "drug-label",
    "guideline-summary",
    "patient-page",
    "case-report",
    "trial-registry",
    "other",
)
NEAR_MISS_KINDS = ("drug-aspect", "population", "unknown-drug", "off-topic", "other")


@dataclass(frozen=True)
class DevDocument:
    """One catalogue entry (file name relative to eval/dev/docs/)."""

    name: str
    title: str
    authors: tuple[str, ...]
    year: int | None
    publisher: str
    doi: str
    pmid: str
    url: str
    doc_type: str
    evidence_level: str
    licence: str
    kind: str
    excerpt: bool
    group: str
    split: str

    def metadata(self) -> dict[str, object]:
        """The fields corpus/catalogue.yaml uses, for building an index with this document."""
        return {
            "title": self.title,
            "authors": list(self.authors),
            "year": self.year,
            "publisher": self.publisher,
            "doi": self.doi,
            "pmid": self.pmid,
            "url": self.url,
            "doc_type": self.doc_type,
            "evidence_level": self.evidence_level,
        }


@dataclass(frozen=True)
class DevQuestion:
    """One question; `facts` and `sources` are empty for unanswerable questions."""

    id: str
    question: str
    answerable: bool
    split: str
    facts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    reason: str = ""
    near_miss: str = ""
    near: tuple[str, ...] = ()  # unanswerable: the documents it is a near miss of (they set its split)


def dev_docs_dir() -> Path:
    """The folder holding the development documents."""
    return DEV_DIR / "docs"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def load_dev_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, DevDocument]:
    """Catalogue entries by file name, in file order."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = raw.get("documents") or {}
    out: dict[str, DevDocument] = {}
    for name, e in entries.items():
        e = e or {}
        year = e.get("year")
        out[name] = DevDocument(
            name=name,
            title=_text(e.get("title")),
            authors=tuple(_text(a) for a in (e.get("authors") or [])),
            year=int(year) if year not in (None, "") else None,
            publisher=_text(e.get("publisher")),
            doi=_text(e.get("doi")),
            pmid=_text(e.get("pmid")),
            url=_text(e.get("url")),
            doc_type=_text(e.get("doc_type")),
            evidence_level=_text(e.get("evidence_level")),
            licence=_text(e.get("licence")),
            kind=_text(e.get("kind")),
            excerpt=bool(e.get("excerpt")),
            group=_text(e.get("group")) or name,
            split=_text(e.get("split")),
        )
    return out


def load_dev_questions(path: Path = QUESTIONS_PATH) -> list[DevQuestion]:
    """All questions, in file order."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: list[DevQuestion] = []
    for q in raw.get("questions") or []:
        out.append(
            DevQuestion(
                id=_text(q["id"]),
                question=_text(q["question"]),
                answerable=bool(q["answerable"]),
                split=_text(q.get("split")),
                facts=tuple(_text(f) for f in (q.get("facts") or [])),
                sources=tuple(_text(s) for s in (q.get("sources") or [])),
                tags=tuple(_text(t) for t in (q.get("tags") or [])),
                reason=_text(q.get("reason")),
                near_miss=_text(q.get("near_miss")),
                near=tuple(_text(s) for s in (q.get("near") or [])),
            )
        )
    return out


def doc_texts(split: str | None = None) -> dict[str, str]:
    """Document texts by file name (all, or one split's)."""
    cat = load_dev_catalogue()
    return {
        name: (dev_docs_dir() / name).read_text(encoding="utf-8")
        for name, d in cat.items()
        if split is None or d.split == split
    }
