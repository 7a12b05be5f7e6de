"""BM25 tokenisation shared by ingestion and querying (bm25s with English stop words and the
Snowball stemmer from PyStemmer): both sides must split text identically."""
from __future__ import annotations

import logging
import re
from functools import lru_cache

import bm25s
import Stemmer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG

# The project's one list of English function words (the question analysis, abbreviation
# mining's filter, the LLM verifier's content words). BM25 keeps bm25s' own shorter "en" list
# (33 words, all in this one): words such as "before", "after", "during", "without" that this
# list drops carry meaning in a ranked query ("rituximab before transplant").
STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because been
before being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours ourselves
out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves""".split())

TOKENIZER_DESCRIPTION = "bm25s.tokenize(stopwords='en', stemmer=PyStemmer english) after British->US spelling"

# British and US spellings are one word to the index ("randomised" = "randomized",
# "paediatric" = "pediatric", "oedema" = "edema", "foetal" = "fetal", "tumour" = "tumor",
# "analyse" = "analyze"). Applied identically to passages and queries, so a rewrite that
# touches an unrelated word ("exercise" -> "exercize", "detour" -> "detor") changes nothing;
# the lookbehinds keep short words apart ("four" is not "for", "poet" not "pet").
_SPELLING = (
    (re.compile(r"(?<=[a-z]{3})is(?=(?:e|ed|es|ing|ation|ations|er|ers)\b)"), "iz"),
    (re.compile(r"(?<=[a-z]{3})ys(?=(?:e|ed|es|ing)\b)"), "yz"),
    (re.compile(r"(?<=[a-z])ae(?=[a-z])"), "e"),
    (re.compile(r"\boe(?=[a-z]{3})|(?<=rrh)oe|(?<=[bcdfghjklmnpqrstvwxz])oe(?=[a-z]{2})"), "e"),
    (re.compile(r"(?<=[a-z]{3})our(?=s?\b)"), "or"),
    (re.compile(r"\bcentre"), "center"),
)


def us_spelling(text: str) -> str:
    text = text.lower()
    for pattern, repl in _SPELLING:
        text = pattern.sub(repl, text)
    return text


@lru_cache(maxsize=1)
def stemmer() -> "Stemmer.Stemmer":
    """The project's one stemmer (Snowball English, PyStemmer)."""
    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> "bm25s.tokenization.Tokenized":
    return bm25s.tokenize([us_spelling(t) for t in texts], stopwords="en", stemmer=stemmer(), show_progress=False)


@lru_cache(maxsize=65_536)  # the answerer stems the same sentences and terms for many questions
def query_tokens(text: str) -> tuple[str, ...]:
    """BM25's tokens of `text` (stop words out, stemmed), cached: bm25s' tokenizer costs ~0.1 ms
    a call. The one cache of them (kb.query.stems reads it)."""
    tokens = bm25s.tokenize([us_spelling(text)], stopwords="en", stemmer=stemmer(), return_ids=False,
                            show_progress=False)
    return tuple(tokens[0]) if tokens else ()
