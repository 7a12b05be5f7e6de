"""Questions as they arrive (typed, pasted, from the command line, from code), put into the one
form `KnowledgeBase.ask` and `.search` work on.

`clean_question` is applied once, at those two entry points:
- a non-`str` question is refused with a TypeError naming its type (bytes: decode them first),
  instead of being taken for an empty question;
- surrogate pairs stored as two code units are joined, and every lone surrogate (from
  `"\\ud800"` in code, or an invalid byte of a command-line argument, which Python passes on as
  a surrogate escape) becomes U+FFFD: the tokenizer, JSON output and the terminal all need
  valid Unicode, and U+FFFD shows the user where the unreadable character was;
- control characters (NUL, escape sequences, tabs and line breaks, C1 controls) and the line and
  paragraph separators become spaces, so they cannot glue two words together; invisible format
  characters (zero-width space, soft hyphen, bidi overrides, byte order mark) are removed, so
  "tacro\\u00adlimus" is "tacrolimus" and a question cannot display differently from what is
  searched;
- NFC, not NFKC: NFC only joins canonically equivalent sequences ("e" + combining acute = "é",
  as keyboards and copy-paste deliver either), so the question still matches the documents,
  which are indexed as written; NFKC would rewrite characters the documents keep (m² -> m2,
  µ -> μ, ½ -> 1⁄2) and the question would stop matching them;
- runs of whitespace become one space, and the ends are stripped.
`has_words` says whether anything usable (a letter or a digit) remains.
"""
from __future__ import annotations

import logging
import unicodedata

import regex

from kb.errors import QuestionTypeError

logger = logging.getLogger(__name__)

_SURROGATE = regex.compile(r"[\ud800-\udfff]")
_TO_SPACE = regex.compile(r"[\p{Cc}\p{Zl}\p{Zp}]+")  # controls, line and paragraph separators
_INVISIBLE = regex.compile(r"\p{Cf}+")  # format characters: zero-width, soft hyphen, bidi, BOM
_WORD_CHAR = regex.compile(r"[\p{L}\p{N}]")


def clean_question(question: object, what: str = "question") -> str:
    """`question` in the form described in the module docstring; TypeError if it is not a str."""
    if not isinstance(question, str):
        kind = type(question).__name__
        if isinstance(question, (bytes, bytearray, memoryview)):
            raise QuestionTypeError(f"the {what} must be text (str), not {kind}: decode it first, "
                                    f"e.g. {what}.decode('utf-8', errors='replace')")
        raise QuestionTypeError(f"the {what} must be text (str), not {kind} ({question!r:.60})")
    text = str(question)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _INVISIBLE.sub("", _TO_SPACE.sub(" ", text))
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def has_words(text: str) -> bool:
    """True if `text` holds a letter or a digit (in any script): something to search for."""
    return _WORD_CHAR.search(text) is not None


def search_text(query: object, max_chars: int) -> str:
    """The text `search` looks for: the cleaned query, "" when it holds no letter or digit
    (nothing to search for), cut to `max_chars` (the embedding model reads only the first few
    hundred words anyway, and BM25 and query analysis over a huge query take minutes)."""
    text = clean_question(query, "query")
    if not has_words(text):
        return ""
    if len(text) > max_chars:
        logger.warning("the query is %s characters long; searching its first %s", f"{len(text):,}",
                       f"{max_chars:,}")
        text = text[:max_chars]
    return text
