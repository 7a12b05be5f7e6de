"""The draft audit: citation resolution (no index needed), the draft's units, verdicts on a
made-up corpus with the fake embedder, the CLI and the exports."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kb.audit import audit_text, draft_units
from kb.audit_cite import Resolver, find_citations, resolve_references, split_references, strip_citations, surname
from kb.audit_export import to_csv, to_markdown
from kb.audit_input import read_draft
from kb.audit_types import (AMBIGUOUS, NO_CLAIM, NOT_FOUND, NUMBERS_DIFFER, RESOLVED, SUPPORTED,
                            SUPPORTED_BY_CITED, SUPPORTED_ELSEWHERE, UNRESOLVED, VERDICTS)
from kb.config import Settings
from kb.errors import DraftError
from kb.types import DocMeta, Document, Reference
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder

ALPHA = ("Alphamab in resistant nephrosis\n\n"
         "Alphamab induced complete remission in 40-50% of adults with resistant nephrosis. "
         "The usual dose of alphamab is 2-4 mg/kg/day given in two divided doses. "
         "Alphamab treatment should continue for at least 12 months to prevent relapse of nephrosis.\n")
BETA = ("Betazol for proteinuria: a review\n\n"
        "Betazol lowered urinary protein excretion by 30% in adults with membranous nephropathy. "
        "Headache occurred in 10% of patients treated with betazol. "
        "Resistance to steroids is defined by persistent nephrosis after 16 weeks of prednisone.\n\n"
        "References\n\n"
        "1. Smith AB, Lee C. Alphamab in resistant nephrosis. Kidney J. 2010;4:1-9.\n"
        "2. Smith AB. Alphamab dosing revisited. Kidney J. 2012;5:10-19.\n")
GAMMA = ("Gammacillin notes\n\n"
         "Gammacillin cleared bacterial peritonitis in 85% of dialysis patients within 14 days.\n")
META = {
    "alpha.txt": {"title": "Alphamab in resistant nephrosis", "authors": ["Smith AB", "Lee C"], "year": 2010,
                  "doi": "10.1234/alpha.2010.7"},
    "beta.txt": {"title": "Betazol for proteinuria: a review", "authors": ["Jones CD"], "year": 2015,
                 "pmid": "12345678"},
    "gamma.txt": {"title": "Gammacillin notes", "authors": ["Wee Leng Gan"], "year": None},
}


def _doc(source: str, text: str) -> Document:
    return Document(doc_id=source, source=source, text=text, meta=DocMeta.from_dict(META[source]), content_hash="x")


@pytest.fixture
def resolver() -> Resolver:
    docs = [_doc("alpha.txt", ALPHA), _doc("beta.txt", BETA), _doc("gamma.txt", GAMMA)]
    refs = [Reference(ref_id="r1", doc_id="beta.txt", source="beta.txt", n=1, raw="", start=0, end=0,
                      authors=("Smith AB", "Lee C"), title="Alphamab in resistant nephrosis", year=2010),
            Reference(ref_id="r2", doc_id="beta.txt", source="beta.txt", n=2, raw="", start=0, end=0,
                      authors=("Smith AB",), title="Alphamab dosing revisited", year=2012),
            Reference(ref_id="r3", doc_id="beta.txt", source="beta.txt", n=3, raw="", start=0, end=0,
                      authors=("Jones CD",), title="Betazol for proteinuria: a review", year=2015)]
    return Resolver(docs, refs)


def cites(text: str, resolver: Resolver):  # type: ignore[no-untyped-def]
    end, entries = split_references(text)
    refs = resolve_references(text, entries, resolver)
    return find_citations(text, 0, end, refs, resolver, has_reference_list=bool(entries))


# ---------------------------------------------------------------------------- resolution

def test_surnames() -> None:
    assert surname("Cattran DC") == "cattran"
    assert surname("Wee Leng Gan") == "gan"
    assert surname("Cattran, D. C.") == "cattran"


def test_numbered_citations_resolve_through_the_drafts_reference_list(resolver: Resolver) -> None:
    draft = ("Alphamab works [1]. Betazol too [2,3]. Both [1-2]. Unknown [4].\n\nReferences\n"
             "1. Smith AB. Alphamab in resistant nephrosis. Kidney J. 2010.\n"
             "2. Jones CD. A review. PMID: 12345678\n"
             "3. Nobody X. Something else entirely. 2020.\n")
    c = cites(draft, resolver)
    assert [x.text for x in c] == ["[1]", "[2,3]", "[1-2]", "[4]"]
    assert c[0].sources == ("alpha.txt",) and c[0].status == RESOLVED
    assert c[1].sources == ("beta.txt",) and "[3]" in c[1].note and "names no document" in c[1].note
    assert c[2].sources == ("alpha.txt", "beta.txt")
    assert c[3].sources == () and c[3].status == UNRESOLVED and "no such entry" in c[3].note


def test_numbered_citation_without_a_reference_list_is_unresolved(resolver: Resolver) -> None:
    c = cites("Alphamab works in 40-50% [1].\n", resolver)
    assert c[0].status == UNRESOLVED and "no reference list" in c[0].note


def test_trailing_numbered_block_with_years_is_a_reference_list() -> None:
    text = "Body sentence [1].\n\n1. Smith AB. Alphamab in resistant nephrosis. 2010.\n2. Jones CD. Review. 2015.\n"
    end, entries = split_references(text)
    assert text[:end].strip() == "Body sentence [1]." and [e.n for e in entries] == [1, 2]
    steps = "How to start:\n1. Check the dose.\n2. Monitor the level.\n"
    assert split_references(steps) == (len(steps), [])  # a numbered list without years stays body


@pytest.mark.parametrize("text, sources, status", [
    ("Remission is common (Smith 2010).", ("alpha.txt",), RESOLVED),
    ("Remission is common (Smith et al., 2010).", ("alpha.txt",), RESOLVED),
    ("Remission is common (Smith and Lee 2010; Jones 2015).", ("alpha.txt", "beta.txt"), RESOLVED),
    ("Smith et al. (2010) found remission.", ("alpha.txt",), RESOLVED),
    ("Remission is common (Smith 2012).", (), UNRESOLVED),  # in a reference list, not in the corpus
    ("Remission is common (Brown 2001).", (), UNRESOLVED),
    ("Remission is common (Gan 2019).", (), UNRESOLVED),  # author known, year not in the catalogue
    ("Remission is common (doi:10.1234/alpha.2010.7).", ("alpha.txt",), RESOLVED),
    ("Remission is common, https://doi.org/10.1234/ALPHA.2010.7 says.", ("alpha.txt",), RESOLVED),
    ("Proteinuria fell (PMID: 12345678).", ("beta.txt",), RESOLVED),
    ("Proteinuria fell (PMID 99999999).", (), UNRESOLVED),
    ('As "Betazol for proteinuria: a review" reports, it fell.', ("beta.txt",), RESOLVED),
])
def test_inline_citations(resolver: Resolver, text: str, sources: tuple, status: str) -> None:
    c = cites(text, resolver)
    assert len(c) == 1, c
    assert c[0].sources == sources and c[0].status == status, c[0]
    if not sources:
        assert c[0].note  # the reason is reported


def test_unresolved_notes_say_why(resolver: Resolver) -> None:
    (c,) = cites("X (Smith 2012).", resolver)
    assert "Alphamab dosing revisited" in c.note and "not in the corpus" in c.note
    (c,) = cites("X (Gan 2019).", resolver)
    assert "gives no year" in c.note


def test_ambiguous_author_year(resolver: Resolver) -> None:
    docs = [*resolver.documents, Document(doc_id="d", source="alpha2.txt", text="x", content_hash="x",
                                          meta=DocMeta(title="Another alphamab paper", authors=("Smith AB",), year=2010))]
    (c,) = cites("X (Smith 2010).", Resolver(docs, resolver.references))
    assert c.status == AMBIGUOUS and set(c.sources) == {"alpha.txt", "alpha2.txt"}


def test_titles_prefer_the_longest_match(resolver: Resolver) -> None:
    docs = [*resolver.documents, Document(doc_id="d", source="short.txt", text="x", content_hash="x",
                                          meta=DocMeta(title="Alphamab in resistant nephrosis: long-term results"))]
    r = Resolver(docs, [])
    assert r.by_title("Smith AB. Alphamab in resistant nephrosis: long-term results. 2011") == ["short.txt"]


def test_strip_citations(resolver: Resolver) -> None:
    text = "Alphamab works (Smith 2010) in 40-50% [1]."
    c = cites(text, resolver)
    assert strip_citations(text, 0, len(text), c) == "Alphamab works in 40-50%."


# ---------------------------------------------------------------------------- the draft's units

def test_draft_units() -> None:
    text = ("# Alphamab\n\nAlphamab works well. It is given daily (Smith et al., 2010). Is it safe?\n\n"
            "Dosing\n- Give 2 mg/kg/day.\n- Monitor levels.\n")
    units = draft_units(text)
    shown = [(text[u.start:u.end], u.heading) for u in units]
    assert shown == [("Alphamab", True), ("Alphamab works well.", False),
                     ("It is given daily (Smith et al., 2010).", False), ("Is it safe?", False),
                     ("Dosing", True), ("Give 2 mg/kg/day.", False), ("Monitor levels.", False)]


def test_read_draft_formats(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("Alphamab works [1].")
    d.add_heading("References", level=2)
    d.add_paragraph("Smith AB. Alphamab in resistant nephrosis. 2010.", style="List Number")
    d.add_paragraph("Jones CD. Betazol for proteinuria: a review. 2015.", style="List Number")
    buf = io.BytesIO()
    d.save(buf)
    text = read_draft("draft.docx", buf.getvalue(), 10_000)
    assert "Alphamab works [1]." in text
    assert "1. Smith AB. Alphamab" in text and "2. Jones CD." in text  # Word's list numbers written out
    assert read_draft("d.txt", "caf\u00e9 [1].".encode("cp1252"), 100) == "caf\u00e9 [1]."
    for name, data, why in [("d.pdf", b"%PDF", "cannot audit"), ("d.docx", b"not a zip", "not a readable"),
                            ("d.txt", b"  \n", "empty"), ("d.md", b"x" * 200, "more than")]:
        with pytest.raises(DraftError, match=why):
            read_draft(name, data, 100)


# ---------------------------------------------------------------------------- verdicts

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    root = tmp_path_factory.mktemp("audit")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in (("alpha.txt", ALPHA), ("beta.txt", BETA), ("gamma.txt", GAMMA)):
        (corpus / name).write_text(text, encoding="utf-8")
    (corpus / "catalogue.yaml").write_text(yaml.safe_dump({"documents": META}), encoding="utf-8")
    settings = replace(Settings(), corpus_dir=corpus, index_dir=root / "index", model_name=FAKE_MODEL_NAME)
    embedder = FakeEmbedder()
    ingest_corpus(corpus, settings.index_dir, embedder=embedder, settings=settings, show_progress=False)
    return open_kb(settings.index_dir, embedder=embedder, settings=settings)


DRAFT = """# Alphamab review

