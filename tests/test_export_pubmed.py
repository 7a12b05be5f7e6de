"""BibTeX/RIS/Markdown exports of imported PubMed records: authors, journal, year, DOI, PMID,
MeSH keywords, and the retraction / erratum flags."""
from __future__ import annotations

from ingest.loaders import load_bytes
from kb.types import Answer, AnswerSentence, Citation, Document
from tests.eutils_server import DATA
from ui import Turn
from ui.export import to_bibtex, to_markdown, to_ris


def _doc(pmid: str) -> Document:
    data = ((DATA / "efetch_head.xml").read_text() + (DATA / "records" / f"{pmid}.xml").read_text()
            + (DATA / "efetch_tail.xml").read_text()).encode()
    (item,) = load_bytes(f"{pmid}.xml", data)
    return Document(doc_id=pmid, source=f"pubmed/{pmid}.xml", text=item.text, meta=item.meta, content_hash=pmid, fmt="pubmed")


def _turn(*docs: Document) -> Turn:
    cites = tuple(Citation(n=i, source=d.source, title=d.title, quote=d.text[:20], start=0, end=20, score=1.0,
                           evidence=d.meta.shown_evidence, doc_type=d.meta.doc_type, year=d.meta.year,
                           flags=d.meta.flags) for i, d in enumerate(docs, 1))
    answer = Answer(question="q", text="x [1]", citations=cites,
                    sentences=tuple(AnswerSentence(text=c.quote, citations=(c.n,)) for c in cites))
    return Turn(question="q", answer=answer, documents={d.source: d for d in docs})


def test_bibtex_and_ris_carry_the_record_metadata() -> None:
    rct, retracted, erratum = _doc("90000001"), _doc("90000003"), _doc("90000007")
    turns = [_turn(rct, retracted, erratum)]
    bib = to_bibtex(turns)
    assert "@article{okafor2021rituximab," in bib
    assert "author = {Adaeze Okafor and Erik Lindqvist and Claire Moreau}" in bib
    assert "journal = {Journal of Test Nephrology}" in bib and "year = {2021}" in bib
    assert "doi = {10.9999/jtn.2021.0001}" in bib and "pmid = {90000001}" in bib
    assert "keywords = {Glomerulosclerosis, Focal Segmental, Rituximab, Tacrolimus, Humans}" in bib
    assert "evidence: RETRACTED publication: do not rely on it" in bib
    assert "cohort / observational study (erratum published)" in bib
    assert bib.count("{") == bib.count("}")
    ris = to_ris(turns)
    first = ris.split("ER  - ")[0]
    for line in ("TY  - JOUR", "AU  - Adaeze Okafor", "PY  - 2021", "JO  - Journal of Test Nephrology",
                 "DO  - 10.9999/jtn.2021.0001", "AN  - PMID: 90000001", "KW  - Tacrolimus",
                 "N1  - Evidence level: randomized controlled trial"):
        assert line in first, line
    assert "N1  - Evidence level: RETRACTED" in ris.split("ER  - ")[1]
    md = to_markdown(turns)
    assert "RETRACTED publication" in md and "PMID 90000003" in md and "(erratum published)" in md


def test_export_without_the_document_keeps_the_flags() -> None:
    retracted = _doc("90000003")
    turn = _turn(retracted)
    bare = Turn(question="q", answer=turn.answer, documents={})
    assert "RETRACTED" in to_bibtex([bare]) and to_bibtex([bare]).count("RETRACTED") == 1
