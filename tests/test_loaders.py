"""Tests of ingest.loaders: every format, every refusal, on small files made in tmp_path."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.loaders import (
    SUPPORTED_SUFFIXES,
    LoadedText,
    load_bytes,
    load_file,
)
from kb.errors import SourceError, UnsupportedFormatError

MAX = 1024 * 1024


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def load_one(path: Path) -> LoadedText:
    items = load_file(path, MAX)
    assert len(items) == 1
    return items[0]


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one content stream per page, Helvetica, correct xref offsets."""
    n = len(pages)
    font_id = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
    ]
    for i, content in enumerate(pages):
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        stream = content.encode("latin-1")
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info_id = None
    if title is not None:
        objs.append(f"<< /Title ({title}) >>".encode("latin-1"))
        info_id = len(objs)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = f"<< /Size {len(objs) + 1} /Root 1 0 R"
    trailer += f" /Info {info_id} 0 R >>" if info_id else " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def page(text: str) -> str:
    return f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"


# ---------------------------------------------------------------------------- plain text


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == {
        ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".nbib", ".medline", ".xml"
    }


def test_txt_is_verbatim_with_crlf(tmp_path: Path) -> None:
    raw = "Line one\r\n\r\n  Indented  line\twith tab\r\nLast"
    doc = load_one(write(tmp_path, "a.txt", raw))
    assert doc.text == raw
    assert doc.fmt == "txt"
    assert doc.part == "" and doc.page_starts == () and doc.warnings == ()
    assert doc.meta.title == ""


def test_txt_strips_utf8_bom_only(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "bom.txt", b"\xef\xbb\xbfNephrotic syndrome \xe2\x80\x93 FSGS\n"))
    assert doc.text == "Nephrotic syndrome \u2013 FSGS\n"
    assert doc.warnings == ()


def test_txt_cp1252_fallback_keeps_file_with_warning(tmp_path: Path) -> None:
    data = "Podocyte \u201cfoot\u201d effacement \u2013 caf\u00e9".encode("cp1252")
    doc = load_one(write(tmp_path, "win.txt", data))
    assert doc.text == "Podocyte \u201cfoot\u201d effacement \u2013 caf\u00e9"
    assert any("not valid UTF-8" in w and "cp1252" in w for w in doc.warnings)


def test_txt_latin1_last_resort(tmp_path: Path) -> None:
    data = b"Byte \x81 undefined in cp1252, caf\xe9 text here."  # 0x81 is unmapped in cp1252
    doc = load_one(write(tmp_path, "l1.txt", data))
    assert doc.text == data.decode("latin-1")
    assert any("latin-1" in w for w in doc.warnings)


