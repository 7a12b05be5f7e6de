"""The one table of document types and evidence levels.

Every automatic label comes from here: PubMed publication types (ingest/loaders.py), study
types inferred from a document's text (ingest/metadata.py), and the flags shown with every
citation of a retracted or corrected article. Catalogue entries may use other words; they
override these labels field by field.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class EvidenceType:
    key: str
    doc_type: str  # what kind of document (the "Document type" filter)
    evidence_level: str  # the label shown next to every quote from it
    pubmed_types: tuple[str, ...] = ()  # PubMed publication types (lower case) that mean this type


# Strongest first: a record with several publication types gets the first row that matches
# (an RCT that is also a "Journal Article" and a "Multicenter Study" is an RCT).
EVIDENCE_TYPES: tuple[EvidenceType, ...] = (
    EvidenceType("guideline", "guideline", "clinical practice guideline",
                 ("practice guideline", "guideline", "consensus development conference",
                  "consensus development conference, nih")),
    EvidenceType("systematic_review", "systematic review", "systematic review / meta-analysis",
                 ("systematic review", "meta-analysis")),
    EvidenceType("rct", "randomized controlled trial", "randomized controlled trial",
                 ("randomized controlled trial", "equivalence trial")),
    EvidenceType("clinical_trial", "clinical trial", "clinical trial (not randomized)",
                 ("clinical trial", "clinical trial, phase i", "clinical trial, phase ii",
                  "clinical trial, phase iii", "clinical trial, phase iv", "controlled clinical trial",
                  "pragmatic clinical trial", "adaptive clinical trial", "clinical study")),
    EvidenceType("observational", "observational study", "cohort / observational study",
                 ("observational study", "twin study")),
    EvidenceType("case_report", "case report", "case report (single patient)", ("case reports",)),
    EvidenceType("review", "review", "narrative review (peer-reviewed journal)",
                 ("review", "scoping review")),
    EvidenceType("editorial", "editorial / comment", "editorial, comment or letter (opinion)",
                 ("editorial", "comment", "letter", "news", "interview")),
    EvidenceType("retracted", "retracted publication", "RETRACTED publication: do not rely on it",
                 ("retracted publication",)),
    # Kinds of document that are not journal articles (inferred from text cues only).
    EvidenceType("drug_label", "drug label", "drug label (prescribing information)"),
    EvidenceType("trial_registry", "trial registry record", "trial registry record (not peer reviewed)"),
    EvidenceType("patient_information", "patient information", "patient information (not peer reviewed)"),
)
BY_KEY: dict[str, EvidenceType] = {t.key: t for t in EVIDENCE_TYPES}
BY_DOC_TYPE: dict[str, EvidenceType] = {t.doc_type: t for t in EVIDENCE_TYPES}

# Flags carried by a document's metadata and every citation of it.
RETRACTED = "retracted"
ERRATUM = "erratum"
CONCERN = "expression of concern"
INFERRED = "type inferred"  # the document type was inferred from the text, not catalogued

# CommentsCorrections RefType (PubMed XML) / MEDLINE tag -> flag
PUBMED_CORRECTION_FLAGS: dict[str, str] = {
    "RetractionIn": RETRACTED, "RIN": RETRACTED,
    "ErratumIn": ERRATUM, "EIN": ERRATUM,
    "ExpressionOfConcernIn": CONCERN, "ECI": CONCERN,
}


def from_publication_types(pub_types: Iterable[str]) -> EvidenceType | None:
    """The strongest row matching any of a record's publication types; the retraction row only
    when nothing else matches (the flag says it is retracted; the study type stays visible)."""
    lowered = {p.strip().lower() for p in pub_types}
    for row in EVIDENCE_TYPES:
        if row.key != "retracted" and lowered & set(row.pubmed_types):
            return row
    return BY_KEY["retracted"] if "retracted publication" in lowered else None


def flags_for(pub_types: Iterable[str], corrections: Iterable[str] = ()) -> tuple[str, ...]:
    """Flags from publication types and CommentsCorrections reference types, in a fixed order."""
    found = {PUBMED_CORRECTION_FLAGS[c] for c in corrections if c in PUBMED_CORRECTION_FLAGS}
    if "retracted publication" in {p.strip().lower() for p in pub_types}:
        found.add(RETRACTED)
    return tuple(f for f in (RETRACTED, CONCERN, ERRATUM) if f in found)


def flagged_label(evidence_level: str, flags: Iterable[str]) -> str:
    """The evidence label as shown with a citation: a retraction first, in capitals."""
    flags = tuple(flags)
    label = evidence_level
    if RETRACTED in flags and not label.startswith("RETRACTED"):
        label = f"RETRACTED — {label}" if label else "RETRACTED"
    for flag, note in ((CONCERN, " (expression of concern published)"), (ERRATUM, " (erratum published)"),
                       (INFERRED, " (type inferred from the text)")):
        if flag in flags and note not in label:  # idempotent: a label may be flagged already
            label += note
    return label
