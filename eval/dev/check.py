"""Validate the development set: documents, catalogue, questions, splits, counts, overlap.

    python -m eval.dev.check        # prints counts and problems; exit status 1 on any error

What it checks (errors):
  - every file in eval/dev/docs/ has a catalogue entry and every entry a file; each entry has
    url, licence, a known kind, a group and a split, and one group never straddles the splits
  - no document shares a 200-character window (whitespace collapsed, case-folded) with a
    bundled corpus/ document or with another development document
  - question ids are unique; answerable questions have 1-2 facts and existing sources, every
    fact is a substring (case-insensitive, whitespace collapsed) of at least one of its
    sources, and the question's split is the split of all its sources; unanswerable questions
    have a reason, a known near_miss kind, a split, and no facts or sources
  - counts: documents, answerable and unanswerable questions overall and in the test split,
    near misses of kind drug-aspect / population
Warnings (printed, not errors): document length outside 600-6000 characters; an answerable
question whose facts all appear in a document of the other split.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eval.dev import (
    KINDS,
    NEAR_MISS_KINDS,
    SPLITS,
    DevDocument,
    DevQuestion,
    dev_docs_dir,
    load_dev_catalogue,
    load_dev_questions,
)

CORPUS_DIR = Path(__file__).resolve().parents[2] / "corpus"
DUP_WINDOW = 200  # characters a document may share with another before it counts as a copy
MIN_DOCS = 40
MIN_ANSWERABLE = 80
MIN_UNANSWERABLE = 20
MIN_TEST_ANSWERABLE = 40
MIN_TEST_UNANSWERABLE = 12
MIN_NEAR_MISSES = 10  # unanswerable questions of kind drug-aspect or population
MAX_FACTS = 2
DOC_CHARS = (600, 6000)  # the usual length range; outside it is only a warning
DOC_SUFFIXES = (".txt", ".md")


def normalise(text: str) -> str:
    """Case-folded text with whitespace runs collapsed to one space (the fact-matching rule)."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def _windows(text: str, n: int = DUP_WINDOW) -> set[int]:
    t = normalise(text)
    return {hash(t[i : i + n]) for i in range(max(0, len(t) - n + 1))}


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # (what, kind-or-"", split) -> n

    @property
    def ok(self) -> bool:
        return not self.errors


def _check_catalogue(cat: dict[str, DevDocument], files: set[str], r: Report) -> None:
    for name in sorted(files - set(cat)):
        r.errors.append(f"docs/{name}: no catalogue entry")
    for name in sorted(set(cat) - files):
        r.errors.append(f"catalogue entry {name}: no such file in docs/")
    group_splits: dict[str, set[str]] = {}
    for d in cat.values():
        for fld in ("url", "licence"):
            if not getattr(d, fld).strip():
                r.errors.append(f"catalogue entry {d.name}: empty {fld}")
        if d.kind not in KINDS:
            r.errors.append(f"catalogue entry {d.name}: kind {d.kind!r} not one of {KINDS}")
        if d.split not in SPLITS:
            r.errors.append(f"catalogue entry {d.name}: split {d.split!r} not one of {SPLITS}")
        group_splits.setdefault(d.group, set()).add(d.split)
    for g, s in group_splits.items():
        if len(s) > 1:
            r.errors.append(f"group {g}: documents in more than one split {sorted(s)}")


def _check_overlap(texts: dict[str, str], r: Report) -> None:
    corpus = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in sorted(CORPUS_DIR.glob("*")) if p.suffix in DOC_SUFFIXES}
    corpus_windows = {name: _windows(t) for name, t in corpus.items()}
    dev_windows = {name: _windows(t) for name, t in texts.items()}
    names = sorted(texts)
    for i, a in enumerate(names):
        for cname, cw in corpus_windows.items():
            if dev_windows[a] & cw:
                r.errors.append(f"docs/{a}: shares a {DUP_WINDOW}-character passage with corpus/{cname}")
        for b in names[i + 1 :]:
            if dev_windows[a] & dev_windows[b]:
                r.errors.append(f"docs/{a}: shares a {DUP_WINDOW}-character passage with docs/{b}")


