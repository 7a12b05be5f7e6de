"""Sentence spans with NLTK's Punkt tokenizer (no trained data needed: abbreviations that
matter in clinical text are given here, so no download happens at run time)."""
from __future__ import annotations

import re
from functools import lru_cache

from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from kb.types import Span

# Lower-case, without the final period, as Punkt expects.
_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "cf", "al", "et al", "approx", "dr", "prof", "fig", "figs",
    "no", "nos", "vol", "ed", "eds", "mg", "ml", "dl", "kg", "st", "mr", "mrs", "ms", "jr",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "med", "res", "int", "clin", "nephrol", "am", "j", "engl", "sci", "min", "max", "resp",
}
# A trailing footnote number ("... renal survival. 1") belongs to the sentence before it.
_FOOTNOTE = re.compile(r"^\s*(?:\[?\d{1,3}\]?[.,;]?\s*)+$")


@lru_cache(maxsize=1)
def _tokenizer() -> PunktSentenceTokenizer:
    params = PunktParameters()
    params.abbrev_types = set(_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[Span]:
    """Cut an over-long sentence at whitespace so no span exceeds max_chars."""
    spans: list[Span] = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars)
        if cut <= start:
            cut = start + max_chars
        b = cut
        while b > start and text[b - 1].isspace():  # a run of spaces before the cut stays out
            b -= 1
        spans.append((start, b))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        spans.append((start, end))
    return spans


def sentence_spans(text: str, start: int = 0, end: int | None = None,
                   max_chars: int = 600) -> list[Span]:
    """Sentence spans (absolute offsets into `text`) inside text[start:end], whitespace-trimmed,
    covering every non-space character of the range exactly once."""
    end = len(text) if end is None else end
    segment = text[start:end]
    raw: list[Span] = []
    for a, b in _tokenizer().span_tokenize(segment):
        a, b = a + start, b + start
        if raw and _FOOTNOTE.match(text[a:b]):
            raw[-1] = (raw[-1][0], b)
            continue
        raw.append((a, b))
    # Punkt ignores inner line breaks; a list-free block with hard line breaks is still one
    # paragraph, so that is what we want.
    spans: list[Span] = []
    for a, b in raw:
        spans.extend(_split_long(text, a, b, max_chars))
    return spans
