"""Metadata a document states about itself in its text, for files without a catalogue entry.

Reads the opening of the text (the "first page": title block, byline, citation line) for DOI,
PMID, year, journal and authors, but only where a label or a citation line says what the value
is; and the study type from text cues (title first, then the opening). Everything here is
marked *inferred* by the build (ingest/build.py merge_meta); the catalogue and what the file
itself declares (PubMed records, HTML citation_* tags, PDF info) win field by field. A field
the text does not state stays empty: nothing is guessed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kb.evidence_types import BY_KEY, from_publication_types
from kb.types import DocMeta

HEAD_CHARS = 3_000  # the "first page": where a title block, byline and citation line live
TYPE_HEAD_CHARS = 2_500  # study-type cues are read here (methods of cited studies come later)
PATIENT_YOU_PER_1000 = 12.0  # "you/your" per 1,000 words above which a page addresses patients
MIN_WORDS_FOR_PATIENT = 150  # shorter texts say too little to judge their audience
PLAIN_LANGUAGE_LONG_WORDS = 0.05  # share of 4+-syllable words below which a text is plain language (written for patients)
MIN_NUMBERED_CITATIONS = 3  # "(2)", "[3-5]": a text citing this many references is a secondary source


@dataclass(frozen=True)
class _Cue:
    key: str  # a row of kb/evidence_types.py
    pattern: re.Pattern[str]


def _cue(key: str, pattern: str) -> _Cue:
    return _Cue(key, re.compile(pattern, re.I | re.M))


# Cues in a title decide alone (most specific first).
_TITLE_CUES: tuple[_Cue, ...] = (
    _cue("drug_label", r"\bprescribing information\b|\bpackage insert\b|\bsummary of product characteristics\b"),
    _cue("guideline", r"\b(?:clinical )?practice guidelines?\b|\bguideline for\b|\bconsensus statement\b"),
    _cue("systematic_review", r"\bsystematic review\b|\bmeta-?analys[ie]s\b|\bcochrane review\b"),
    _cue("rct", r"\brandomi[sz]ed\b.*\btrial\b|\brandomi[sz]ed controlled\b"),
    _cue("case_report", r"\bcase report\b|\bcase series\b|\ba case of\b"),
    _cue("observational", r"\bcohort\b|\bobservational\b|\bretrospective\b|\bregistry stud"),
    _cue("clinical_trial", r"\b(?:phase [1-4i]+|open-label|single-arm|pilot) (?:\w+ )?(?:trial|study)\b"),
    _cue("review", r"\breview\b"),
    _cue("editorial", r"^\s*editorial\b|\bletter to the editor\b|\bcommentary\b"),
)
# Cues that mark a kind of document wherever they appear in the opening.
_DOCUMENT_CUES: tuple[_Cue, ...] = (
    _cue("drug_label", r"\bHIGHLIGHTS OF PRESCRIBING INFORMATION\b|\bFULL PRESCRIBING INFORMATION\b"
                       r"|\bINDICATIONS AND USAGE\b|\bBOXED WARNING\b|\bDOSAGE AND ADMINISTRATION\b"
                       r"|\bprescribing information\b"),
    _cue("trial_registry", r"\bClinicalTrials\.gov (?:ID|Identifier)\b|\bStudy (?:Type|Design)\s*:?\s*(?:Interventional|Observational)\b"
                           r"|\bMain objective of the trial\b"
                           r"|\bRecruitment Status\b|\bEstimated Enrollment\b|\bStudy Start(?: Date)?\b"
                           r"|\bTrial registration\b.*\bregistry\b|\bEUCTR\d|\bISRCTN\d+\b.*\bregistry\b"
                           r"|\bStatus\s*:\s*(?:Recruiting|Completed|Terminated|Withdrawn|Not yet recruiting|Active, not recruiting)\b"
                           r"|\bTarget enrollment\b|\bTrial end date\b|\bMedical condition\(s\) being investigated\b"
                           r"|\bThis is an interventional (?:\w+ )?(?:trial|study)\b"),
)
# Cues in the opening, in order of precedence (a review mentions the trials it reviews, so
# review cues come before trial cues).
_HEAD_CUES: tuple[_Cue, ...] = (
    _cue("guideline", r"\bthis guideline\b|\bguideline (?:recommendations|development group|work group)\b"
                      r"|\bwe recommend\b.*\(1[A-D]\)|\bpractice points?\b|\bupdates the \d{4} [\w ]{0,40}guideline\b"),
    _cue("systematic_review", r"\bsystematic review\b|\bmeta-?analys[ie]s\b|\bcochrane\b|\bWhat is the issue\?"
                              r"|\((?:selection|performance|detection|attrition|reporting) bias\)"
                              r"|\b10\.1002/14651858\.CD\d{6}|\bCochrane Database Syst Rev\b"
                              r"|\bwe searched\b.*\b(?:databases?|MEDLINE|EMBASE|CENTRAL|registers?)\b"),
    _cue("rct", r"\brandomi[sz]ed(?:,)? (?:\w+[ -]){0,4}(?:controlled )?(?:trial|study)\b|\bwere randomly assigned\b"
                r"|\brandomi[sz]ed (?:to|1:1|2:1)\b|\bwere randomi[sz]ed\b|\bdouble-blind(?:ed)?\b"),
    _cue("case_report", r"\bcase report\b|\bwe (?:report|describe|present) (?:a|the) (?:case|patient)\b"
                        r"|\bcase of (?:a |an )?\d{1,3}[- ]years?[- ]old\b"
                        r"|\b(?:a|an) \d{1,3}[- ]years?[- ]old (?:(?:man|woman|boy|girl|male|female|gentleman|lady) )?(?:patient |child )?"
                        r"(?:who|whose|was|presented|with|had|developed|underwent|received)\b"
                        r"|\bcase series\b|\bwe report a series of\b"
                        r"|\b(?:report|describe)s? (?:\w+ ){0,2}(?:two|three|four|five|six|seven|eight|nine|ten|\d) (?:patients|cases|children|adults)\b"),
    _cue("clinical_trial", r"\b(?:open-label|single-arm|phase (?:1|2|3|I|II|III)[ab]?)\b.*\b(?:trial|study)\b"
                           r"|\bnon-?randomi[sz]ed (?:trial|study)\b"),
    _cue("observational", r"\b(?:retrospective|prospective) (?:\w+ ){0,2}(?:cohort|study|analysis|review of)\b"
                          r"|\bcohort study\b|\bobservational study\b|\bregistry data\b"
                          r"|\b(?:analy[sz]ed|reviewed|collected) retrospectively\b|\bretrospectively (?:reviewed|analy[sz]ed|collected)\b"
                          r"|\bwe (?:reviewed|evaluated|analy[sz]ed|studied) the (?:outcomes?|records|data|charts) of\b"
                          r"|\b(?:were|was) followed (?:up )?for (?:at least |a median of )?\d"
                          r"|\bmultivariab?l?e?(?:ate)? (?:logistic )?(?:regression|analys[ie]s)\b"),
    _cue("review", r"\bin this review\b|\bwe review\b|\bthis review\b|\bnarrative review\b|\breview article\b"
                   r"|\bthis (?:article|activity|paper) reviews\b|\bChief Editor\b"),
    _cue("editorial", r"\bletter to the editor\b|\bto the editor\b|^\s*editorial\b"),
)

_PUB_TYPES_RE = re.compile(r"^\s*Publication types?\s*:?\s*\n?((?:[ \t]*[-•*]?[ \t]*[A-Z][^\n]{1,80}\n?){1,8})", re.M)
_NUMBERED_CITATION_RE = re.compile(r"(?<=[A-Za-z.,;)\]] )\(\d{1,3}(?:[,\u2013-]\s?\d{1,3})*\)|\[\d{1,3}(?:[,\u2013-]\s?\d{1,3})*\]")
_LETTERS_RE = re.compile(r"[A-Za-z]+")
_VOWEL_GROUPS_RE = re.compile(r"[aeiouy]+")  # a syllable count good enough to tell long words
_YOU_RE = re.compile(r"\b(?:you|your|yours|yourself)\b", re.I)
_WORD_RE = re.compile(r"\b\w+\b")
_PATIENT_PHRASES_RE = re.compile(
    r"\btalk (?:to|with) your (?:doctor|healthcare|care team|kidney doctor)\b|\bask your (?:doctor|nephrologist)\b"
    r"|\bcall your (?:doctor|health care provider|healthcare provider)\b"
    r"|\bthis leaflet\b|\bpatient information\b|\binformation for patients\b", re.I)
# A reference list is not the document speaking: cues after its heading are ignored.
_REFERENCES_RE = re.compile(r"^\s*(?:references|bibliography|literature cited)\s*:?\s*$", re.I | re.M)


def infer_study_type(text: str, title: str = "") -> str:
    """Key of kb/evidence_types.py for the study type the text states, or "" when no cue says."""
    if title:
        for cue in _TITLE_CUES:
            if cue.pattern.search(title):
                return cue.key
    head = text[:TYPE_HEAD_CHARS]
    refs = _REFERENCES_RE.search(head)
    if refs:
        head = head[:refs.start()]
    stated = _PUB_TYPES_RE.search(head)  # a PubMed abstract page lists its publication types
    if stated:
        row = from_publication_types(t.strip(" -•*\t") for t in re.split(r"[\n;,]", stated.group(1)))
        if row is not None:
            return row.key
    for cue in _DOCUMENT_CUES:
        if cue.pattern.search(head):
            return cue.key
    if _addresses_patients(text):
        return "patient_information"
    first_line = next((ln for ln in head.splitlines() if ln.strip()), "")
    if not title and first_line:
        for cue in _TITLE_CUES:
            if cue.pattern.search(first_line):
                return cue.key
    for cue in _HEAD_CUES:
        if cue.pattern.search(head):
            return cue.key
    # Then: plain language (few long words) with no design of its own is written for patients.
    if _plain_language(text):
        return "patient_information"
    # Last: a text that cites numbered references and states no design of its own is a
    # secondary source (a review or a clinical reference text).
    if len(_NUMBERED_CITATION_RE.findall(text[:20_000])) >= MIN_NUMBERED_CITATIONS:
        return "review"
    return ""


def _plain_language(text: str) -> bool:
    words = _LETTERS_RE.findall(text[:20_000])
    if len(words) < MIN_WORDS_FOR_PATIENT:
        return False
    long_words = sum(1 for w in words if _syllables(w) >= 4)
    return long_words / len(words) < PLAIN_LANGUAGE_LONG_WORDS


def _syllables(word: str) -> int:
    """Vowel groups, a final silent e not counted: close enough to tell long words."""
    w = word.lower()
    n = len(_VOWEL_GROUPS_RE.findall(w))
    return n - 1 if n > 1 and w.endswith("e") and not w.endswith(("le", "ee")) else n


def _addresses_patients(text: str) -> bool:
    sample = text[:20_000]
    words = len(_WORD_RE.findall(sample))
    if words < MIN_WORDS_FOR_PATIENT:
        return bool(_PATIENT_PHRASES_RE.search(sample))
    rate = 1000.0 * len(_YOU_RE.findall(sample)) / words
    return rate >= PATIENT_YOU_PER_1000 or (rate >= PATIENT_YOU_PER_1000 / 2 and bool(_PATIENT_PHRASES_RE.search(sample)))


# ---------------------------------------------------------------------------------------
# bibliographic fields the opening states
# ---------------------------------------------------------------------------------------

_DOI_RE = re.compile(r"(?:\bdoi\s*:?\s*|https?://(?:dx\.)?doi\.org/)(10\.\d{4,9}/[^\s\"<>]+)", re.I)
_PMID_RE = re.compile(r"\bPMID\s*:?\s*(\d{1,9})\b")
# "Nephron. 2011 Jun;17(3):101-9" / "Kidney Int. 2019;95(4):123-130" / "N Engl J Med 2021; 384:..."
_CITATION_LINE_RE = re.compile(
    r"^\s*(?P<journal>[A-Z][A-Za-z&.\- ]{2,80}?)\.?\s+(?P<year>(?:19|20)\d\d)(?:\s+[A-Z][a-z]{2}(?:\s+\d{1,2})?)?\s*;\s*"
    r"(?P<vol>\d+)(?:\s*\(\s*[\w\- ]+\s*\))?\s*:\s*[eS]?\d+", re.M)
_DATED_RE = re.compile(
    r"\b(?:published(?: online)?(?: on)?|last (?:updated|reviewed|modified)|updated(?: on)?|date of publication|"
    r"revised|copyright|©|\(c\))\s*:?\s*(?:[A-Za-z]+\.? )?(?:\d{1,2}(?:st|nd|rd|th)?,? )?(?:[A-Za-z]+\.? )?"
    r"(?:\d{1,2}/)?(?:\d{1,2}, )?((?:19|20)\d\d)\b", re.I)
_BYLINE_RE = re.compile(r"^\s*(?:authors?|by|written by)\s*:?\s+(?P<names>[^\n]{3,300})$", re.I | re.M)
_NAME_RE = re.compile(r"^[A-Z][A-Za-z'\-]+(?:\s+(?:[A-Z]\.?|[A-Z][A-Za-z'\-]+|van|von|de|der|da|di|al|el)){1,4}$")
_DEGREES_RE = re.compile(r",?\s+\b(?:MD|PhD|MBBS|MSc|MPH|DO|RN|FRCP|FASN|BSc|PharmD|MBChB|DM|MS)\b\.?", re.I)


def infer_meta(text: str, stated: DocMeta = DocMeta()) -> DocMeta:
    """What the text itself states, for the fields `stated` (from the loader) leaves empty."""
    head = text[:HEAD_CHARS]
    fields: dict[str, object] = {}
    if not stated.doi:
        m = _DOI_RE.search(head)
        if m:
            fields["doi"] = m.group(1).rstrip(".,;:)]")
    if not stated.pmid:
        m = _PMID_RE.search(head)
        if m:
            fields["pmid"] = m.group(1)
    citation = _CITATION_LINE_RE.search(head)
    if citation and not (stated.journal or stated.publisher):
        fields["journal"] = citation.group("journal").strip()
    if stated.year is None:
        if citation:
            fields["year"] = int(citation.group("year"))
        else:
            m = _DATED_RE.search(head)
            if m:
                fields["year"] = int(m.group(1))
    if not stated.authors:
        authors = _byline(head)
        if authors:
            fields["authors"] = authors
    key = infer_study_type(text, stated.title)
    if key:
        row = BY_KEY[key]
        fields.update(doc_type=row.doc_type, evidence_level=row.evidence_level)
    return DocMeta(**fields)  # type: ignore[arg-type]


def _byline(head: str) -> tuple[str, ...]:
    """Authors after an explicit 'Authors:' / 'By' label, kept only when every item is a name."""
    m = _BYLINE_RE.search(head)
    if not m:
        return ()
    raw = _DEGREES_RE.sub("", m.group("names"))
    parts = [p.strip(" .;") for p in re.split(r",|;|\band\b|&", raw) if p.strip(" .;")]
    if not parts or not all(_NAME_RE.match(p) for p in parts):
        return ()
    return tuple(parts)
