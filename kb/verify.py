"""Sentence-by-sentence verification of a model-written answer against the numbered passages
it was given.

For each sentence of the raw answer:
1. citation markers `[n]` whose n was not provided are removed;
2. a sentence left without a citation is unsupported;
3. every figure (number) and digit-bearing identifier (APOL1, CD20) must occur in the cited
   passages, else the sentence is unsupported;
4. its content words must be covered by the cited passages: a support score (stemmed lexical
   coverage, optionally blended with the best embedding similarity to a cited sentence) below
   the threshold makes it unsupported.
Passage sentences that read like instructions to a model ("ignore previous instructions ...")
never count as support, so a model that obeys injected text cannot cite that text as evidence.

This is a lexical check, not entailment: see docs/LLM.md for what it does and does not catch.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from kb.bm25 import STOP_WORDS, stemmer
from kb.instructions import looks_like_instruction  # the one detector, shared with the extractive mode
from kb.types import Span

logger = logging.getLogger(__name__)


class _Encoder(Protocol):
    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class Passage:
    """One numbered passage as shown to the model. `sentences` are spans into `doc_text`."""

    n: int
    text: str  # the chunk text == doc_text[span[0]:span[1]]
    span: Span
    sentences: tuple[Span, ...]  # absolute offsets of the chunk's sentences in doc_text
    doc_text: str
    context: str = ""  # header shown with it (title, year): its words and figures count too

    def sentence_rows(self) -> list[tuple[Span, str]]:
        """(span, text) per sentence; the whole chunk when it has no sentence spans."""
        spans = self.sentences or (self.span,)
        return [((a, b), self.doc_text[a:b]) for a, b in spans]


@dataclass(frozen=True)
class SentenceCheck:
    text: str  # the sentence with its citation markers removed
    citations: tuple[int, ...]  # valid passage numbers cited, in order
    removed: tuple[int, ...]  # invented passage numbers stripped from it
    supported: bool
    reasons: tuple[str, ...]  # why not supported (empty when supported)
    lexical: float
    semantic: float | None
    score: float
    best: tuple[tuple[int, Span], ...]  # per cited passage: the best-supporting sentence span


@dataclass(frozen=True)
class Verification:
    sentences: tuple[SentenceCheck, ...]
    suspicious_passages: tuple[int, ...]  # passages containing instruction-like text

    @property
    def removed(self) -> tuple[int, ...]:
        return tuple(sorted({n for s in self.sentences for n in s.removed}))

    @property
    def n_supported(self) -> int:
        return sum(s.supported for s in self.sentences)


# -- tokens -------------------------------------------------------------------------------
# The project's function words plus the connective/hedging vocabulary models add when
# paraphrasing: they carry no claim, so they neither need nor lend support. Negations are kept
# whatever the list says (content_tokens): "not effective" must find "not" in the passage (a
# weak polarity check).
_STOPWORDS = STOP_WORDS | frozenset("""
also although done either etc however may might much must per therefore thus upon us via
whereas whose within according overall generally typically usually often particularly
especially including include includes included various several certain based regarding
respectively furthermore moreover additionally addition important note notably indicate
indicates indicated suggest suggests suggested show shows shown report reports reported
describe describes described state states stated mention mentions mentioned passage passages
source sources document documents text
""".split())
_NEGATIONS = frozenset({"no", "not", "never", "without", "cannot", "none", "neither", "nor"})

_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
# A number not glued to a preceding letter (COL4A3 is an identifier, not the figures 4 and 3).
_NUMBER = re.compile(r"(?<![A-Za-z0-9.,])\d+(?:[.,]\d+)*")
_IDENTIFIER = re.compile(r"\b[A-Za-z]+[A-Za-z-]*\d[A-Za-z0-9-]*\b")


def content_tokens(text: str) -> set[str]:
    words = [w.lower().strip("'") for w in _WORD.findall(text.replace("n't", " not"))]
    words = [w for w in words if w and (w in _NEGATIONS or (w not in _STOPWORDS and len(w) > 1))]
    return set(stemmer().stemWords(words))


def _norm_number(raw: str) -> list[str]:
    """'1,000' -> ['1000']; '5.0' -> ['5']; '0.5' -> ['0.5']; '3,4' -> ['3', '4']."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        raw = raw.replace(",", "")
    out = []
    for part in raw.split(","):
        whole, _, frac = part.partition(".")
        whole = whole.lstrip("0") or "0"
        frac = frac.rstrip("0")
        out.append(f"{whole}.{frac}" if frac else whole)
    return out


