"""What web pages add around an article: navigation, share/comment prompts, personalisation,
review-status badges, disclaimers. Matched per block; a matching block is kept in the document
text (offsets never move) but not indexed."""
from __future__ import annotations

import re

_PATTERNS = [
    # share / comment / contact prompts
    r"^share( link| this| on)?\b", r"\bleave a (message|comment|reply)\b", r"^print( this)?( page)?$",
    r"hope the above information is helpful", r"\bcontact (an? )?online doctor\b",
    r"^(follow us|subscribe|sign up|log ?in|sign in|back to top|skip to (main )?content)\b",
    r"^have a follow-up question\??$", r"\bask any follow ?up question\b", r"^our medical a\.?i\.?\b",
    # personalisation
    r"^personali[sz]e$", r"^help us tailor your experience$", r"^which best describes you\?",
    # review status / editorial badges and bylines
    r"^article review status$", r"^(submitted|under review|approved)$", r"view editorial policy",
    r"^medical advisory board\s*all articles are reviewed", r"^educational purpose only\b",
    r"^medically reviewed by$", r"^last updated:?\b", r"^(reviewed|updated|published) (on|by)\b",
    r"^[A-Z][\w'’ ]{0,60} medical advisory (board|committee)$",
    # disclaimers
    r"\bdisclaimer\b", r"\bnot (intended )?(to be )?a substitute for\b", r"\bassumes no liability\b",
    r"please seek professional medical advi[cs]e", r"this information is intended for healthcare professionals",
    # journal page furniture
    r"^full text:?\s*(pdf|html)?$", r"^there are currently no refbacks\.?$", r"^(cookie|privacy) (policy|settings)",
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

# "Semin Nephrol. 2003 Mar;23(2):234-41. doi: ..." under a PubMed page's title: furniture.
_JOURNAL_LINE = re.compile(
    r"^[A-Z][\w .&]{1,60}\.\s+(19|20)\d\d\b[^.]{0,20};\s*\d+(\(\d+\))?:[\w\-–]+\.(\s*doi:\s*\S+)?$"
)


def is_journal_line(block_text: str) -> bool:
    return bool(_JOURNAL_LINE.match(" ".join(block_text.split())))
