"""ui/export.py: each export is a well-formed file of the cited documents and sentences."""
from __future__ import annotations

import csv
import io
import re

from kb.types import Answer, AnswerSentence, Citation, ComparisonRow, DocMeta, Document
from ui import Turn
from ui.export import FORMATS, bib_escape, reference_list, to_audit_csv, to_bibtex, to_markdown, to_ris

REVIEW = Document(
    doc_id="d1", source="002_review.txt", content_hash="h1",
    text="Cyclosporine induced remission in 60% of patients. Doses were 3-5 mg/kg/day {sic} & 50% of_x.",
    meta=DocMeta(title="Cyclosporine in the treatment of idiopathic FSGS", authors=("Cattran DC", "Rao Ä"),
                 year=2003, publisher="Semin Nephrol. 2003;23(2):234-41", doi="10.1053/snep.2003.50022",
                 doc_type="review", evidence_level="narrative review (peer-reviewed journal)"))
CASE = Document(
    doc_id="d2", source="004_case.txt", content_hash="h2",
    text="=HYPERLINK(\"http://evil\") Rituximab 500 mg weekly gave remission for 1 year. <script>x</script>",
    meta=DocMeta(title="Intravenous Rituximab in Severe Refractory FSGS", year=None,
                 doc_type="case report", evidence_level="case report (single patient)"))


def _cite(doc: Document, phrase: str, n: int) -> Citation:
    s = doc.text.index(phrase)
    return Citation(n=n, source=doc.source, title=doc.title, quote=phrase, start=s, end=s + len(phrase),
                    score=0.9, evidence=doc.meta.evidence_level, doc_type=doc.meta.doc_type, year=doc.meta.year)


def _turns() -> list[Turn]:
    c1 = _cite(REVIEW, "Cyclosporine induced remission in 60% of patients.", 1)
    c2 = _cite(CASE, '=HYPERLINK("http://evil") Rituximab 500 mg weekly gave remission for 1 year.', 2)
    c3 = _cite(REVIEW, "Doses were 3-5 mg/kg/day {sic} & 50% of_x.", 3)
    first = Answer(
        question="Compare remission rates for CNIs versus rituximab", text="",
        citations=(c1, c2, c3),
        sentences=(AnswerSentence(c1.quote, (1,), section="CNIs"), AnswerSentence(c3.quote, (3, 1), section="CNIs"),
                   AnswerSentence(c2.quote, (2,), section="Rituximab")),
        comparison=(ComparisonRow("CNIs", "remission", "60%", REVIEW.source, REVIEW.meta.evidence_level, 1),
                    ComparisonRow("Rituximab", "remission for 1 year", "1 patient", CASE.source,
                                  CASE.meta.evidence_level, 2)),
        notes=("Sources differ: [a](javascript:x) <b>",))
    second = Answer(question="Rituximab dose?", text="", citations=(_cite(CASE, "Rituximab 500 mg weekly", 1),),
                    sentences=(AnswerSentence("Rituximab 500 mg weekly", (1,)),))
    abstained = Answer(question="sparsentan?", text="No passage answers this.", abstained=True,
                       search_terms=("sparsentan",), closest=(c1,))
    docs = {REVIEW.source: REVIEW, CASE.source: CASE}
    return [Turn(a.question, a, docs) for a in (first, second, abstained)]


def test_reference_list_numbers_each_cited_document_once() -> None:
    refs = reference_list(_turns())
    assert [(r.number, r.source) for r in refs] == [(1, REVIEW.source), (2, CASE.source)]


def test_markdown_has_numbered_references_and_renumbered_markers() -> None:
    md = to_markdown(_turns())
    assert "## References" in md
    assert re.search(r"^1\. Cattran DC, Rao Ä\. \*Cyclosporine in the treatment of idiopathic FSGS\*", md, re.M)
    assert re.search(r"^2\. \*Intravenous Rituximab", md, re.M)
    assert "60% of patients.[1]" in md and "of\\_x.[1]" in md  # [3] and [1] are the same document
    assert "1 year.[2]" in md
    assert "Q2. Rituximab dose?" in md and "500 mg weekly[2]" in md  # numbering spans the conversation
    assert "| CNIs | remission | 60% | [1] |" in md
    assert "<script>" not in md and not re.search(r"(?<!\\)\]\(javascript", md)
    assert "doi:10.1053/snep.2003.50022" in md
    assert "Searched for: `sparsentan`" in md
    single = to_markdown(_turns()[:1])
    assert "## Compare remission rates" in single