def numbers(text: str) -> set[str]:
    found: set[str] = set()
    for m in _NUMBER.finditer(text):
        found.update(_norm_number(m.group().rstrip(".,")))
    return found


def identifiers(text: str) -> set[str]:
    return {m.group().lower() for m in _IDENTIFIER.finditer(text)}


# -- splitting the model's answer ----------------------------------------------------------
_MARKER = re.compile(r"\[\s*(?:(?:passages?|p)\s*)?(\d+(?:\s*(?:[,;]|-|–|and)\s*\d+)*)\s*\]",
                     re.IGNORECASE)
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*(?:(?:passages?|p)\s*)?\d[^\]]*\])+[.,;]?", re.IGNORECASE)
_ABBREV_END = re.compile(r"\b(?:e\.g|i\.e|vs|et al|approx|cf|fig|dr|no|mg|ml|kg)\.$", re.IGNORECASE)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"”')\]]*\s+(?=[\[\"“(]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a model answer. Citation markers written after the full stop
    ("... proteinuria. [2]") stay with the sentence they follow."""
    out: list[str] = []
    for block in re.split(r"\n\s*", text):
        block = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", block).strip()  # list bullets
        if not block:
            continue
        pieces: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(block):
            piece = block[start:m.start()].strip()
            if _ABBREV_END.search(piece):
                continue  # "e.g. cyclosporine" is not a sentence end
            pieces.append(piece)
            start = m.end()
        pieces.append(block[start:].strip())
        for piece in pieces:
            lead = _LEADING_MARKERS.match(piece)
            if lead and out:
                out[-1] = f"{out[-1]} {lead.group().strip()}"
                piece = piece[lead.end():].strip()
            if piece:
                out.append(piece)
    return out


def _expand(group: str) -> list[int]:
    nums: list[int] = []
    for part in re.split(r"\s*(?:[,;]|and)\s*", group):
        m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            nums.extend(range(a, b + 1) if 0 < b - a < 20 else (a, b))
        elif part.strip().isdigit():
            nums.append(int(part))
    return nums


def parse_citations(sentence: str, valid: set[int]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(sentence without markers, valid numbers cited, invalid numbers removed)."""
    cited: list[int] = []
    removed: list[int] = []
    for m in _MARKER.finditer(sentence):
        for n in _expand(m.group(1)):
            (cited if n in valid else removed).append(n)
    clean = _MARKER.sub("", sentence)
    clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
    clean = re.sub(r"\s{2,}", " ", clean).strip()
    return clean, tuple(dict.fromkeys(cited)), tuple(dict.fromkeys(removed))


# -- verification ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    """A passage sentence that may lend support; idx is its position among all sentences."""

    idx: int
    span: Span
    text: str
    tokens: frozenset[str]


def _coverage(tokens: set[str], pool: set[str]) -> float:
    return len(tokens & pool) / len(tokens) if tokens else 0.0


