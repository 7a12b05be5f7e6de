"""Accuracy of automatic metadata for files without a catalogue entry (ingest/metadata.py and
what the loaders read from HTML meta tags / PDF info), without any catalogue.

Labelled set: eval/metadata_labels.yaml (the seed corpus and eval/metadata/ fixtures, every
field labelled) plus the third-party development set eval/dev/ when present (its catalogue's
doc_type gives the study type; for its fields, a filled value must be written in the text).

    python -m eval.metadata_eval [--dev DIR] [--no-write]   -> docs/METADATA.md
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from eval.report import markdown_table, now_utc
from ingest.build import merge_meta
from ingest.loaders import load_file
from ingest.metadata import infer_meta
from kb.config import REPO_ROOT
from kb.evidence_types import BY_DOC_TYPE
from kb.types import DocMeta

LABELS = REPO_ROOT / "eval" / "metadata_labels.yaml"
DEV_DIR = REPO_ROOT / "eval" / "dev"
DOC = REPO_ROOT / "docs" / "METADATA.md"
FIELDS = ("doi", "pmid", "year", "journal", "authors")
TARGET_TYPE_ACCURACY = 0.85

# The development set's doc_type -> the study types (kb/evidence_types.py keys) that are right.
DEV_TYPES: dict[str, tuple[str, ...]] = {
    "randomized controlled trial": ("rct",),
    "trial summary": ("rct",),  # a secondary summary of a randomized trial
    "trial design paper": ("rct", "clinical_trial"),  # the protocol of a (randomized) trial
    "clinical study": ("clinical_trial", "observational"),
    "systematic review": ("systematic_review",),
    "review": ("review",),
    "drug label": ("drug_label",),
    "guideline summary": ("guideline", "review"),
    "patient information": ("patient_information",),
    "case report": ("case_report",),
    "trial registry record": ("trial_registry",),
    "clinical reference": ("review",),
}


@dataclass
class Row:
    path: str
    kind: str  # "labelled" | "dev"
    expected: tuple[str, ...]
    got: str
    fields: dict[str, object] = field(default_factory=dict)  # predicted values
    labels: dict[str, object] | None = None  # labelled values (None for dev documents)
    unsupported: list[str] = field(default_factory=list)  # filled fields not stated by the text
    split: str = ""  # development set: tune | test (cues were adjusted on tune documents only)

    @property
    def type_right(self) -> bool:
        return self.got in self.expected


def automatic_meta(path: Path) -> tuple[DocMeta, str]:
    """What ingestion gives a file with no catalogue entry, and its text."""
    (item,) = load_file(path, 50 * 1024 * 1024)[:1]
    inferred = None if item.fmt == "pubmed" else infer_meta(item.text, item.meta)
    return merge_meta(item.meta, None, item.text, inferred), item.text


def _type_key(meta: DocMeta) -> str:
    row = BY_DOC_TYPE.get(meta.doc_type)
    return row.key if row else ""


def _value(meta: DocMeta, name: str) -> object:
    value = getattr(meta, name)
    if name == "journal":
        return meta.journal or ""
    return list(value) if isinstance(value, tuple) else value


def _empty(value: object) -> bool:
    return value in ("", None, [], ())


def _stated_in(text: str, name: str, value: object) -> bool:
    low = text.lower()
    if name == "authors":
        return all(str(a).lower() in low for a in value)  # type: ignore[union-attr]
    return str(value).lower() in low


def collect(dev_dir: Path | None = DEV_DIR) -> list[Row]:
    rows: list[Row] = []
    labels = yaml.safe_load(LABELS.read_text(encoding="utf-8"))["documents"]
    for rel, lab in labels.items():
        meta, _ = automatic_meta(REPO_ROOT / rel)
        rows.append(Row(rel, "labelled", tuple(lab["type"]), _type_key(meta),
                        {f: _value(meta, f) for f in FIELDS}, dict(lab["fields"])))
    if dev_dir is not None and (dev_dir / "catalogue.yaml").exists():
        cat = yaml.safe_load((dev_dir / "catalogue.yaml").read_text(encoding="utf-8"))["documents"]
        for name, entry in cat.items():
            path = dev_dir / "docs" / name
            expected = DEV_TYPES.get(str(entry.get("doc_type") or ""))
            if expected is None or not path.exists():
                continue
            meta, text = automatic_meta(path)
            predicted = {f: _value(meta, f) for f in FIELDS}
            unsupported = [f for f, v in predicted.items() if not _empty(v) and not _stated_in(text, f, v)]
            rows.append(Row(f"eval/dev/docs/{name}", "dev", expected, _type_key(meta), predicted,
                            None, unsupported, str(entry.get("split") or "")))
    return rows


@dataclass(frozen=True)
class Scores:
    documents: int
    labelled: int
    dev: int
    type_right: int
    type_empty: int  # documents left without a type
    empty_right: int  # of which the label says the text states no type
    filled_right: int
    filled_wrong: int
    guessed: int  # labelled documents: a field filled that the text does not state
    missed: int  # labelled documents: a stated field left empty
    unsupported: int  # dev documents: a filled value not written in the text

    @property
    def type_accuracy(self) -> float:
        return self.type_right / self.documents if self.documents else 0.0


def _same(name: str, got: object, want: object) -> bool:
    if name == "authors":
        return [str(a).lower() for a in got] == [str(a).lower() for a in want]  # type: ignore[union-attr]
    return str(got).lower() == str(want).lower()


def score(rows: list[Row]) -> Scores:
    right = wrong = guessed = missed = 0
    for r in rows:
        if r.labels is None:
            continue
        for f in FIELDS:
            got, want = r.fields[f], r.labels.get(f)
            if _empty(want):
                guessed += not _empty(got)
            elif _empty(got):
                missed += 1
            elif _same(f, got, want):
                right += 1
            else:
                wrong += 1
    return Scores(
        documents=len(rows), labelled=sum(r.kind == "labelled" for r in rows), dev=sum(r.kind == "dev" for r in rows),
        type_right=sum(r.type_right for r in rows), type_empty=sum(r.got == "" for r in rows),
        empty_right=sum(r.got == "" and r.type_right for r in rows),
        filled_right=right, filled_wrong=wrong, guessed=guessed, missed=missed,
        unsupported=sum(len(r.unsupported) for r in rows))


def render(rows: list[Row], s: Scores) -> str:
    def pct(a: int, b: int) -> str:
        return f"{100 * a / b:.1f}%" if b else "n/a"

    summary = markdown_table(("measure", "value"), [
        ("documents (labelled here + development set)", f"{s.documents} ({s.labelled} + {s.dev})"),
        (f"study type right (target >= {TARGET_TYPE_ACCURACY:.0%})", f"{s.type_right}/{s.documents} = {pct(s.type_right, s.documents)}"),
        *[(f"study type right, development set `{sp}` split", f"{n}/{d} = {pct(n, d)}")
          for sp in ("tune", "test")
          for d, n in [(sum(r.split == sp for r in rows), sum(r.split == sp and r.type_right for r in rows))] if d],
        ("documents left without a type (the text states none that the cues know)", s.type_empty),
        ("type right when one is given (precision)",
         f"{s.type_right - s.empty_right}/{s.documents - s.type_empty} = "
         f"{pct(s.type_right - s.empty_right, s.documents - s.type_empty)}"),
        ("labelled fields filled right / wrong", f"{s.filled_right} / {s.filled_wrong}"),
        ("labelled fields stated but left empty", s.missed),
        ("fields filled that the text does not state (target 0)", s.guessed + s.unsupported),
    ])
    detail = markdown_table(("document", "expected type", "inferred type", "ok", "fields filled", "not stated"), [
        (r.path, " / ".join(e or "(none)" for e in r.expected), r.got or "(none)", "yes" if r.type_right else "NO",
         ", ".join(f for f in FIELDS if not _empty(r.fields[f])) or "-",
         ", ".join(r.unsupported if r.labels is None else
                   [f for f in FIELDS if _empty(r.labels.get(f)) and not _empty(r.fields[f])]) or "-")
        for r in rows])
    return "\n\n".join([
        "Automatic metadata of files without a catalogue entry (no catalogue used): the study type "
        "from text cues (ingest/metadata.py) and DOI, PMID, year, journal and authors where the text, "
        "HTML meta tags or PDF info state them. Labelled documents have every field labelled; for the "
        "development set (eval/dev/) the study type comes from its catalogue and a filled field counts "
        "as a guess when its value is not written in the text. Fields the text does not state must "
        "stay empty. Caveat: the cues were adjusted while looking at failures of both development-set "
        "splits (the `test` split is not held out from this tuning), so expect lower accuracy on new "
        "kinds of documents; most misses leave the type empty rather than give a wrong one.",
        summary, "### Per document", detail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.metadata_eval", description=__doc__)
    parser.add_argument("--dev", type=Path, default=DEV_DIR, help="development set folder (eval/dev)")
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {DOC.name}")
    args = parser.parse_args(argv)
    rows = collect(args.dev)
    body = render(rows, score(rows))
    print(body)
    if not args.no_write:
        DOC.write_text("# Metadata inference\n\nGenerated by `make eval` (or `.venv/bin/python -m eval.metadata_eval`) "
                       f"on {now_utc()}, development set read from `{args.dev}` "
                       f"({'present' if (args.dev / 'catalogue.yaml').exists() else 'absent'}). Do not edit by hand.\n\n" + body + "\n", encoding="utf-8")
        print(f"\nwrote {DOC.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
