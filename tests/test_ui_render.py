"""ui/render.py: escaping (document text is only ever shown as text) and highlight offsets."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from kb.types import Answer, AnswerSentence, Citation, ComparisonRow, DocMeta, Document, Filters
from ui import Turn
from ui.render import (Mark, answer_html, comparison_html, doc_window, filters_summary, highlight,
                       md_escape, passage_bounds, search_terms_html, sources_html)

EVIL = ('Intro line.\n<script>alert("x")</script> <img src=x onerror="alert(1)"> '
        "[click me](javascript:alert(2)) **bold** & more.\n"
        "Tacrolimus trough levels of 5-10 ng/mL are targeted. Rituximab gave remission in 1 patient.\n")
ALLOWED_TAGS = {"div", "span", "mark", "a", "sup", "details", "summary", "code", "ul", "li", "p",
                "table", "thead", "tbody", "tr", "th", "td"}


class _Collector(HTMLParser):
    """Tags and attributes used, and the text inside each <mark>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.marks: list[str] = []
        self._in_mark = 0
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k == "href" and v:
                self.hrefs.append(v)
        if tag == "mark":
            self._in_mark += 1
            self.marks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self._in_mark -= 1

    def handle_data(self, data: str) -> None:
        if self._in_mark:
            self.marks[-1] += data


def parse(html_text: str) -> _Collector:
    c = _Collector()
    c.feed(html_text)
    c.close()
    return c


def _doc(text: str = EVIL, source: str = "evil.html", title: str = '<b>Bold</b> "title"') -> Document:
    meta = DocMeta(title=title, year=2020, doc_type="review", evidence_level="narrative review (peer-reviewed journal)",
                   publisher="<i>J</i>")
    return Document(doc_id="d1", source=source, text=text, meta=meta, content_hash="h")


def _cite(doc: Document, phrase: str, n: int) -> Citation:
    start = doc.text.index(phrase)
    return Citation(n=n, source=doc.source, title=doc.title, quote=phrase, start=start, end=start + len(phrase),
                    score=1.0, evidence=doc.meta.evidence_level, doc_type=doc.meta.doc_type, year=doc.meta.year)


def _assert_safe(out: str) -> None:
    """Nothing from the document became markup: only our tags, no handlers, no script URLs."""
    found = parse(out)
    assert found.tags <= ALLOWED_TAGS, found.tags - ALLOWED_TAGS
    assert not any(k.startswith("on") for k, _ in found.attrs)
    assert all(h.startswith("#") for h in found.hrefs), found.hrefs
    assert "<script" not in out.lower() and "<img" not in out.lower() and "<b>" not in out


# ---------------------------------------------------------------- highlighting


def test_highlight_marks_exact_offsets_and_escapes() -> None:
    text = "a <b> c & d"
    out = highlight(text, [Mark(2, 5, "m1")])
    assert out == 'a <mark class="kb-hl" id="m1">&lt;b&gt;</mark> c &amp; d'


def test_highlight_with_offset_and_overlaps() -> None:
    text = "0123456789"
    # the text starts at absolute offset 100; spans overlap at 104-105
    out = highlight(text, [Mark(102, 106, "x", "1"), Mark(104, 108, "y", "2")], offset=100)
    found = parse(out)
    assert "".join(found.marks) == "234567"  # every highlighted character once, in order
    assert {"x", "y"} <= found.ids
    assert re.sub(r"<[^>]+>", "", out).replace("[1]", "").replace("[2]", "") == text


def test_highlight_clips_and_handles_empty_spans() -> None:
    out = highlight("abcdef", [Mark(0, 100, "a"), Mark(3, 3, "z")], offset=0)
    found = parse(out)
    assert "".join(found.marks) == "abcdef" and {"a", "z"} <= found.ids
    assert highlight("abc", []) == "abc"


def test_passage_bounds_contains_the_quote() -> None:
    doc = _doc()
    c = _cite(doc, "Tacrolimus trough levels of 5-10 ng/mL are targeted.", 1)
    a, b = passage_bounds(doc.text, c.start, c.end, chunk=(0, len(doc.text)))
    assert a <= c.start and c.end <= b
    long_text = ("Filler sentence number one. " * 40) + "THE QUOTE." + (" Another filler sentence." * 40)
    s = long_text.index("THE QUOTE.")
    a, b = passage_bounds(long_text, s, s + 10, chunk=None)
    assert a <= s and s + 10 <= b and b - a < 700
    assert long_text[a] == "F" and long_text[b - 1] == "."  # starts and ends at sentence boundaries