def test_txt_utf16_with_bom(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "u16.txt", "FSGS text".encode("utf-16")))
    assert doc.text == "FSGS text"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b" \r\n\t\n  ", "empty file"),
        ("bom-only.md", b"\xef\xbb\xbf", "empty file"),
        ("bin.txt", b"abc\x00\x01\x02\x00def", "binary content in a text file (NUL bytes)"),
        ("ctrl.txt", bytes(range(1, 9)) * 20 + b"abc", "binary content in a text file"),
        ("png.txt", b"\x89PNG\r\n\x1a\nrest", "binary content in a text file"),
        ("empty.pdf", b"", "empty file"),
        ("empty.html", b"   \n", "empty file"),
        ("empty.nbib", b"\n\n", "empty file"),
    ],
)
def test_refused_text_files_name_the_file(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(SourceError) as err:
        load_file(path, MAX)
    assert reason in err.value.reason
    assert name in str(err.value)
    assert not isinstance(err.value, UnsupportedFormatError)


def test_md_raw_with_title(tmp_path: Path) -> None:
    raw = "Intro line\n\n# Treatment of FSGS #\n\n## Steroids\n\nText *here*.\n"
    doc = load_one(write(tmp_path, "t.md", raw))
    assert doc.text == raw
    assert doc.fmt == "md"
    assert doc.meta.title == "Treatment of FSGS"


def test_md_title_ignores_code_fences_and_reads_front_matter(tmp_path: Path) -> None:
    raw = "```\n# not a title\n```\n\nSetext title\n============\n\nbody\n"
    assert load_one(write(tmp_path, "a.markdown", raw)).meta.title == "Setext title"
    front = '---\ntitle: "Front matter title"\n---\n# Heading\n'
    assert load_one(write(tmp_path, "b.md", front)).meta.title == "Front matter title"
    assert load_one(write(tmp_path, "c.md", "no heading\n## only h2\n")).meta.title == ""


# ---------------------------------------------------------------------------- HTML

HTML = """<!DOCTYPE html>
<html><head><title>FSGS treatment | Kidney Clinic</title>
<style>p { color: red; }</style><script>var tracking = "SCRIPT_TEXT";</script></head>
<body>
<header><a href="/">Site banner</a></header>
<nav><ul><li><a href="/">Home NAV_TEXT</a></li></ul></nav>
<main>
<h1>Focal segmental
   glomerulosclerosis</h1>
<p>FSGS is a <b>histological</b> pattern of <i>podocyte</i> injury.</p>
<h2>Treatment</h2>
<ul><li>Glucocorticoids first</li><li><p>Calcineurin inhibitors</p></li><li></li></ul>
<table><tr><th>Drug</th><th>Dose</th></tr><tr><td>Prednisone</td><td>1 mg/kg</td></tr></table>
<div>Remission<br>is defined by proteinuria.</div>
<noscript>NOSCRIPT_TEXT</noscript><aside>ASIDE_TEXT</aside>
<form><label>FORM_TEXT</label><input name="q"></form>
<div role="navigation">ROLE_NAV_TEXT</div><!-- COMMENT_TEXT -->
<div class="accordion-panel" hidden>Collapsed answer stays.</div>
</main>
<footer>FOOTER_TEXT</footer>
</body></html>
"""


def test_html_extracts_readable_text(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "page.html", HTML))
    text = doc.text
    assert doc.fmt == "html"
    assert doc.meta.title == "FSGS treatment | Kidney Clinic"
    for gone in ("SCRIPT_TEXT", "NAV_TEXT", "Site banner", "NOSCRIPT_TEXT", "ASIDE_TEXT",
                 "FORM_TEXT", "ROLE_NAV_TEXT", "COMMENT_TEXT", "FOOTER_TEXT", "color: red"):
        assert gone not in text
    assert "<" not in text and ">" not in text
    lines = text.split("\n")
    assert "Focal segmental glomerulosclerosis" in lines  # heading alone, whitespace collapsed
    assert "Treatment" in lines
    assert "FSGS is a histological pattern of podocyte injury." in lines
    assert "- Glucocorticoids first" in lines
    assert "- Calcineurin inhibitors" in lines
    assert "-" not in lines  # the empty list item leaves nothing
    assert "Drug | Dose" in lines and "Prednisone | 1 mg/kg" in lines
    assert "Remission" in lines and "is defined by proteinuria." in lines
    assert "Collapsed answer stays." in lines  # collapsed accordion panels are content
    assert "\n\n\n" not in text
    assert text == text.strip()


def test_html_title_falls_back_to_h1_and_reads_citation_meta(tmp_path: Path) -> None:
    page_html = (
        "<html><body><header><h1>Site logo</h1></header>"
        "<h1>Only <em>H1</em></h1><p>x y</p></body></html>"
    )
    doc = load_one(write(tmp_path, "a.htm", page_html))
    assert doc.meta.title == "Only H1"
    scholarly = """<html><head><title>Site | Journal</title>
    <meta name="citation_title" content="Collapsing FSGS">
    <meta name="citation_author" content="Jane Roe"><meta name="citation_author" content="John Doe">
    <meta name="citation_doi" content="doi:10.1000/xyz.1">
    <meta name="citation_publication_date" content="2021/03/04">
    <meta name="citation_journal_title" content="Kidney Journal">
    <link rel="canonical" href="https://example.org/a"></head>
    <body><article><header><h1>Collapsing FSGS</h1></header><p>Body text.</p></article></body></html>"""
    doc = load_one(write(tmp_path, "b.html", scholarly))
    assert doc.meta.title == "Collapsing FSGS"
    assert doc.meta.authors == ("Jane Roe", "John Doe")
    assert doc.meta.doi == "10.1000/xyz.1"
    assert doc.meta.year == 2021
    assert doc.meta.publisher == "Kidney Journal"
    assert doc.meta.url == "https://example.org/a"
    # The article's own <header> (its h1) is content, unlike the page banner.
    assert doc.text.startswith("Collapsing FSGS\n\nBody text.")


def test_html_charset_declaration_and_no_text(tmp_path: Path) -> None:
    page_bytes = '<html><head><meta charset="windows-1252"></head><body><p>caf\u00e9 \u2013 ok</p></body></html>'
    doc = load_one(write(tmp_path, "w.html", page_bytes.encode("cp1252")))
    assert doc.text == "caf\u00e9 \u2013 ok"
    with pytest.raises(SourceError, match="no readable text"):
        load_file(write(tmp_path, "s.html", "<html><script>x()</script></html>"), MAX)


