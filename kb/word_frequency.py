"""How common a word is in general English: the Zipf frequency of the `wordfreq` package
(log10 of occurrences per billion words, from subtitles, Wikipedia, books, news and web text;
its data ships in the wheel, so nothing is downloaded). "kids" is 5.3, "enzymes" 3.6,
"bariatric" 2.6, "premedication" 1.4; a word it has never seen is 0.

Used by kb/evidence.py: a question word that no passage of the corpus contains is a content
requirement the corpus does not meet when it is rare in general language (a technical term:
"bariatric", "avascular"), and mere wording when it is common ("kids", "join", "got").
"""
from __future__ import annotations

import re
from functools import lru_cache

# British spellings the corpus may write the American way (and back): "hyperkalaemia" /
# "hyperkalemia", "oedema" / "edema", "tumour" / "tumor", "randomised" / "randomized".
_VARIANTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ae"), "e"),
    (re.compile(r"oe"), "e"),
    (re.compile(r"our\b"), "or"),
    (re.compile(r"is(e|ed|es|ing|ation)\b"), r"iz\1"),
    (re.compile(r"ys(e|ed|es|ing)\b"), r"yz\1"),
)


@lru_cache(maxsize=4096)
def zipf(word: str) -> float:
    """Zipf frequency of `word` in general English (0.0 for a word never seen)."""
    from wordfreq import zipf_frequency  # loads its list (~0.2 s) on first use only

    return float(zipf_frequency(word.lower(), "en"))


def spelling_variants(word: str) -> tuple[str, ...]:
    """Other spellings of `word` (British <-> American), without `word` itself."""
    w = word.lower()
    out: list[str] = []
    for pattern, repl in _VARIANTS:
        v = pattern.sub(repl, w)
        if v != w:
            out.append(v)
    back = re.sub(r"iz(e|ed|es|ing|ation)\b", r"is\1", w)
    if back != w:
        out.append(back)
    return tuple(dict.fromkeys(out))