def _check_questions(qs: list[DevQuestion], cat: dict[str, DevDocument], texts: dict[str, str], r: Report) -> None:
    norm = {name: normalise(t) for name, t in texts.items()}
    seen: set[str] = set()
    for q in qs:
        where = f"question {q.id}"
        if q.id in seen:
            r.errors.append(f"{where}: duplicate id")
        seen.add(q.id)
        if not q.question.strip():
            r.errors.append(f"{where}: empty question")
        if q.split not in SPLITS:
            r.errors.append(f"{where}: split {q.split!r} not one of {SPLITS}")
        if not q.answerable:
            if q.facts or q.sources:
                r.errors.append(f"{where}: unanswerable but has facts or sources")
            if not q.reason.strip():
                r.errors.append(f"{where}: unanswerable without a reason")
            if q.near_miss not in NEAR_MISS_KINDS:
                r.errors.append(f"{where}: near_miss {q.near_miss!r} not one of {NEAR_MISS_KINDS}")
            unknown = [s for s in q.near if s not in cat]
            for s in unknown:
                r.errors.append(f"{where}: near document {s} is not catalogued")
            near_splits = {cat[s].split for s in q.near if s in cat}
            if near_splits and near_splits != {q.split}:
                r.errors.append(f"{where}: split {q.split!r} but the documents it is near are in {sorted(near_splits)}")
            continue
        if not 1 <= len(q.facts) <= MAX_FACTS:
            r.errors.append(f"{where}: {len(q.facts)} facts (want 1-{MAX_FACTS})")
        if not q.sources:
            r.errors.append(f"{where}: no sources")
        missing = [s for s in q.sources if s not in cat or s not in norm]
        for s in missing:
            r.errors.append(f"{where}: source {s} is not a catalogued document")
        present = [s for s in q.sources if s in norm]
        for fact in q.facts:
            if not any(normalise(fact) in norm[s] for s in present):
                r.errors.append(f"{where}: fact {fact!r} is in none of its sources")
        splits = {cat[s].split for s in present}
        if splits and splits != {q.split}:
            r.errors.append(f"{where}: split {q.split!r} but its sources are in {sorted(splits)}")
        if q.facts:
            others = [
                name for name, t in norm.items()
                if cat[name].split != q.split and all(normalise(f) in t for f in q.facts)
            ]
            if others:
                r.warnings.append(f"{where}: its facts also appear in {', '.join(others)} (other split)")


def _check_counts(qs: list[DevQuestion], cat: dict[str, DevDocument], r: Report) -> None:
    for d in cat.values():
        r.counts[("docs", d.kind, d.split)] += 1
    for q in qs:
        r.counts[("answerable" if q.answerable else "unanswerable", "", q.split)] += 1
    n_docs = len(cat)
    ans = sum(q.answerable for q in qs)
    unans = len(qs) - ans
    test_ans = sum(q.answerable and q.split == "test" for q in qs)
    test_unans = sum((not q.answerable) and q.split == "test" for q in qs)
    near = sum((not q.answerable) and q.near_miss in ("drug-aspect", "population") for q in qs)
    for label, have, want in (
        ("documents", n_docs, MIN_DOCS),
        ("answerable questions", ans, MIN_ANSWERABLE),
        ("unanswerable questions", unans, MIN_UNANSWERABLE),
        ("test answerable questions", test_ans, MIN_TEST_ANSWERABLE),
        ("test unanswerable questions", test_unans, MIN_TEST_UNANSWERABLE),
        ("drug-aspect/population near misses", near, MIN_NEAR_MISSES),
    ):
        if have < want:
            r.errors.append(f"only {have} {label} (need at least {want})")


def validate() -> Report:
    """Run every check; the report lists errors, warnings and counts."""
    r = Report()
    cat = load_dev_catalogue()
    files = {p.name for p in dev_docs_dir().iterdir() if p.suffix in DOC_SUFFIXES}
    texts = {name: (dev_docs_dir() / name).read_text(encoding="utf-8") for name in sorted(files)}
    for name, t in texts.items():
        if not DOC_CHARS[0] <= len(t) <= DOC_CHARS[1]:
            r.warnings.append(f"docs/{name}: {len(t)} characters (usual range {DOC_CHARS[0]}-{DOC_CHARS[1]})")
    _check_catalogue(cat, files, r)
    _check_overlap(texts, r)
    qs = load_dev_questions()
    _check_questions(qs, {k: v for k, v in cat.items() if k in texts}, texts, r)
    _check_counts(qs, cat, r)
    return r


def counts_table(r: Report) -> str:
    """Markdown table of documents by kind and split, then questions by split."""
    kinds = sorted({k for (what, k, _s) in r.counts if what == "docs"})
    lines = ["| kind | tune | test | total |", "|---|---:|---:|---:|"]
    for k in kinds:
        tu, te = r.counts[("docs", k, "tune")], r.counts[("docs", k, "test")]
        lines.append(f"| {k} | {tu} | {te} | {tu + te} |")
    tu = sum(n for (w, _k, s), n in r.counts.items() if w == "docs" and s == "tune")
    te = sum(n for (w, _k, s), n in r.counts.items() if w == "docs" and s == "test")
    lines.append(f"| **documents** | {tu} | {te} | {tu + te} |")
    for what in ("answerable", "unanswerable"):
        a, b = r.counts[(what, "", "tune")], r.counts[(what, "", "test")]
        lines.append(f"| **{what} questions** | {a} | {b} | {a + b} |")
    return "\n".join(lines)


def main() -> int:
    r = validate()
    print(counts_table(r))
    for w in r.warnings:
        print(f"warning: {w}")
    for e in r.errors:
        print(f"error: {e}", file=sys.stderr)
    print("OK" if r.ok else f"{len(r.errors)} error(s)")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