def test_html_deep_nesting_does_not_recurse(tmp_path: Path) -> None:
    deep = "<div>" * 3000 + "deep text" + "</div>" * 3000
    assert load_one(write(tmp_path, "deep.html", deep)).text == "deep text"


# ---------------------------------------------------------------------------- PDF


def test_pdf_two_pages(tmp_path: Path) -> None:
    data = make_pdf([page("Hello page one"), page("Hello page two")], title="FSGS Review")
    doc = load_one(write(tmp_path, "two.pdf", data))
    assert doc.fmt == "pdf"
    assert doc.meta.title == "FSGS Review"
    assert len(doc.page_starts) == 2 and doc.page_starts[0] == 0
    assert doc.text == "Hello page one\n\f\nHello page two"
    one = doc.text[doc.page_starts[0] : doc.page_starts[1]]
    two = doc.text[doc.page_starts[1] :]
    assert one.strip() == "Hello page one"
    assert two == "Hello page two"
    assert doc.warnings == ()


def test_pdf_without_title_and_with_empty_page(tmp_path: Path) -> None:
    data = make_pdf(["", page("Only text here")])
    doc = load_one(write(tmp_path, "p.pdf", data))
    assert doc.meta.title == ""
    assert doc.page_starts == (0, 3)
    assert doc.text[doc.page_starts[1] :] == "Only text here"
    assert any("no text layer" in w for w in doc.warnings)


