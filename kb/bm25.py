"""BM25 tokenisation shared by ingestion and querying (bm25s with English stop words and the
Snowball stemmer from PyStemmer): both sides must split text identically."""
from __future__ import annotations

import logging
from functools import lru_cache

import bm25s
import Stemmer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG

TOKENIZER_DESCRIPTION = "bm25s.tokenize(stopwords='en', stemmer=PyStemmer english)"


@lru_cache(maxsize=1)
def _stemmer() -> "Stemmer.Stemmer":
    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> "bm25s.tokenization.Tokenized":
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)


def query_tokens(text: str) -> list[str]:
    tokens = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), return_ids=False,
                            show_progress=False)
    return list(tokens[0]) if tokens else []
