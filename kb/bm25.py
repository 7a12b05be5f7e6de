"""BM25 tokenisation shared by ingestion and querying (bm25s with English stop words and the
Snowball stemmer from PyStemmer): both sides must split text identically."""
from __future__ import annotations

import logging
import re
from functools import lru_cache

import bm25s
import Stemmer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG

TOKENIZER_DESCRIPTION = "bm25s.tokenize(stopwords='en', stemmer=PyStemmer english) after British->US spelling"

# British and US spellings are one word to the index ("randomised" = "randomized",
# "paediatric" = "pediatric", "oedema" = "edema"). Applied identically to passages and queries,
# so a rewrite that touches an unrelated word ("exercise" -> "exercize") changes nothing.
_SPELLING = (
    (re.compile(r"(?<=[a-z]{3})is(?=(?:e|ed|es|ing|ation|ations|er|ers)\b)"), "iz"),
    (re.compile(r"(?<=[a-z])ae(?=[a-z])"), "e"),
    (re.compile(r"\boe(?=[a-z]{3})|(?<=rrh)oe"), "e"),
    (re.compile(r"\bcentre"), "center"),
)


def us_spelling(text: str) -> str:
    text = text.lower()
    for pattern, repl in _SPELLING:
        text = pattern.sub(repl, text)
    return text


@lru_cache(maxsize=1)
def _stemmer() -> "Stemmer.Stemmer":
    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> "bm25s.tokenization.Tokenized":
    return bm25s.tokenize([us_spelling(t) for t in texts], stopwords="en", stemmer=_stemmer(), show_progress=False)


def query_tokens(text: str) -> list[str]:
    return list(_query_tokens(text))


@lru_cache(maxsize=65_536)  # the answerer stems the same sentences for many questions
def _query_tokens(text: str) -> tuple[str, ...]:
    tokens = bm25s.tokenize([us_spelling(text)], stopwords="en", stemmer=_stemmer(), return_ids=False,
                            show_progress=False)
    return tuple(tokens[0]) if tokens else ()
