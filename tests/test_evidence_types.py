"""Publication types -> document type + evidence level (kb/evidence_types.py), flags, the
metadata merge with provenance, and labels/flags on citations through ask()."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.build import ingest_corpus, merge_meta
from ingest.loaders import load_bytes
from ingest.pubmed import split_records, write_record
from kb import evidence_types as et
from kb.api import open_kb
from kb.config import Settings
from kb.types import Citation, DocMeta
from tests.eutils_server import DATA
from tests.fakes import FakeEmbedder


def efetch_answer(*pmids: str) -> bytes:
    records = [(DATA / "records" / f"{p}.xml").read_text() for p in pmids]
    return ((DATA / "efetch_head.xml").read_text() + "".join(records) + (DATA / "efetch_tail.xml").read_text()).encode()


def pubmed_doc(pmid: str) -> DocMeta:
    (item,) = load_bytes(f"{pmid}.xml", efetch_answer(pmid))
    return item.meta


@pytest.mark.parametrize("types, doc_type, level", [
    (["Journal Article", "Randomized Controlled Trial", "Multicenter Study"], "randomized controlled trial",
     "randomized controlled trial"),
    (["Practice Guideline", "Review"], "guideline", "clinical practice guideline"),
    (["Meta-Analysis", "Journal Article"], "systematic review", "systematic review / meta-analysis"),
    (["Systematic Review", "Review"], "systematic review", "systematic review / meta-analysis"),
    (["Clinical Trial, Phase II"], "clinical trial", "clinical trial (not randomized)"),
    (["Observational Study"], "observational study", "cohort / observational study"),
    (["Case Reports", "Review"], "case report", "case report (single patient)"),
    (["Review"], "review", "narrative review (peer-reviewed journal)"),
    (["Letter", "Comment"], "editorial / comment", "editorial, comment or letter (opinion)"),
    (["Retracted Publication", "Journal Article"], "retracted publication", "RETRACTED publication: do not rely on it"),
])
def test_publication_type_table(types: list[str], doc_type: str, level: str) -> None:
    row = et.from_publication_types(types)
    assert row is not None and (row.doc_type, row.evidence_level) == (doc_type, level)


def test_unmapped_types_give_nothing() -> None:
    assert et.from_publication_types(["Journal Article", "Research Support, N.I.H., Extramural"]) is None


def test_retraction_keeps_the_study_type_and_flags_it() -> None:
    row = et.from_publication_types(["Randomized Controlled Trial", "Retracted Publication"])
    assert row is not None and row.key == "rct"
    flags = et.flags_for(["Randomized Controlled Trial", "Retracted Publication"], ["ErratumIn"])
    assert flags == ("retracted", "erratum")
    assert et.flagged_label(row.evidence_level, flags) == "RETRACTED — randomized controlled trial (erratum published)"
    assert et.flagged_label("case report (single patient)", ()) == "case report (single patient)"


def test_pubmed_record_metadata() -> None:
    rct = pubmed_doc("90000001")
    assert rct.title.startswith("Rituximab versus tacrolimus")
    assert rct.authors == ("Adaeze Okafor", "Erik Lindqvist", "Claire Moreau")
    assert (rct.journal, rct.year, rct.doi, rct.pmid) == ("Journal of Test Nephrology", 2021, "10.9999/jtn.2021.0001", "90000001")
    assert rct.mesh == ("Glomerulosclerosis, Focal Segmental", "Rituximab", "Tacrolimus", "Humans")
    assert rct.publication_types == ("Journal Article", "Randomized Controlled Trial", "Multicenter Study")
    assert (rct.doc_type, rct.evidence_level, rct.flags) == ("randomized controlled trial", "randomized controlled trial", ())
    assert {v for _, v in rct.provenance} == {"pubmed"} and rct.source_of("doi") == "pubmed"
    assert rct.source_of("url") == ""  # not stated: empty, no provenance
    retracted = pubmed_doc("90000003")
    assert retracted.flags == ("retracted",) and retracted.shown_evidence.startswith("RETRACTED")
    erratum = pubmed_doc("90000007")
    assert erratum.flags == ("erratum",) and erratum.shown_evidence == "cohort / observational study (erratum published)"


def test_docmeta_round_trip() -> None:
    meta = pubmed_doc("90000007")
    assert DocMeta.from_dict(meta.to_dict()) == meta
    assert DocMeta.from_dict({"title": "x"}) == DocMeta(title="x")  # old catalogue entries still read
    c = Citation(n=1, source="s", title="t", quote="q", start=0, end=1, score=1.0, flags=("retracted",))
    assert c.to_dict()["flags"] == ["retracted"]


def test_merge_catalogue_overrides_field_by_field_with_provenance() -> None:
    loaded = pubmed_doc("90000001")
    catalogue = DocMeta(title="Corrected title", doc_type="trial")
    merged = merge_meta(loaded, catalogue, "text")
    assert merged.title == "Corrected title" and merged.source_of("title") == "catalogue"
    assert merged.doi == loaded.doi and merged.source_of("doi") == "pubmed"
    # doc_type and evidence level travel together: no RCT label on a type the catalogue changed
    assert (merged.doc_type, merged.evidence_level) == ("trial", "")
    assert merged.source_of("doc_type") == "catalogue"
    inferred = DocMeta(doc_type="case report", year=2001)
    plain = merge_meta(DocMeta(title="From HTML"), None, "text", inferred)
    assert plain.source_of("title") == "inferred" and plain.source_of("doc_type") == "inferred"
    assert plain.evidence_level == "case report (single patient)"  # filled from the table
    assert et.INFERRED in plain.flags
    no_title = merge_meta(DocMeta(), None, "First line\nmore")
    assert no_title.title == "First line" and no_title.source_of("title") == "inferred"


@pytest.fixture
def pubmed_kb(tmp_path: Path, corpus_copy: Path, fake_settings: Settings):  # type: ignore[no-untyped-def]
    for pmid, record in split_records(efetch_answer(*[f"9000000{i}" for i in range(1, 8)])):
        write_record(corpus_copy / "pubmed", pmid, record)
    embedder = FakeEmbedder()
    ingest_corpus(corpus_copy, fake_settings.index_dir, embedder=embedder, settings=fake_settings, show_progress=False)
    return open_kb(fake_settings.index_dir, embedder=embedder, settings=fake_settings)


def test_rct_is_cited_with_its_label_and_a_retracted_article_is_flagged(pubmed_kb) -> None:  # type: ignore[no-untyped-def]
    a = pubmed_kb.ask("Is rituximab better than tacrolimus for remission in steroid-resistant FSGS?")
    rct = [c for c in a.citations if c.source == "pubmed/90000001.xml"]
    assert rct and all(c.evidence == "randomized controlled trial" and c.flags == () for c in rct)
    b = pubmed_kb.ask("Does low-dose rituximab induce complete remission in primary FSGS?")
    cited = [c for c in (*b.citations, *b.closest) if c.source == "pubmed/90000003.xml"]
    assert cited, [c.source for c in b.citations]
    assert all(c.evidence.startswith("RETRACTED") and "retracted" in c.flags for c in cited)
    rows = [*b.to_dict()["citations"], *b.to_dict()["closest"]]  # answered or abstained, it is flagged
    assert all("RETRACTED" in r["evidence"] for r in rows if r["source"] == "pubmed/90000003.xml")
    doc = pubmed_kb.document("pubmed/90000003.xml")
    assert doc.meta.flags == ("retracted",) and doc.meta.source_of("title") == "pubmed"


def test_seed_corpus_keeps_catalogue_labels(fake_kb) -> None:  # type: ignore[no-untyped-def]
    doc = fake_kb.document("004_1bb380601a0a640d.txt")
    assert doc.meta.evidence_level == "case report (single patient)"
    assert doc.meta.source_of("evidence_level") == "catalogue" and doc.meta.flags == ()