def _bib_entries(text: str) -> list[tuple[str, str, str]]:
    """(type, key, body) of each entry, checking that braces balance."""
    out = []
    for m in re.finditer(r"@(\w+)\{([^,\s]+),", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        assert depth == 0, f"unbalanced braces in {m.group(2)}"
        out.append((m.group(1), m.group(2), text[m.end():i - 1]))
    assert text.count("{") == text.count("}")
    return out


def test_bibtex_entries_are_balanced_and_complete() -> None:
    bib = to_bibtex(_turns())
    entries = _bib_entries(bib)
    assert [t for t, _, _ in entries] == ["article", "misc"]
    keys = [k for _, k, _ in entries]
    assert len(set(keys)) == 2 and keys[0] == "cattran2003cyclosporine"
    review = entries[0][2]
    assert "author = {Cattran, D. C. and Rao, Ä.}" in review
    assert "doi = {10.1053/snep.2003.50022}" in review and "year = {2003}" in review
    assert "journal = {Semin Nephrol. 2003;23(2):234-41}" in review
    assert "evidence: case report (single patient)" in entries[1][2]


def test_bib_escape_keeps_braces_balanced() -> None:
    out = bib_escape("a {b} c\\d 50% & x_y #1 $ ~ ^")
    assert out.count("{") == out.count("}")
    assert r"\%" in out and r"\&" in out and r"\_" in out and r"\#" in out


def test_ris_records_pair_ty_and_er() -> None:
    ris = to_ris(_turns())
    lines = [line for line in ris.splitlines() if line]
    assert all(re.match(r"^[A-Z][A-Z0-9]  - ", line) for line in lines), lines
    tags = [line[:2] for line in lines]
    assert tags.count("TY") == tags.count("ER") == 2
    depth = 0
    for t in tags:  # strictly alternating TY ... ER
        depth += {"TY": 1, "ER": -1}.get(t, 0)
        assert depth in (0, 1)
    assert "TY  - JOUR" in ris and "AU  - Cattran, D.C." in ris and "DO  - 10.1053/snep.2003.50022" in ris
    assert "N1  - Evidence level: case report (single patient); File: 004_case.txt" in ris


def test_audit_csv_rows_point_at_exact_quotes() -> None:
    turns = _turns()
    rows = list(csv.DictReader(io.StringIO(to_audit_csv(turns))))
    assert rows and set(rows[0]) >= {"sentence", "source_file", "start", "end", "quote", "evidence_level"}
    answer_rows = [r for r in rows if r["part"] in ("answer", "table")]
    docs = {REVIEW.source: REVIEW, CASE.source: CASE}
    for r in answer_rows:
        quote = r["quote"][1:] if r["quote"].startswith("'=") else r["quote"]
        assert docs[r["source_file"]].text[int(r["start"]):int(r["end"])] == quote
    # sentence 2 of question 1 cites [3] and [1]: one row each
    assert [r["citation"] for r in rows if r["question_no"] == "1" and r["item_no"] == "2"
            and r["part"] == "answer"] == ["3", "1"]
    assert any(r["part"] == "table" and r["sentence"] == "CNIs: remission (60%)" for r in rows)
    assert any(r["part"] == "abstained" and r["question_no"] == "3" for r in rows)
    # a cell starting with "=" is not a live spreadsheet formula
    assert all(not v.startswith("=") for r in rows for v in r.values())


def test_formats_render_every_kind() -> None:
    for fmt in FORMATS:
        out = fmt.render(_turns())
        assert isinstance(out, str) and out.strip(), fmt.key
    empty = [Turn("q", Answer(question="q", text="", error="Please enter a question."))]
    assert to_bibtex(empty) == "" and to_ris(empty) == ""
    assert "Please enter a question." in to_markdown(empty)