def verify_answer(raw: str, passages: Sequence[Passage], *, threshold: float,
                  embedder: _Encoder | None = None, embedding_weight: float = 0.0) -> Verification:
    by_n = {p.n: p for p in passages}
    # Per passage: its sentences, with instruction-like ones excluded from support.
    usable: dict[int, list[_Row]] = {}
    suspicious: list[int] = []
    for p in passages:
        rows = []
        for idx, (span, text) in enumerate(p.sentence_rows()):
            if looks_like_instruction(text):
                if p.n not in suspicious:
                    suspicious.append(p.n)
                continue
            rows.append(_Row(idx, span, text, frozenset(content_tokens(text))))
        usable[p.n] = rows

    parsed = [parse_citations(s, set(by_n)) for s in split_sentences(raw)]
    parsed = [(t, c, r) for t, c, r in parsed if t]  # a stray marker is not a sentence
    semantic = _semantic_scores(parsed, usable, embedder) if embedder and embedding_weight > 0 else None

    checks = []
    for i, (text, cited, removed) in enumerate(parsed):
        reasons: list[str] = []
        tokens = content_tokens(text)
        context = " ".join(by_n[n].context for n in cited)
        # Support comes from the best window of each cited passage, not the whole chunk: words
        # scattered over a long passage should not add up to support for a new claim.
        # Acronyms the cited documents use (FSGS, MMF) name their subject, wherever defined.
        known = content_tokens(context) | _document_acronyms(text, [by_n[n] for n in cited])
        windows = {n: _best_window(tokens - known, usable[n], by_n[n]) for n in cited}
        pool_tokens = known.union(*(w[1] for w in windows.values()))
        if not cited:
            reasons.append("no citation" if not removed else "cites only passages that were not given")
        # Figures may come from anywhere in the cited passages (they were all shown).
        figures_text = " ".join([context, *(r.text for n in cited for r in usable[n])])
        missing = sorted(numbers(text) - numbers(figures_text)) + \
            sorted(identifiers(text) - identifiers(figures_text))
        if cited and missing:
            reasons.append("not in the cited passages: " + ", ".join(missing))
        lexical = _coverage(tokens, pool_tokens)
        sem = semantic[i] if semantic is not None else None
        score = lexical if sem is None else (1 - embedding_weight) * lexical + embedding_weight * max(sem, 0.0)
        if cited and score < threshold:
            reasons.append(f"weak support from the cited passages ({score:.2f} < {threshold:.2f})")
        best = tuple((n, windows[n][0]) for n in cited)
        checks.append(SentenceCheck(text=text, citations=cited, removed=removed,
                                    supported=not reasons, reasons=tuple(reasons),
                                    lexical=round(lexical, 4), semantic=None if sem is None else round(sem, 4),
                                    score=round(score, 4), best=best))
        if reasons:
            logger.info("unsupported sentence %r: %s", text[:80], "; ".join(reasons))
    return Verification(sentences=tuple(checks), suspicious_passages=tuple(suspicious))


_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,7}s?\b")


def _document_acronyms(sentence: str, passages: Sequence[Passage]) -> set[str]:
    """Stemmed tokens of the sentence's acronyms that occur as words in a cited document."""
    found = {m.group() for m in _ACRONYM.finditer(sentence)}
    used = {a for a in found if any(re.search(rf"\b{re.escape(a)}\b", p.doc_text) for p in passages)}
    return content_tokens(" ".join(used)) if used else set()


WINDOW = 2  # sentences: a claim is usually drawn from one sentence, sometimes two adjacent ones


def _best_window(tokens: set[str], rows: list[_Row], passage: Passage) -> tuple[Span, set[str]]:
    """The run of up to WINDOW adjacent usable passage sentences covering most of the answer
    sentence's words: its span (the quote shown) and its tokens (the support pool). A window
    never spans an excluded (instruction-like) sentence, so such text is never quoted."""
    best: tuple[Span, set[str]] | None = None
    best_cov = -1.0
    for i in range(len(rows)):
        for j in range(i, min(i + WINDOW, len(rows))):
            if rows[j].idx - rows[i].idx != j - i:
                break  # not contiguous in the passage
            pool = set().union(*(r.tokens for r in rows[i:j + 1]))
            cov = _coverage(tokens, pool)
            if cov > best_cov + 1e-9:  # prefer the shorter, earlier window on ties
                best, best_cov = ((rows[i].span[0], rows[j].span[1]), pool), cov
    return best if best is not None else (passage.span, set())  # nothing usable: whole chunk


def _semantic_scores(parsed: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
                     usable: dict[int, list[_Row]],
                     embedder: _Encoder) -> list[float] | None:
    """Per answer sentence: max cosine to any usable sentence of its cited passages."""
    cand = sorted({r.text for _, cited, _ in parsed for n in cited for r in usable[n]})
    if not cand:
        return [0.0] * len(parsed)
    try:
        vecs = embedder.encode([t for t, _, _ in parsed] + cand)
    except Exception:  # verification must not fail because the embedder did; fall back to lexical
        logger.exception("embedding similarity unavailable; using lexical support only")
        return None
    ans, pool = vecs[: len(parsed)], vecs[len(parsed):]
    index = {t: i for i, t in enumerate(cand)}
    out = []
    for row, (_, cited, _) in enumerate(parsed):
        ids = [index[r.text] for n in cited for r in usable[n]]
        out.append(float(np.max(pool[ids] @ ans[row])) if ids else 0.0)
    return out
