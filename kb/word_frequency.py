"""How common a word is in general English: the Zipf frequency of the `wordfreq` package
(log10 of occurrences per billion words, from subtitles, Wikipedia, books, news and web text;
its data ships in the wheel, so nothing is downloaded). "kids" is 5.3, "enzymes" 3.6,
"bariatric" 2.6, "premedication" 1.4; a word it has never seen is 0.

Used by kb/evidence.py: a question word that no passage of the corpus contains is a content
requirement the corpus does not meet when it is rare in general language (a technical term:
"bariatric", "avascular"), and mere wording when it is common ("kids", "join", "got").
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def zipf(word: str) -> float:
    """Zipf frequency of `word` in general English (0.0 for a word never seen)."""
    from wordfreq import zipf_frequency  # loads its list (~0.2 s) on first use only

    return float(zipf_frequency(word.lower(), "en"))
