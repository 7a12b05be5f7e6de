"""Reference lists are parsed into records and kept out of passage retrieval."""
from __future__ import annotations

import re

from ingest.references import parse_references, parse_vancouver
from ingest.structure import classify
from kb.types import DocMeta, Document
from tests.conftest import SEED_CORPUS


def _doc(prefix: str) -> Document:
    path = next(SEED_CORPUS.glob(f"{prefix}*"))
    return Document(doc_id="x", source=path.name, text=path.read_text(encoding="utf-8"),
                    meta=DocMeta(), content_hash="h")


def test_case_report_reference_list_is_parsed_entry_by_entry() -> None:
    doc = _doc("004")
    refs = parse_references(doc, classify(doc.text))
    # Independent count: the lines between the keywords line and "Full Text" that end in a
    # journal citation ("...;62(11):1102-6." / "2014;2014.").
    block = doc.text[doc.text.index("intravenous Rituximab\n"):doc.text.index("Full Text")]
    expected = [ln for ln in block.splitlines() if re.search(r"(19|20)\d\d;", ln)]
    assert len(refs) == len(expected) == 26
    assert [r.n for r in refs] == list(range(1, 27))
    for r in refs:
        assert r.raw == doc.text[r.start:r.end]
        assert r.year is not None and 1980 < r.year < 2030
        assert r.title and r.journal
    first, fifth, eleventh = refs[0], refs[4], refs[10]
    assert first.authors == ("Kim JS", "Han BG", "Choi SO", "Cha SK")
    assert first.title == "Secondary focal segmental glomerulosclerosis: From podocyte injury to glomerulosclerosis"
    assert first.journal == "Bio Med Res Int" and first.year == 2016
    assert fifth.authors == ("Cattran DC",) and fifth.journal == "Seminars in Nephrology" and fifth.year == 2003
    assert eleventh.authors == ()  # a group-authored entry: no invented authors
    assert eleventh.journal == "Arch Dis Childhood" and eleventh.year == 1987


def test_plain_text_reference_section_with_type_labels() -> None:
    doc = _doc("000")
    refs = parse_references(doc, classify(doc.text))
    assert [(r.title, r.journal, r.year) for r in refs] == [
        ("Guideline Directed Topic Overview", "Dr.Oracle Medical Advisory Board & Editors", 2025),
        ("Plasmapheresis-induced remission in otherwise therapy-resistant FSGS",
         "Pediatric nephrology (Berlin, Germany)", 2001),
    ]


def test_documents_without_reference_lists_have_none() -> None:
    for prefix in ("001", "002", "003"):
        doc = _doc(prefix)
        assert parse_references(doc, classify(doc.text)) == []


def test_vancouver_et_al_and_supplement_pages() -> None:
    authors, title, journal, year = parse_vancouver(
        "Valerio F, Sottini L, Turina S, et al. Choosing the right treatment approach. "
        "Giornale Italiano di nefrologia. 2008;25 Suppl 44:S88-S98.")
    assert authors == ("Valerio F", "Sottini L", "Turina S")
    assert title == "Choosing the right treatment approach"
    assert journal == "Giornale Italiano di nefrologia" and year == 2008
