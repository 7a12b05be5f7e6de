"""Abbreviation-definition pairs mined from the documents at ingest, with the Schwartz-Hearst
algorithm ("long form (SF)") as the `abbreviations` package implements it. The query side uses
them to expand the abbreviations a user types into the long forms the corpus itself uses.

The package is given one sentence at a time (the sentence spans the chunker fixed), so every
pair keeps the exact offsets of the occurrence that defines it. Only its candidate and
definition steps are used: its file-level driver strips quotes (shifting offsets) and drops a
whole line at the first unbalanced parenthesis."""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Iterable, Mapping, Sequence

from kb.types import Abbreviation, Document, Span

logger = logging.getLogger(__name__)

_MIN_SHORT, _MAX_SHORT = 2, 10  # Schwartz-Hearst's bounds on a short form's length
_TRAILING = ".,;:!?'\"”’"
# "CNIs", "RCTs", "ARBs": an upper-case letter or digit then a plural s.
_PLURAL_SHORT = re.compile(r"^(?=.*[A-Z])[A-Za-z0-9\-]*[A-Z0-9]s$")
# "Calcineurin", "Disease:", "Angiotensin-Converting": capitals from position or title style, not meaning
_TITLE_WORD = re.compile(r"[A-Z][a-z]+(?:-[A-Z]?[a-z]+)*[^\w]*")


@lru_cache(maxsize=1)
def _schwartz_hearst() -> ModuleType:
    """Import the package without letting its import-time logging.basicConfig() configure the
    root logger of whatever program ingests (a handler present makes basicConfig a no-op)."""
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        from abbreviations import schwartz_hearst
    finally:
        if guard is not None:
            root.removeHandler(guard)
    return schwartz_hearst


@dataclass(frozen=True)
class Definition:
    """One defining occurrence in one text: normalised forms, raw offsets."""

    short: str
    long: str
    start: int  # start of the long form
    end: int  # after the closing parenthesis of the short form


def _singular_word(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise(short: str, long: str) -> tuple[str, str]:
    """("CNIs", "Calcineurin inhibitors.") -> ("CNI", "calcineurin inhibitor")."""
    short = short.strip().rstrip(_TRAILING).strip()
    words = long.strip().strip(_TRAILING).split()
    words = [w.lower() if _TITLE_WORD.fullmatch(w) else w for w in words]
    if _PLURAL_SHORT.match(short) and len(short) > _MIN_SHORT:
        short = short[:-1]  # "CDGs" -> "CDG" even when the plural is inside the long form
        if words and words[-1].endswith("s"):
            words[-1] = _singular_word(words[-1])
    return short, " ".join(words)


def acceptable(short: str, long: str) -> bool:
    """Rejects what Schwartz-Hearst lets through but is not an abbreviation: "(Figure 2)",
    "(n = 12)", lower-case words, numbers, a long form that merely repeats the short one."""
    if not _MIN_SHORT <= len(short) <= _MAX_SHORT or any(c.isspace() for c in short):
        return False
    if not any(c.isalpha() for c in short) or not any(c.isupper() or c.isdigit() for c in short):
        return False
    if not long or not long[0].isalnum() or long.casefold() == short.casefold():
        return False
    if short.casefold() in (w.casefold() for w in re.split(r"[\s\-/]+", long)):
        return False
    # Schwartz-Hearst anchors the short form's first character at the start of a long-form word.
    return long[0].casefold() == short[0].casefold()


def find_definitions(text: str, spans: Sequence[Span] | None = None) -> list[Definition]:
    """Every "long form (SF)" definition inside the given sentence spans of `text` (all of its
    sentences when None), in text order."""
    sh = _schwartz_hearst()
    if spans is None:
        from ingest.sentences import sentence_spans

        spans = sentence_spans(text)
    found: list[Definition] = []
    for a, b in spans:
        for offset, probe in _probes(text[a:b]):
            found.extend(_definitions(sh, probe, a + offset))
    return sorted(set(found), key=lambda d: (d.start, d.end, d.short))


# A short form in square brackets inside parentheses, where a second pair of parentheses cannot
# go: "(relative risk [RR], 1.07; 95% confidence interval [CI], 0.81 to 1.41)".
_BRACKETED = re.compile(r"\[([^\[\]()\s]{2,10})\]")


def _probes(sentence: str) -> Iterable[tuple[int, str]]:
    """(offset, text) pairs to look for definitions in: the sentence itself, and for each
    bracketed short form the text from its enclosing "(" (or the sentence start) up to it,
    ending "(SF)" so Schwartz-Hearst sees its usual pattern. Offsets stay exact: a probe is a
    slice of the sentence with the two brackets turned into parentheses."""
    if "(" in sentence:
        yield 0, sentence
    for m in _BRACKETED.finditer(sentence):
        start = sentence.rfind("(", 0, m.start()) + 1  # 0 when no parenthesis opens before it
        yield start, sentence[start:m.start()] + "(" + m.group(1) + ")"


def _definitions(sh: ModuleType, sentence: str, base: int) -> list[Definition]:
    """The definitions Schwartz-Hearst finds in `sentence`, which starts at `base` in the text."""
    found: list[Definition] = []
    try:
        candidates = list(sh.best_candidates(sentence))
    except (ValueError, IndexError):  # unbalanced parentheses: no reliable candidate
        return found
    for cand in candidates:
        try:
            definition = sh.select_definition(sh.get_definition(cand, sentence), cand)
        except (ValueError, IndexError):  # the package's way of saying "no definition"
            continue
        raw_long = str(definition)
        long_end = definition.stop
        if sentence[long_end - len(raw_long):long_end] != raw_long:
            long_end = sentence.rfind(raw_long, 0, cand.start) + len(raw_long)
            if long_end < len(raw_long):
                continue
        end = cand.stop + 1 if sentence[cand.stop:cand.stop + 1] == ")" else cand.stop
        short, long = normalise(str(cand), raw_long)
        if acceptable(short, long):
            found.append(Definition(short, long, base + long_end - len(raw_long), base + end))
    return found


def mine(documents: Iterable[Document],
         sentences: Mapping[str, Sequence[Span]] | None = None) -> tuple[Abbreviation, ...]:
    """Pairs defined anywhere in `documents` (sentence spans by source, e.g. the chunks'; all
    sentences when a source is missing), one per (short form, long form), counting the
    documents that define it. Conflicting expansions of one short form are all kept."""
    # (short, long.casefold()) -> source -> its first Definition there
    seen: dict[tuple[str, str], dict[str, Definition]] = defaultdict(dict)
    spellings: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for doc in documents:
        spans = None if sentences is None else sentences.get(doc.source)
        for d in find_definitions(doc.text, spans):
            key = (d.short, d.long.casefold())
            seen[key].setdefault(doc.source, d)
            spellings[key][d.long] += 1
    out = []
    for key, by_source in seen.items():
        sources = tuple(sorted(by_source))
        first = by_source[sources[0]]
        long = max(spellings[key].items(), key=lambda kv: (kv[1], kv[0] == kv[0].lower()))[0]
        out.append(Abbreviation(short=key[0], long=long, sources=sources, start=first.start,
                                end=first.end, doc_count=len(sources)))
    out.sort(key=lambda x: (x.short.casefold(), -x.doc_count, x.long.casefold(), x.short))
    logger.info("abbreviations: %d pairs (%d short forms)", len(out), len({a.short.casefold() for a in out}))
    return tuple(out)
