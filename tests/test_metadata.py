"""Metadata inferred from a document's own text (ingest/metadata.py): stated values only."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.build import ingest_corpus
from ingest.metadata import infer_meta, infer_study_type
from kb.config import REPO_ROOT
from kb.types import DocMeta
from tests.fakes import FakeEmbedder

FIXTURES = REPO_ROOT / "eval" / "metadata"


@pytest.mark.parametrize("text, key", [
    ("A trial\n\nMethods: 96 adults were randomly assigned to tacrolimus or MMF.", "rct"),
    ("Rituximab for FSGS: a systematic review and meta-analysis\n\nWe pooled 14 studies.", "systematic_review"),
    ("HIGHLIGHTS OF PRESCRIBING INFORMATION\nINDICATIONS AND USAGE\nDrug X is indicated for FSGS.", "drug_label"),
    ("Study record\nClinicalTrials.gov ID NCT01234567\nStudy Type: Interventional", "trial_registry"),
    ("Background\nWe report a case of a 45-year-old woman with collapsing FSGS.", "case_report"),
    ("Outcomes\nThis retrospective cohort study followed 200 adults.", "observational"),
    ("Abatacept\nThis single-arm, open-label phase 2 study enrolled 20 patients.", "clinical_trial"),
    ("Some abstract\n\nPublication types\nReview\n\nMeSH terms", "review"),
    ("FSGS notes\n\nFSGS is a pattern of injury seen on biopsy.", ""),
])
def test_study_type_cues(text: str, key: str) -> None:
    assert infer_study_type(text) == key


def test_a_reference_list_is_not_the_document_speaking() -> None:
    text = ("Rituximab in refractory FSGS\n\nWe treated one patient.\n\nReferences\n"
            "1. Smith J. A clinical practice guideline for glomerulonephritis. Kidney Int. 2012.")
    assert infer_study_type(text) == ""


def test_patient_pages_are_recognised_by_who_they_address() -> None:
    page = "Living with FSGS\n\n" + "If you have FSGS, your kidneys leak protein and you may swell. " * 30
    assert infer_study_type(page) == "patient_information"
    clinical = "FSGS in adults\n\n" + ("Adults with primary glomerulosclerosis received immunosuppressive "
                                        "calcineurin inhibitor therapy with variable proteinuria reduction. ") * 30
    assert infer_study_type(clinical) == ""
    plain = "Nephrotic syndrome\n\n" + "In most children the swelling goes away after a few weeks of steroid medicine. " * 30
    assert infer_study_type(plain) == "patient_information"  # plain language, third person


def test_only_labelled_values_are_taken() -> None:
    text = ("Cyclosporine in FSGS\n\nSemin Nephrol. 2003 Mar;23(2):234-41. doi: 10.1053/snep.2003.50022.\n\n"
            "Studies between 1990 and 2001 are discussed; see 10.1000/other for methods.")
    meta = infer_meta(text)
    assert (meta.doi, meta.year, meta.journal, meta.pmid) == ("10.1053/snep.2003.50022", 2003, "Semin Nephrol", "")
    bare = infer_meta("Notes on FSGS\n\nSeen 2019-2021 in clinic; see 10.1000/xyz.\nDr Jones and Dr Smith.")
    assert bare == DocMeta()  # nothing stated with a label: nothing filled


def test_byline_only_when_every_item_is_a_name() -> None:
    assert infer_meta("Title\nAuthors: Anna Berg, Marco Rossi MD\n").authors == ("Anna Berg", "Marco Rossi")
    assert infer_meta("Title\nBy the editorial team, updated weekly\n").authors == ()


def test_loader_values_are_not_overridden() -> None:
    stated = DocMeta(doi="10.1/stated", year=1999)
    meta = infer_meta("T\ndoi: 10.2/other\nPublished: 2020\n", stated)
    assert meta.doi == "" and meta.year is None  # the file's own statement stands (merge keeps it)


def test_uncatalogued_files_get_inferred_metadata_and_the_catalogue_still_wins(tmp_path: Path) -> None:
    from dataclasses import replace

    from kb.api import open_kb
    from kb.config import Settings
    from tests.fakes import FAKE_MODEL_NAME

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("rct-article.html", "guideline.pdf", "meta-analysis.txt"):
        (corpus / name).write_bytes((FIXTURES / name).read_bytes())
    (corpus / "catalogue.yaml").write_text("documents:\n  meta-analysis.txt:\n    title: Catalogued title\n", encoding="utf-8")
    settings = replace(Settings(), corpus_dir=corpus, index_dir=tmp_path / "index", model_name=FAKE_MODEL_NAME)
    embedder = FakeEmbedder()
    ingest_corpus(corpus, settings.index_dir, embedder=embedder, settings=settings, show_progress=False)
    base = open_kb(settings.index_dir, embedder=embedder, settings=settings)
    html = base.document("rct-article.html").meta
    assert (html.doc_type, html.journal, html.pmid) == ("randomized controlled trial", "Journal of Glomerular Disease", "35512345")
    assert html.source_of("doc_type") == "inferred" and "type inferred" in html.flags
    pdf = base.document("guideline.pdf").meta
    assert pdf.authors == ("Maria Rossi", "John Smith") and pdf.doi == "10.5555/kis.2021.0004"
    assert pdf.doc_type == "guideline" and pdf.year == 2021
    txt = base.document("meta-analysis.txt").meta
    assert txt.title == "Catalogued title" and txt.source_of("title") == "catalogue"
    assert txt.pmid == "34567890" and txt.source_of("pmid") == "inferred"
    assert txt.evidence_level == "systematic review / meta-analysis"