def test_doc_window_limits_long_documents() -> None:
    assert doc_window(1000, [Mark(10, 20)]) == (0, 1000)
    a, b = doc_window(1_000_000, [Mark(500_000, 500_010)], limit=10_000)
    assert b - a == 10_000 and a <= 500_000 and 500_010 <= b


# ---------------------------------------------------------------- answers and sources


def _turn(answer: Answer, doc: Document) -> Turn:
    return Turn(question=answer.question, answer=answer, documents={doc.source: doc})


def test_sources_never_render_document_markup() -> None:
    doc = _doc()
    c1 = _cite(doc, '<script>alert("x")</script>', 1)
    c2 = _cite(doc, "Tacrolimus trough levels of 5-10 ng/mL are targeted.", 2)
    answer = Answer(question="q", text="", citations=(c1, c2),
                    sentences=(AnswerSentence(c1.quote, (1,)), AnswerSentence(c2.quote, (2,))))
    out = sources_html(_turn(answer, doc), "a0")
    _assert_safe(out)
    assert "&lt;script&gt;" in out and "[click me](javascript:alert(2))" in out
    found = parse(out)
    # each passage and the full-text view highlight exactly the cited span
    assert found.marks.count(c1.quote) == 2 and found.marks.count(c2.quote) == 2
    assert {"a0-c1", "a0-c2", "a0-cm1", "a0-cm2"} <= found.ids  # link targets exist
    assert '<details class="kb-doc"' in out


def test_answer_links_point_at_source_cards() -> None:
    doc = _doc()
    c = _cite(doc, "Rituximab gave remission in 1 patient.", 1)
    answer = Answer(question="q", text="", citations=(c,), sentences=(
        AnswerSentence("<script>alert(1)</script> Rituximab gave remission in 1 patient.", (1,), section="Rituximab"),))
    body = answer_html(answer, "a3")
    _assert_safe(body)
    assert parse(body).hrefs == ["#a3-c1"]
    assert "a3-c1" in parse(sources_html(_turn(answer, doc), "a3")).ids
    assert "Rituximab</div>" in body  # section heading


def test_unsupported_sentences_are_flagged() -> None:
    answer = Answer(question="q", text="", mode="llm", sentences=(
        AnswerSentence("Supported.", (1,)), AnswerSentence("Made up.", (), supported=False)))
    body = answer_html(answer, "a0")
    assert body.count("kb-unsupported") == 1 and "unverified" in body
    assert "<p>" in body  # prose modes stay paragraphs


def test_plain_text_answers_get_linked_markers() -> None:
    body = answer_html(Answer(question="q", text="One <b>thing</b> [1] and [2]."), "a1")
    _assert_safe(body)
    assert parse(body).hrefs == ["#a1-c1", "#a1-c2"]


def test_mismatched_offsets_show_quote_without_fake_highlight() -> None:
    doc = _doc()
    bad = Citation(n=1, source=doc.source, title="t", quote="not in the text <b>", start=0, end=5, score=1.0)
    out = sources_html(_turn(Answer(question="q", text="", citations=(bad,)), doc), "a0")
    _assert_safe(out)
    assert "not found at its offsets" in out and parse(out).marks == ["not in the text <b>"]


def test_comparison_table_and_closest_passages_are_escaped() -> None:
    doc = _doc()
    row = ComparisonRow(entity="CNI <i>", finding="[x](javascript:1)", figure="40-50%", source="<b>s</b>",
                        evidence="case report (single patient)", n=1)
    table = comparison_html([row], "a0")
    _assert_safe(table)
    assert "40-50%" in table and "#a0-c1" in table
    c = _cite(doc, "Rituximab gave remission in 1 patient.", 1)
    abst = Answer(question="q", text="", abstained=True, closest=(c,), search_terms=("sparsentan", "<x>"))
    out = sources_html(_turn(abst, doc), "a0", closest=True)
    _assert_safe(out)
    assert "a0-x1" in parse(out).ids and "Closest passages" in out
    terms = search_terms_html(abst.search_terms)
    _assert_safe(terms)
    assert "&lt;x&gt;" in terms


def test_md_escape_neutralises_markdown() -> None:
    out = md_escape("[link](javascript:alert(1)) <script> **b** $x$")
    assert "](" not in out and "<script>" not in out and "**" not in out and "$x$" not in out


def test_filters_summary() -> None:
    assert filters_summary(Filters()) == ""
    assert filters_summary(Filters(doc_types=("review",), year_min=2010, year_max=2020)) == "review; 2010–2020"