Alphamab induced complete remission in 40-50% of adults with resistant nephrosis [1].
Alphamab induced complete remission in 70% of adults with resistant nephrosis [1].
The usual dose of alphamab is 2-4 mg/kg/day given in two divided doses [2].
Alphamab treatment should continue for at least 12 months to prevent relapse of nephrosis.
Zetamab cured lupus nephritis in 95% of children after 3 infusions [1].
What comes next?
Headache occurred in 10% of patients treated with betazol (Jones 2015).
Steroid resistance is defined by persistent nephrosis after 26 weeks of prednisone (PMID: 12345678).

References
1. Smith AB, Lee C. Alphamab in resistant nephrosis. Kidney J. 2010.
2. Jones CD. Betazol for proteinuria: a review. 2015.
"""
EXPECTED = [NO_CLAIM, SUPPORTED_BY_CITED, NUMBERS_DIFFER, SUPPORTED_ELSEWHERE, SUPPORTED_ELSEWHERE, NOT_FOUND,
            NO_CLAIM, SUPPORTED_BY_CITED, NUMBERS_DIFFER]


def test_verdicts_on_a_made_up_corpus(base) -> None:  # type: ignore[no-untyped-def]
    report = audit_text(base, DRAFT, name="draft.md")
    got = [s.verdict for s in report.sentences]
    assert got == EXPECTED, [(s.text, s.verdict, s.reason) for s in report.sentences]
    by = report.sentences
    assert by[1].resolved_sources == ("alpha.txt",) and by[1].evidence[0].source == "alpha.txt"
    assert "70%" in by[2].reason and "40-50%" in by[2].reason  # both figures shown
    assert by[3].citations[0].sources == ("beta.txt",)  # cited beta, but alpha says it
    assert by[3].evidence[0].source == "alpha.txt" and "does not say it" in by[3].reason
    assert "no citation" in by[4].reason
    assert "26 weeks" in by[8].reason and "16 weeks" in by[8].reason
    for s in report.sentences:
        assert s.verdict in VERDICTS and s.reason
        assert report.text[s.start:s.end] == s.text
        for e in s.evidence:
            assert base.document(e.source).text[e.start:e.end] == e.quote
    assert report.counts()[SUPPORTED_BY_CITED] == 2


@pytest.mark.parametrize("altered", [
    "Alphamab induced complete remission in 60% of adults with resistant nephrosis [1].",
    "The usual dose of alphamab is 2-6 mg/kg/day given in two divided doses [1].",
    "The usual dose of alphamab is 8 mg/kg/day given in two divided doses.",
    "Alphamab treatment should continue for at least 24 months to prevent relapse of nephrosis [1].",
    "Headache occurred in 20% of patients treated with betazol (Jones 2015).",
])
def test_an_altered_number_is_never_supported(base, altered: str) -> None:  # type: ignore[no-untyped-def]
    draft = altered + "\n\nReferences\n1. Smith AB, Lee C. Alphamab in resistant nephrosis. 2010.\n"
    (s,) = audit_text(base, draft).sentences
    assert s.verdict not in SUPPORTED, (s.verdict, s.reason)
    assert s.verdict == NUMBERS_DIFFER, s.reason


def test_a_figure_in_another_unit_is_compared(base) -> None:  # type: ignore[no-untyped-def]
    (s,) = audit_text(base, "Alphamab treatment should continue for at least 1 year to prevent relapse "
                            "of nephrosis (Smith 2010).").sentences
    assert s.verdict == SUPPORTED_BY_CITED, s.reason


# ---------------------------------------------------------------------------- exports and CLI

def test_exports(base) -> None:  # type: ignore[no-untyped-def]
    report = audit_text(base, DRAFT, name="draft.md")
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {int(r["sentence_no"]) for r in rows} == set(range(1, len(report.sentences) + 1))
    for r in rows:
        assert r["verdict"] in VERDICTS
        if r["source_file"]:
            assert base.document(r["source_file"]).text[int(r["start"]):int(r["end"])] == r["quote"]
    assert any(r["citation"] == "[1]" and r["resolved_source"] == "alpha.txt" for r in rows)
    md = to_markdown(report)
    assert "Numbers differ" in md and "not detected" in md and "The draft's reference list" in md


def _cli(monkeypatch: pytest.MonkeyPatch, base, argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    import kb.api
    from kb.__main__ import main

    monkeypatch.setattr(kb.api, "load_embedder", lambda name, backend=None: FakeEmbedder())
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_json_and_files(base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    index = str(base.info.path)
    rc, out, _ = _cli(monkeypatch, base, ["audit", "--index", index, "--json", "--csv", str(tmp_path / "a.csv"),
                                          "--markdown", str(tmp_path / "a.md"), str(draft)], capsys)
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["verdict"] for r in rows] == EXPECTED
    for r in rows:
        assert {"sentence", "citation", "resolved_source", "verdict", "reason", "evidence"} <= set(r)
    assert rows[1]["citation"] == "[1]" and rows[1]["resolved_source"] == ["alpha.txt"]
    assert rows[1]["evidence"][0]["quote"] and (tmp_path / "a.csv").is_file() and (tmp_path / "a.md").is_file()
    rc, out, _ = _cli(monkeypatch, base, ["audit", "--index", index, str(draft)], capsys)
    assert rc == 0 and "[numbers-differ]" in out and "Verdicts:" in out


def test_cli_bad_input(base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    rc, _, err = _cli(monkeypatch, base, ["audit", "--index", str(base.info.path), str(tmp_path / "none.md")], capsys)
    assert rc == 2 and "none.md" in err
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF")
    rc, _, err = _cli(monkeypatch, base, ["audit", "--index", str(base.info.path), str(bad)], capsys)
    assert rc == 2 and "cannot audit" in err


def test_mined_abbreviations_that_are_words_are_not_terms() -> None:
    """A corpus defining "immunosuppression (IS)" must not make every "is" an immunosuppressant
    mention (that made each claim with "is" require immunosuppressants of its evidence)."""
    from kb.query import load_vocabulary

    vocab = load_vocabulary().with_abbreviations([("IS", "immunosuppression"), ("ml", "millilitre"),
                                                  ("CsAx", "cyclosporine")])
    found = vocab.concepts_in("The trough of cyclosporine is 100-175 ng/ml.")
    assert "immunosuppressants" not in found and "abbr:ml" not in found
    assert "cyclosporine" in vocab.concepts_in("CsAx was given")  # a real short form still works
