"""What web pages add around an article: navigation, share/comment prompts, personalisation,
review-status badges, disclaimers. Matched per block; a matching block is kept in the document
text (offsets never move) but not indexed."""
from __future__ import annotations

import re

_PATTERNS = [
    # Each pattern names a kind of page furniture as sites in general word it, not one page's
    # sentence; a block matching one is kept in the text but never indexed.
    # share / print / account links
    r"^share( link| this( page| article)?| on \w+)?$", r"^(print|email) (this )?(page|article)$", r"^print$",
    r"^(follow us|subscribe|sign up|log ?in|sign in|register now|back to top|skip to (main )?content)\b",
    # comment / contact / chat prompts
    r"\b(leave|post|send|write) (us )?an? (message|comment|reply)\b",
    r"^(have|got) (a|any|more|other|any other|any more) (follow[- ]?up |further )?questions?\??$",
    r"\bask (an?|any|our) (follow[- ]?up )?questions?\b",
    r"^(we |i )?hope (the above|this|that)( information| answer| article)? (is|was|will be) (helpful|useful)",
    r"\b(contact|chat with|ask) (an? |our )?(online|live) (doctor|expert|specialist|chat)s?\b",
    r"\bour (medical )?(a\.i\.|ai)\b",
    # personalisation
    r"^personali[sz]e( your (experience|content))?$", r"\b(tailor|personali[sz]e) (your|the) (experience|content)\b",
    r"^which (option )?(best )?describes you\b",
    # review status, editorial policy, bylines
    r"^(article |page )?(review|publication|editorial) status$",
    r"^(draft|submitted|under review|in review|approved)$",  # a workflow badge on a line of its own
    r"\beditorial (policy|process|guidelines)\b",
    r"all (of our )?(articles|content|pages) (is|are) (medically )?(reviewed|fact[- ]checked)\b",
    r"\b(for )?(educational|informational) purposes? only\b",
    r"^(medically |clinically )?(reviewed|fact[- ]checked)( by)?:?$",
    r"^last (updated|reviewed|modified)\b", r"^(reviewed|updated|published) (on|by)\b",
    r"^[A-Z][\w'’ ]{0,60} medical advisory (board|committee)$",
    # disclaimers
    r"\bdisclaimer\b", r"\bnot (?:intended |meant )?(?:to (?:be|serve as) |as )?an? (?:substitute|replacement) for\b", r"\bassumes? no (liability|responsibility)\b",
    r"\bseek professional (medical )?advi[cs]e\b",
    r"\b(this|the) (information|content|site|page) is (intended|meant) (only )?for (healthcare|health care|medical) professionals\b",
    # journal-platform furniture (e.g. Open Journal Systems' article pages)
    r"^full text:?\s*(pdf|html)?$", r"^there are (currently )?no refbacks\.?$", r"^(cookie|privacy) (policy|settings)",
]
_BOILERPLATE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)

# A bare date line ("March 19, 2025") is page furniture, not content.
_DATE_LINE = re.compile(
    r"^(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? \d{4}|\d{4}-\d{2}-\d{2})$",
    re.IGNORECASE,
)
# Headings whose whole section is catalogue metadata, not content (PubMed page furniture).
METADATA_SECTION = re.compile(
    r"^(publication types?|mesh terms|substances|keywords|grants? and funding|related information|"
    r"linkout.*|cited by|similar articles|comment in|erratum in)$",
    re.IGNORECASE,
)
REFERENCES_HEADING = re.compile(
    r"^(#+\s*)?(references?|bibliography|literature cited|works cited|sources)\s*:?$", re.IGNORECASE
)


def is_boilerplate(block_text: str) -> bool:
    text = " ".join(block_text.split()).strip(" -•*")
    return bool(_BOILERPLATE.search(text) or _DATE_LINE.match(text) or is_journal_line(text))

# "Kidney J. 2011 Feb;48(3):201-9. doi: ..." under a PubMed page's title: furniture.
_JOURNAL_LINE = re.compile(
    r"^[A-Z][\w .&]{1,60}\.\s+(19|20)\d\d\b[^.]{0,20};\s*\d+(\(\d+\))?:[\w\-–]+\.(\s*doi:\s*\S+)?$"
)


def is_journal_line(block_text: str) -> bool:
    return bool(_JOURNAL_LINE.match(" ".join(block_text.split())))
