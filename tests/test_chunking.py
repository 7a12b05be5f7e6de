"""Chunking, cleaning and sentence spans: the offset invariant on arbitrary text, and the
structure of the bundled corpus."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.boilerplate import is_boilerplate
from ingest.chunking import chunk_document, embedding_text
from ingest.sentences import sentence_spans
from ingest.structure import BOILERPLATE, REFERENCE, classify
from kb.config import ChunkSettings
from kb.types import DocMeta, Document
from tests.conftest import SEED_CORPUS

SMALL = ChunkSettings(max_chars=120, min_chars=40, max_sentence_chars=60)

# Text built from the pieces that exercise the chunker: headings, bullets, numbered items,
# indentation, several line-break styles, abbreviations, numbers and non-ASCII letters.
_pieces = st.sampled_from([
    "# Heading\n", "Treatment of FSGS\n", "  • Cyclosporine: 3-5 mg/kg/day 1\n", "1. Confirm resistance:\n",
    "    - nested item\n", "\n", "\r\n", "\f", "Dr. Smith et al. reported 2.4 g. ", "Remission was 40-50%. ",
    "Share Link\n", "Kim JS, Han BG. Title. Journal. 2016;2016:1.\n", "μg/ml ≥ 3.5g ", "word " * 30, "   ",
])
texts = st.one_of(st.text(max_size=400), st.lists(_pieces, max_size=40).map("".join))


def _doc(text: str) -> Document:
    return Document(doc_id="d", source="d.txt", text=text, meta=DocMeta(title="T"), content_hash="h")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from([SMALL, ChunkSettings()]))
def test_offset_invariant_on_arbitrary_text(text: str, cs: ChunkSettings) -> None:
    chunks = chunk_document(_doc(text), cs)
    last_end = 0
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert 0 <= c.start < c.end <= len(text)
        assert c.start >= last_end, "chunks overlap or are out of order"
        last_end = c.end
        assert c.sentences, "a chunk without a citable sentence"
        prev = c.start
        for a, b in c.sentences:
            assert c.start <= a < b <= c.end and a >= prev
            assert text[a:b] == text[a:b].strip(), "sentence spans are whitespace-trimmed"
            prev = b


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=20, max_value=200))
def test_sentence_spans_cover_all_text_within_the_length_bound(text: str, max_chars: int) -> None:
    spans = sentence_spans(text, 0, len(text), max_chars=max_chars)
    covered = "".join(text[a:b] for a, b in spans)
    assert "".join(covered.split()) == "".join(text.split()), "no non-space character lost or repeated"
    for a, b in spans:
        assert b - a <= max_chars


def test_long_paragraph_is_cut_at_sentence_boundaries() -> None:
    sentence = "Cyclosporine was given at 3-5 mg/kg/day for twelve months. "
    text = "Heading\n\n" + sentence * 12
    chunks = chunk_document(_doc(text), SMALL)
    assert len(chunks) > 3
    for c in chunks[1:]:
        assert c.text.startswith("Cyclosporine") and c.text.endswith("months.")


def _seed(name: str) -> Document:
    path = next(SEED_CORPUS.glob(f"{name}*"))
    return Document(doc_id="s", source=path.name, text=path.read_text(encoding="utf-8"),
                    meta=DocMeta(title="t"), content_hash="h")


def test_boilerplate_and_references_never_reach_a_chunk() -> None:
    forbidden = ["Leave A Message", "Share Link", "Personalize", "Which best describes you",
                 "Professional Medical Disclaimer", "no refbacks", "Kim JS, Han BG", "MeSH terms",
                 "Full Text: PDF", "Article Review Status", "Our Medical A.I."]
    for path in sorted(SEED_CORPUS.glob("*.txt")):
        doc = _seed(path.name[:3])
        joined = "\n".join(c.text for c in chunk_document(doc, ChunkSettings()))
        for phrase in forbidden:
            assert phrase not in joined, f"{phrase!r} indexed from {path.name}"


def test_headings_and_list_intros_stay_with_their_content() -> None:
    doc = _seed("000")
    chunks = chunk_document(doc, ChunkSettings())
    trough = [c for c in chunks if "Target trough levels:" in c.text]
    assert len(trough) == 1 and "Tacrolimus: 5-10 ng/ml" in trough[0].text
    assert trough[0].section == "First-Line Approach for Resistant FSGS"
    for c in chunks:
        assert c.sentences, "a heading never stands alone as a chunk"
    # The bullet marker is not a sentence: "1." must never be cited on its own.
    for c in chunks:
        for a, b in c.sentences:
            assert doc.text[a:b] not in {"1.", "2.", "•", "-"}


def test_classify_marks_web_furniture_as_boilerplate() -> None:
    doc = _seed("001")
    kinds = {doc.text[b.start:b.end].strip(): b.kind for b in classify(doc.text)}
    assert kinds["Share Link"] == BOILERPLATE
    assert kinds["Leave A Message"] == BOILERPLATE
    assert kinds["Principles of treatment for primary FSGS"] == "heading"
    refs = [b for b in classify(_seed("004").text) if b.kind == REFERENCE]
    assert len(refs) == 26


def test_embedding_text_adds_title_and_section_for_context() -> None:
    doc = _seed("000")
    doc = Document(**{**doc.__dict__, "meta": DocMeta(title="Resistant FSGS")})
    chunk = next(c for c in chunk_document(doc, ChunkSettings()) if c.text.startswith("CNIs have"))
    text = embedding_text(doc, chunk)
    assert text.startswith("Resistant FSGS\n" + chunk.section + "\n")
    assert text.endswith(chunk.text)


def test_windows_line_endings_keep_exact_offsets(tmp_path: Path) -> None:
    text = _seed("003").text.replace("\n", "\r\n")
    chunks = chunk_document(_doc(text), ChunkSettings())
    assert len(chunks) >= 8
    assert all(c.text == text[c.start:c.end] for c in chunks)
    assert any(c.section == "Plasma exchange" for c in chunks)


@pytest.mark.parametrize("line", [
    "Leave us a comment", "Got any other questions?", "We hope this article was helpful to you.",
    "Chat with a live expert now", "Personalise your content", "Reviewed by:", "Print this page",
    "For informational purposes only.", "This content is meant for medical professionals only.",
    "Editorial status", "Under review", "Share on Facebook", "There are no refbacks.",
    "This site is not meant as a replacement for medical advice.",
])
def test_furniture_kinds_match_wordings_no_bundled_page_uses(line: str) -> None:
    # Made-up wordings of each kind of furniture: the patterns name kinds, not one page's text.
    assert is_boilerplate(line)


@pytest.mark.parametrize("line", [
    "Ask your doctor before stopping prednisone.", "Tacrolimus was approved for transplant use.",
    "Share of patients in complete remission: 40%.", "The review included 12 trials.",
    "Contact your kidney doctor if your ankles swell.", "Last dose was given at week 24.",
])
def test_clinical_sentences_are_not_furniture(line: str) -> None:
    assert not is_boilerplate(line)