def test_pdf_no_text_layer(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.pdf", make_pdf(["", ""]))
    with pytest.raises(SourceError) as err:
        load_file(path, MAX)
    assert "no text layer" in err.value.reason and "OCR" in err.value.reason
    assert "scan.pdf" in str(err.value)


def test_pdf_truncated(tmp_path: Path) -> None:
    data = make_pdf([page("Hello page one"), page("Hello page two")])
    path = write(tmp_path, "cut.pdf", data[: len(data) // 2])
    with pytest.raises(SourceError) as err:
        load_file(path, MAX)
    assert "corrupt or truncated PDF" in err.value.reason
    assert "cut.pdf" in str(err.value)


def test_pdf_that_is_not_a_pdf(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a PDF"):
        load_file(write(tmp_path, "fake.pdf", "<html>login page</html>"), MAX)


# ---------------------------------------------------------------------------- PubMed

NBIB = """PMID- 11111111
OWN - NLM
STAT- MEDLINE
DP  - 2019 Nov-Dec
TI  - Focal segmental glomerulosclerosis: a review of
      pathogenesis and treatment.
LID - 10.1000/fsgs.2019.1 [doi]
AB  - BACKGROUND: FSGS is a pattern of glomerular injury. METHODS: We reviewed
      the literature. CONCLUSIONS: Treatment depends on the cause.
FAU - Smith, John A
AU  - Smith JA
FAU - van der Berg, Anna
AU  - van der Berg A
PT  - Journal Article
PT  - Review
JT  - Journal of Nephrology Tests
TA  - J Nephrol Tests

PMID- 22222222
DP  - 2021 Mar 4
TI  - Rituximab in steroid-resistant FSGS.
AB  - A single-patient case of remission.
AU  - Doe J
PT  - Case Reports
TA  - Kidney Case Rep
AID - S0000-0000(21)00001-1 [pii]
AID - 10.2000/kcr.2021.7 [doi]
"""


def test_nbib_two_records(tmp_path: Path) -> None:
    items = load_file(write(tmp_path, "refs.nbib", NBIB.replace("\n", "\r\n")), MAX)
    assert [i.part for i in items] == ["pmid-11111111", "pmid-22222222"]
    a, b = items
    assert a.fmt == "pubmed"
    assert a.meta.pmid == "11111111"
    assert a.meta.doi == "10.1000/fsgs.2019.1"
    assert a.meta.title == "Focal segmental glomerulosclerosis: a review of pathogenesis and treatment."
    assert a.meta.authors == ("John A Smith", "Anna van der Berg")
    assert a.meta.year == 2019
    assert a.meta.publisher == "Journal of Nephrology Tests"
    assert a.meta.doc_type == "review"
    assert a.text == (
        "Focal segmental glomerulosclerosis: a review of pathogenesis and treatment.\n\n"
        "BACKGROUND: FSGS is a pattern of glomerular injury.\n\n"
        "METHODS: We reviewed the literature.\n\n"
        "CONCLUSIONS: Treatment depends on the cause."
    )
    assert b.meta.pmid == "22222222"
    assert b.meta.doi == "10.2000/kcr.2021.7"
    assert b.meta.authors == ("Doe J",)
    assert b.meta.year == 2021
    assert b.meta.publisher == "Kidney Case Rep"
    assert b.meta.doc_type == "case report"
    assert b.text == "Rituximab in steroid-resistant FSGS.\n\nA single-patient case of remission."


def test_nbib_single_record_has_no_part(tmp_path: Path) -> None:
    one = NBIB.split("\n\n")[1]
    doc = load_one(write(tmp_path, "one.medline", one))
    assert doc.part == "" and doc.meta.pmid == "22222222"


def test_nbib_without_records(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        load_file(write(tmp_path, "notes.nbib", "just some notes\nnothing tagged\n"), MAX)
    assert "no PubMed record found" in err.value.reason
    assert "notes.nbib" in str(err.value)


PUBMED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">
<PubmedArticleSet>
<PubmedArticle>
  <MedlineCitation Status="MEDLINE" Owner="NLM">
    <PMID Version="1">33333333</PMID>
    <Article PubModel="Print">
      <Journal>
        <JournalIssue CitedMedium="Internet">
          <PubDate><Year>2020</Year><Month>Jan</Month></PubDate>
        </JournalIssue>
        <Title>Kidney International Tests</Title>
      </Journal>
      <ArticleTitle>APOL1 and <i>collapsing</i> FSGS.</ArticleTitle>
      <ELocationID EIdType="doi" ValidYN="Y">10.3000/eloc.1</ELocationID>
      <Abstract>
        <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">APOL1 risk variants matter.</AbstractText>
        <AbstractText Label="RESULTS" NlmCategory="RESULTS">Risk was 10<sup>2</sup>-fold.</AbstractText>
        <CopyrightInformation>Copyright 2020.</CopyrightInformation>
      </Abstract>
      <AuthorList CompleteYN="Y">
        <Author ValidYN="Y"><LastName>Roe</LastName><ForeName>Jane</ForeName><Initials>J</Initials></Author>
        <Author ValidYN="Y"><CollectiveName>FSGS Study Group</CollectiveName></Author>
      </AuthorList>
      <PublicationTypeList>
        <PublicationType UI="D016428">Journal Article</PublicationType>
        <PublicationType UI="D016449">Randomized Controlled Trial</PublicationType>
      </PublicationTypeList>
    </Article>
  </MedlineCitation>
  <PubmedData>
    <ArticleIdList>
      <ArticleId IdType="pubmed">33333333</ArticleId>
      <ArticleId IdType="doi">10.3000/kit.2020.5</ArticleId>
    </ArticleIdList>
    <ReferenceList><Reference><ArticleIdList>
      <ArticleId IdType="doi">10.9999/cited.paper</ArticleId>
    </ArticleIdList></Reference></ReferenceList>
  </PubmedData>
</PubmedArticle>
</PubmedArticleSet>
"""


def test_pubmed_xml_structured_abstract(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "apol1.xml", PUBMED_XML))
    assert doc.fmt == "pubmed" and doc.part == ""
    assert doc.meta.pmid == "33333333"
    assert doc.meta.doi == "10.3000/kit.2020.5"  # the article's own, not a cited paper's
    assert doc.meta.title == "APOL1 and collapsing FSGS."
    assert doc.meta.authors == ("Jane Roe", "FSGS Study Group")
    assert doc.meta.year == 2020
    assert doc.meta.publisher == "Kidney International Tests"
    assert doc.meta.doc_type == "randomized controlled trial"
    assert doc.text == (
        "APOL1 and collapsing FSGS.\n\n"
        "BACKGROUND: APOL1 risk variants matter.\n\n"
        "RESULTS: Risk was 102-fold."
    )


def test_pubmed_xml_medline_date_and_two_records(tmp_path: Path) -> None:
    second = (
        PUBMED_XML.split("<PubmedArticleSet>")[1].split("</PubmedArticleSet>")[0]
        .replace("33333333", "44444444")
        .replace("<Year>2020</Year><Month>Jan</Month>", "<MedlineDate>1998 Dec-1999 Jan</MedlineDate>")
    )
    data = PUBMED_XML.replace("</PubmedArticleSet>", second + "</PubmedArticleSet>")
    items = load_file(write(tmp_path, "set.xml", data), MAX)
    assert [i.part for i in items] == ["pmid-33333333", "pmid-44444444"]
    assert items[1].meta.year == 1998


def test_xml_not_pubmed(tmp_path: Path) -> None:
    path = write(tmp_path, "feed.xml", "<?xml version='1.0'?><rss><channel><title>x</title></channel></rss>")
    with pytest.raises(SourceError) as err:
        load_file(path, MAX)
    assert "not a PubMed" in err.value.reason and "<rss>" in err.value.reason
    assert "feed.xml" in str(err.value)


def test_xml_malformed_and_entities_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="malformed XML"):
        load_file(write(tmp_path, "bad.xml", "<PubmedArticleSet><PubmedArticle>"), MAX)
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;">]><PubmedArticleSet>&lol2;</PubmedArticleSet>'
    )
    with pytest.raises(SourceError, match="entity"):
        load_file(write(tmp_path, "bomb.xml", bomb), MAX)


# ---------------------------------------------------------------------------- file access


def test_unknown_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "slides.pptx", b"PK\x03\x04")
    with pytest.raises(UnsupportedFormatError) as err:
        load_file(path, MAX)
    assert "unsupported file type '.pptx'" in err.value.reason
    assert ".pdf" in err.value.reason and "slides.pptx" in str(err.value)
    with pytest.raises(UnsupportedFormatError, match="no extension"):
        load_bytes("README", b"text")


def test_suffix_is_case_insensitive() -> None:
    assert load_bytes("NOTES.TXT", b"hello")[0].text == "hello"


def test_unreadable_file_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    path = write(tmp_path, "secret.txt", "text")
    real_open = os.open

    def deny(target, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(SourceError) as err:
        load_file(path, MAX)
    assert "cannot read" in err.value.reason and "permission denied" in err.value.reason
    assert "secret.txt" in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_chmod(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.txt", "text")
    path.chmod(0)
    try:
        with pytest.raises(SourceError, match="cannot read"):
            load_file(path, MAX)
    finally:
        path.chmod(0o644)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(SourceError) as err:
        load_file(folder, MAX)
    assert "cannot read" in err.value.reason and "folder.txt" in str(err.value)
    with pytest.raises(SourceError, match="cannot read file: file not found"):
        load_file(tmp_path / "gone.txt", MAX)


def test_too_large_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as fh:
        fh.truncate(3 * 1024**3)  # sparse: 3 GB on paper, nothing on disk

    def no_reading(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        raise AssertionError("the loader read a file it should refuse")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(SourceError) as err:
        load_file(path, 50 * 1024 * 1024)
    assert err.value.reason == "file is 3072 MB, above the 50 MB limit"
    assert "huge.pdf" in str(err.value)


def test_small_limit_message_uses_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "x" * 2000)
    with pytest.raises(SourceError, match=r"file is 2\.0 KB, above the 100 bytes limit"):
        load_file(path, 100)


# ---------------------------------------------------------------------------- properties

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(_TEXT.filter(lambda s: s.strip()))
def test_property_txt_round_trips_verbatim(text: str) -> None:
    assert load_bytes("p.txt", text.encode("utf-8"))[0].text == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["a.txt", "a.md", "a.html", "a.nbib", "a.xml", "a.pdf"]),
    st.binary(max_size=300) | _TEXT.map(lambda s: s.encode("utf-8")),
)
def test_property_any_bytes_load_or_raise_source_error(name: str, data: bytes) -> None:
    try:
        items = load_bytes(name, data)
    except SourceError as exc:
        assert exc.source == name and exc.reason
        return
    assert items and all(item.text.strip() for item in items)


_VALID_PDF = make_pdf([page("Hello page one"), page("Hello page two")], title="T")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(_VALID_PDF) - 1), st.integers(0, 255))
def test_property_damaged_pdf_never_crashes(pos: int, value: int) -> None:
    data = _VALID_PDF[:pos] + bytes([value]) + _VALID_PDF[pos + 1 :]
    try:
        items = load_bytes("d.pdf", data)
    except SourceError as exc:
        assert exc.reason
        return
    doc = items[0]
    assert doc.page_starts and doc.page_starts[0] == 0
    assert all(0 <= s <= len(doc.text) for s in doc.page_starts)


def test_a_file_swapped_for_a_fifo_after_the_scan_is_refused_without_blocking(tmp_path, monkeypatch) -> None:
    """The corpus scan saw a regular file; by the time it is opened it is a named pipe with no
    writer. Opening it must not block: the check is made on the opened file."""
    import os
    import threading

    path = tmp_path / "swapped.txt"
    os.mkfifo(path)
    regular = write(tmp_path, "regular.txt", "text").stat()
    real_stat = Path.stat
    # Any stat() of the path made before opening it sees the regular file the scan saw.
    monkeypatch.setattr(Path, "stat", lambda self, **kw: regular if self == path else real_stat(self, **kw))
    errors: list[Exception] = []

    def run() -> None:
        try:
            load_file(path, MAX)
        except SourceError as e:
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "load_file blocked on a FIFO"
    assert errors and "not a regular file" in str(errors[0])
