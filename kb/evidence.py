"""Evidence: which source sentences bear on a text (a question, or a claim being audited),
scored by one documented model, and which of the text's requirements they meet.

Shared by the question answerer (kb/answer.py) and the draft auditor: one code path decides
what a passage must say to count as evidence.

What a text requires (`Needs`):
  * requirements  hard constraints: every drug, drug class, therapy or disease it names
                  (vocabulary concepts, drugs the drug library knows, abbreviations the corpus
                  defines), every literal name no list knows (trial names, gene names: "DUPLEX",
                  "FSGS-CT", "APOL1"), and a population when one is stated (children, pregnancy,
                  transplant). Evidence that does not meet one is not evidence for the text.
  * answer_type   from the question's form: rate, dose, duration, frequency, count, level,
                  cost, yes/no, definition, the soft (ranking-only) list, figure, timing,
                  reason, or "" (see `answer_type`).
  * time_points   time points and amounts it states ("at week 108", "12 months", "2 mg/kg"):
                  the chosen evidence's passage must state the same number (a duration also in
                  its whole-number equivalents: 52 weeks, 12 months, 1 year).
  * key_terms     the remaining words and topical concepts (with their IDF in the corpus): what
                  the text is about besides its entities ("liver enzymes checked").

How a candidate sentence scores (all weights in `ScoringSettings`, kb/config.py, fitted on the
tuning split of the development set, eval/dev/):
    score = w_dense * cosine(text, sentence with its context)        [stored at ingest]
          + w_lexical * IDF-weighted share of key terms it (or its context) contains
          + w_type * (it states a figure of the asked answer type)
          + w_chunk * (its chunk's hybrid retrieval score, relative to the best)
    x penalties for sentences that cannot answer on their own (questions, bare list intros).
A candidate that fails a requirement is dropped, whatever its score.
"""
from __future__ import annotations

import bisect
import difflib
import functools
import math
import re
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from kb.answer_text import Figure, Sentence, chunk_sentences, figures
from kb.config import ScoringSettings
from kb.instructions import overlaps
from kb.query import SECTION_KINDS, Concept, QuestionAnalysis, Vocabulary, analyse, query_for, stems
from kb.types import Chunk, DocMeta, Filters, Hit, Query
from kb.word_frequency import zipf

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

# ---------------------------------------------------------------------------- answer types

# The kind of answer a question's form asks for. Patterns are about English question forms, not
# about any document.
_ADMINISTER = (r"check|checked|checking|monitor|monitored|monitoring|measure|measured|test|tested|testing|given|"
               r"give|dosed|administered|taken|take|repeat|repeated|infus\w*|inject\w*|done|performed|seen|visit\w*")
_CHANGE = (r"drop|dropped|fall|fell|decrease|decreased|reduce|reduced|reduction|increase|increased|rise|rose|raise|raises|raised|"
           r"change|changed|decline|declined|improve|improved|lower|lowered|differ|better|more|less|higher|due")
_TYPE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cost", re.compile(r"\b(?:cost|costs|costing|price|prices|priced|expensive|afford\w*|pay for|paid for)\b",
                        re.IGNORECASE)),
    ("frequency", re.compile(rf"\bhow (?:often|frequently)\b.*\b(?:{_ADMINISTER})\b|\bfrequency of\b(?!.*\b(?:"
                             r"relapse|remission|recurrence|side effect|adverse))", re.IGNORECASE)),
    ("duration", re.compile(r"\bhow long\b|\bfor how many (?:weeks|months|years|days)\b|\bduration\b|"
                            r"\bhow many (?:weeks|months|years|days)\b|\bwhen (?:to|should|can) (?:stop|taper)\b",
                            re.IGNORECASE)),
    ("rate", re.compile(rf"\bhow much\b.*\b(?:{_CHANGE})\b|\bby how much\b|\bhow (?:much|many times) more\b",
                        re.IGNORECASE)),
    ("dose", re.compile(r"\b(?:what|which|usual|starting|initial|recommended|maximum|max)\s+(?:\w+\s+){0,2}"
                        r"(?:dose|doses|dosing|dosage)\b|(?<![\w-])dos(?:e|es|ing|age)\b|\bhow many mg\b|"
                        r"\bregimen\b|\bmg/kg\b", re.IGNORECASE)),
    ("level", re.compile(r"\btrough\b|\blevels?\b.*\b(?:target|aim|goal)\b|\btarget\b.*\blevels?\b|\bconcentration\b",
                         re.IGNORECASE)),
    ("rate", re.compile(r"\bwhat (?:proportion|percentage|percent|fraction|share)\b|\bhow many (?:percent|%)\b|"
                        r"\brates?\b|\bpercentage\b|\bproportion\b|\bhow (?:often|frequently|likely)\b|"
                        r"\bchances?\b|\blikelihood\b|\bhow (?:effective|well)\b|\befficacy\b|\bsuccess\b|"
                        r"\b(?:what|how high) (?:is|was|are) the (?:\w+ )?(?:risk|odds)\b|\brisk of\b",
                        re.IGNORECASE)),
    ("count", re.compile(r"\bhow many\b", re.IGNORECASE)),
    ("dose", re.compile(r"\bhow much\b", re.IGNORECASE)),  # "how much tacrolimus": a dose, else a change (above)
    # Things to enumerate: "What are the symptoms...", "Common side effects of X?", "Which agents...".
    ("list", re.compile(r"^\s*(?:what|which)\s+(?:are|were)\s+the\b|^\s*(?:list|name)\b|"
                        r"\b(?:what|which|common|main|most common|frequent|serious|known)\s+(?:\w+\s+){0,2}"
                        r"(?:side effects|adverse (?:events|effects|reactions)|symptoms|signs|complications|"
                        r"contraindications|risks|causes|options|treatments|drugs|medicines|medications|agents|"
                        r"tests|criteria|conditions|toxicities|warnings|precautions|interactions)\b",
                        re.IGNORECASE)),
    ("definition", re.compile(r"^\s*(?:what\s+is|what's|whats|define|definition of)\b|"
                              r"\b(?:considered|defined|called|regarded as|classified as|termed)\b", re.IGNORECASE)),
    # Soft types (ranking only, never a reason to abstain): a threshold or amount of unstated kind,
    # a point in time, a reason.
    ("figure", re.compile(r"\b(?:minimum|maximum|lowest|highest|at least|cut-?off|threshold)\b|"
                          r"\bhow (?:high|low|fast|soon|old|young|big|large|far|severe)\b|"
                          r"\b(?:what|which) ages?\b|\bage range\b|\bat what ages?\b", re.IGNORECASE)),
    ("timing", re.compile(r"^\s*(?:when|since when|until when)\b|\bat what (?:point|stage|time)\b|"
                          r"\b(?:from|after|by) what (?:week|month|day|year|age)\b", re.IGNORECASE)),
    ("reason", re.compile(r"^\s*why\b|\bfor what reason\b|\bwhat (?:was|is) the reason\b", re.IGNORECASE)),
    ("yesno", re.compile(r"^\s*(?:is|are|does|do|can|should|could|will|was|were|has|have|did)\b", re.IGNORECASE)),
)
# Words that only say which kind of figure is asked ("what DOSE", "what PROPORTION"): the answer
# type signal stands for them, so they are not key words a sentence must contain ("1-2 g/d"
# answers "MMF dose?" without the word "dose").
_TYPE_WORDS: dict[str, frozenset[str]] = {
    "dose": frozenset("dose doses dosing dosage dosages regimen regimens mg amount much".split()),
    "rate": frozenset("rate rates proportion percentage percent fraction share chance chances likelihood "
                      "efficacy effective effectiveness success successful often frequently likely much".split()),
    "duration": frozenset("duration long length period time".split()),
    "frequency": frozenset("frequency often frequently".split()),
    "level": frozenset("level levels target targets concentration goal".split()),
    "count": frozenset("number many count".split()),
    "cost": frozenset("cost costs price prices expensive much afford".split()),
}
QUANTITATIVE_TYPES = frozenset({"frequency", "duration", "dose", "level", "rate", "count", "cost"})
# A sum of money: a currency sign or name next to a figure.
_MONEY = re.compile(r"[$€£¥]\s?\d|\b\d[\d,.]*\s?(?:dollars|euros?|pounds|USD|EUR|GBP)\b", re.IGNORECASE)

# Figure units (kb.answer_text.figures) that state each quantitative answer type.
# kb.quantities kinds that state each quantitative answer type.
_TYPE_KINDS: dict[str, frozenset[str]] = {
    "dose": frozenset({"dose"}),
    "level": frozenset({"concentration"}),
    "rate": frozenset({"percent", "ratio"}),
    "duration": frozenset({"duration"}),
    "count": frozenset({"count"}),
}
# Frequency is stated in words as often as in figures ("monthly", "every 3 months").
_FREQUENCY = re.compile(r"\b(?:daily|weekly|monthly|yearly|annually|quarterly|every\s+(?:\d+\s*(?:-|to)\s*)?\d*\s*"
                        r"(?:days?|weeks?|months?|years?|hours?)|once|twice|three times|times (?:a|per)|"
                        r"per (?:day|week|month|year)|at (?:baseline|initiation)|(?:before|prior to) (?:initiation|"
                        r"starting|treatment)|periodically|regularly)\b", re.IGNORECASE)
_NUMBER_WORDS = (r"(?:\d+(?:[.,]\d+)*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                 r"fifteen|twenty|thirty|forty|fifty|hundred|dozen|single|both)")
# A count: a number not followed by a unit of another answer type ("371 patients", "five sessions").
_COUNT = re.compile(rf"\b{_NUMBER_WORDS}\b(?!\s*(?:%|percent|mg|g\b|g/|ng|µg|mcg|ml|ml/|units?\b|iu\b|"
                    r"weeks?|months?|years?|days?|hours?|times|[.,]\d))", re.IGNORECASE)
# A number that names rather than counts: "phase 3", "stage 2", "grade 4", "type 1", "Patient 7",
# "week 12", "Table 2", and calendar years ("2004").
_LABEL_BEFORE = re.compile(r"\b(?:phase|stage|grade|type|class|patients?|group|arm|cohort|week|day|month|year|visit|"
                           r"cycle|step|level|figure|fig|table|version|part|section|chapter|no|number)\.?\s*$",
                           re.IGNORECASE)
_CALENDAR_YEAR = re.compile(r"(?:19|20)\d\d")


def _counts(text: str, m: "re.Match[str]") -> bool:
    """Is this number a count of something (not a label or a calendar year)?"""
    if _CALENDAR_YEAR.fullmatch(m.group(0)):
        return False
    return not _LABEL_BEFORE.search(text[max(0, m.start() - 12):m.start()])


_PROPORTION = re.compile(r"\b\d+\s*(?:of|/|out of)\s*\d+\b|\b(?:half|one-third|a third|two-thirds|a quarter|"
                         r"majority|most)\b", re.IGNORECASE)
_YEARS_AS_DURATION = re.compile(r"\bfor\b|\bover\b|\bafter\b|\bwithin\b|\bat least\b|\bduring\b|\bup to\b|"
                                r"\bcontinu|\bfollow|\bdurat|\btaper|\bminimum|\bperiod", re.IGNORECASE)


# A sentence stating what a study set out to do, not what it found ("To examine whether ...",
# "Background: The purpose of this study was ..."): English forms of scientific writing.
_AIM = re.compile(r"^(?:(?:background|objectives?|aims?|purpose|introduction|rationale)\s*[:.]|"
                  r"(?:to|we)\s+(?:examine|evaluate|assess|determine|investigate|compare|describe|explore|test)\b|"
                  r"we\s+(?:aimed|sought|evaluated|examined|assessed|investigated|compared|describe|report)\b|"
                  r"(?:the|this|our)\s+(?:aim|purpose|objective|goal)s?\s+(?:of|was|is)\b|"
                  r"(?:this|the present)\s+(?:study|trial|review)\s+(?:aims?|aimed|will|was designed)\b)",
                  re.IGNORECASE)


# Web-page navigation addressed to the reader ("Read on to learn more.", "Click here to
# download the leaflet."): it points elsewhere and never states anything, so it is never evidence.
_NAVIGATION = re.compile(r"^(?:please\s+)?(?:read\s+(?:on|more)|click|tap\s+here|learn\s+more|find\s+out\s+more|"
                         r"see\s+(?:more|below|above)|continue\s+reading|scroll|contact\s+us|call\s+us|subscribe|"
                         r"sign\s+up|share\s+this|follow\s+us|visit\s+(?:our|us)|download|back\s+to\s+top|"
                         r"skip\s+to)\b", re.IGNORECASE)
NAVIGATION_MAX_CHARS = 100  # longer sentences starting so may carry content ("Download ... shows that ...")
# A referral to another document, whatever its length: "For a full list of adverse events, please
# refer to the full Prescribing Information", "Please see Important Safety Information below".
_REFERRAL = re.compile(r"\bplease (?:refer to|see|visit|read)\b|\brefer to the (?:full|complete)\b|"
                       r"^for (?:a )?(?:full|complete|more|further|additional) (?:list|information|details)\b.*"
                       r"\b(?:refer to|see|visit|click|contact|call)\b", re.IGNORECASE)


def is_navigation(sentence: str) -> bool:
    text = sentence.strip(" \t•-*")
    return len(text) <= NAVIGATION_MAX_CHARS and bool(_NAVIGATION.match(text)) or bool(_REFERRAL.search(text))


def is_aim(sentence: str) -> bool:
    return bool(_AIM.match(sentence.lstrip(" \t•-*0123456789.)")))


def restates_title(sentence: str, title: str) -> bool:
    """The sentence contains its document's title (a title glued to the first sentence)."""
    t = " ".join(title.lower().split())
    return len(t) >= 30 and t in " ".join(sentence.lower().split())


def answer_type(question: str) -> str:
    """The answer type a question's form asks for ("" when it asks none in particular)."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
    return ""


def states_list(sent: Sentence) -> bool:
    """Does a sentence enumerate things: an item of a list under an intro, or three or more
    items in the sentence itself?"""
    return sent.is_list_item and sent.intro is not None or len(re.findall(r"[,;]", sent.text)) >= 2 \
        or bool(re.search(r",[^,]+,?\s+(?:and|or)\s", sent.text))


# A point or span in time: a calendar date, or a time word with a time expression.
# A month is a capitalised name before a day or year ("March 2015", "May 3"), not the verb "may".
_TIMING = re.compile(r"\b(?:19|20)\d\d\b|\b(?-i:January|February|March|April|May|June|July|August|September|"
                     r"October|November|December)\b(?=,?\s*\d)|\b(?:before|after|within|until|once|during|since|from|by)\b"
                     r"[^.;]{0,40}\b(?:\d|days?|weeks?|months?|years?|baseline|diagnosis|onset|transplant\w*|"
                     r"remission|relapse)", re.IGNORECASE)
# A cause or purpose stated.
_REASON = re.compile(r"\b(?:because|due to|owing to|as a result|result(?:ed|s|ing)? (?:from|in)|lack of|attributed to|"
                     r"explained by|reasons?|since|therefore|thus|so that|in order to|leads? to|led to|caus(?:e|es|ed|ing))\b",
                     re.IGNORECASE)
SOFT_TYPES = frozenset({"list", "figure", "timing", "reason"})


def states_soft_type(kind: str, sent: Sentence, figs: Sequence[Figure]) -> bool:
    """Does a sentence state what a soft-typed question asks (see SOFT_TYPES)?"""
    if kind == "list":
        return states_list(sent)
    if kind == "figure":
        return any(f.unit for f in figs)
    if kind == "timing":
        return bool(_TIMING.search(sent.text)) or any(f.kind == "duration" for f in figs)
    if kind == "reason":
        return bool(_REASON.search(sent.text))
    return False


def states_type(kind: str, text: str, figs: Sequence[Figure]) -> bool:
    """Does a sentence state a figure (or phrase) of the answer type `kind`?"""
    if kind == "frequency":
        return bool(_FREQUENCY.search(text))
    if kind == "count":
        return any(_counts(text, m) for m in _COUNT.finditer(text))
    if kind == "cost":
        return bool(_MONEY.search(text))
    kinds = _TYPE_KINDS.get(kind)
    if kinds is None:
        return False
    hit = any(f.kind in kinds for f in figs)
    if kind == "rate" and not hit:
        return bool(_PROPORTION.search(text))
    if kind == "duration" and hit:
        return bool(_YEARS_AS_DURATION.search(text)) or any(f.kind == "duration" and f.unit != "year" for f in figs)
    return hit


# ---------------------------------------------------------------------------- annotations

# How directly a sentence is about a concept: named in the sentence itself, in its list intro
# or the sentence its pronoun refers to, in a heading above it (or the passage's first
# sentence), or only in its document's title.
OWN, CONTEXT, HEADING, TITLE = 1.0, 0.8, 0.6, 0.4


@dataclass(frozen=True)
class Annotated:
    """A candidate sentence with what it is about."""

    sent: Sentence
    weights: dict[str, float]  # concept id -> OWN / CONTEXT / HEADING / TITLE
    stems: frozenset[str]
    context_stems: frozenset[str]
    figures: tuple[Figure, ...]
    meta: DocMeta
    row: int = -1  # row of the sentence's vector in the index (-1: none stored)
    drugs: frozenset[str] = frozenset()  # drug-like concepts the sentence (else its context) is about
    navigation: bool = False  # web navigation or a referral (is_navigation): never evidence

    def about(self, ids: Iterable[str]) -> float:
        return max((self.weights.get(i, 0.0) for i in ids), default=0.0)


def _drugs(vocab: Vocabulary, weights: dict[str, float]) -> frozenset[str]:
    best = max((w for c, w in weights.items() if c in vocab.concepts and vocab.concepts[c].kind in SECTION_KINDS),
               default=0.0)
    return frozenset(c for c, w in weights.items() if w == best and best > 0
                     and c in vocab.concepts and vocab.concepts[c].kind in SECTION_KINDS)


def _weights(vocab: Vocabulary, s: Sentence, ctx_text: str, topic_ids: set[str],
             title_ids: set[str]) -> dict[str, float]:
    """Concept -> how directly the sentence is about it. Drugs are inherited from the context,
    the passage's first sentence, the headings, then the title, only while the sentence itself
    names none (a sentence about "this drug" in a review of cyclosporine is about cyclosporine)."""
    weights: dict[str, float] = {}

    def add(ids: Iterable[str], w: float) -> None:
        for c in vocab.with_classes(ids):
            weights[c] = max(weights.get(c, 0.0), w)

    def names_a_drug() -> bool:
        return any(vocab.concepts[c].kind in SECTION_KINDS for c in weights)

    add(vocab.concepts_in(s.text), OWN)
    if ctx_text:
        add(vocab.concepts_in(ctx_text), CONTEXT)
    if not names_a_drug():
        add([c for c in topic_ids if vocab.concepts[c].kind in SECTION_KINDS], HEADING)
    has_drug = names_a_drug()
    add([c for c in vocab.concepts_in(s.heading) if not has_drug or vocab.concepts[c].kind not in SECTION_KINDS],
        HEADING)
    if not names_a_drug():
        add(title_ids, TITLE)
    return weights


@dataclass
class CorpusView:
    """Per-index caches: sentence annotations per chunk, concept presence, document frequency."""

    base: "KnowledgeBase"
    vocab: Vocabulary
    sentences: dict[str, tuple[Annotated, ...]] = field(default_factory=dict)
    present: dict[str, bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    chunk_rows: dict[str, int] = field(default_factory=dict)
    mentions: dict[tuple, bool] = field(default_factory=dict)  # (source, requirement) -> named in it
    _sorted_vocab: list[str] | None = None  # BM25's stems, sorted (for `forms`)
    _catalogue_stems: frozenset[str] | None = None  # stems of every document's authors

    def __post_init__(self) -> None:
        self.chunk_rows = {c.chunk_id: i for i, c in enumerate(self.base.contents.chunks)}

    # -- corpus-wide facts ------------------------------------------------------------
    def df(self, stem: str) -> int:
        """Chunks containing `stem` (from BM25's posting lists: no scan of the chunks)."""
        bm25 = self.base.contents.bm25
        if bm25 is None:
            return 0
        i = bm25.vocab_dict.get(stem)
        indptr = bm25.scores["indptr"]
        if i is None or i + 1 >= len(indptr):
            return 0
        return int(indptr[i + 1] - indptr[i])

    def postings(self, stem: str) -> np.ndarray:
        """Rows of the chunks containing `stem`."""
        bm25 = self.base.contents.bm25
        i = bm25.vocab_dict.get(stem) if bm25 is not None else None
        if i is None or i + 1 >= len(bm25.scores["indptr"]):
            return np.zeros(0, dtype=np.int64)
        a, b = bm25.scores["indptr"][i], bm25.scores["indptr"][i + 1]
        return np.asarray(bm25.scores["indices"][a:b])

    @property
    def n_chunks(self) -> int:
        return max(1, len(self.base.contents.chunks))

    def idf(self, stem: str) -> float:
        return math.log(1.0 + (self.n_chunks + 1) / (self.df(stem) + 0.5))

    def forms(self, stem: str) -> tuple[str, ...]:
        """`stem` and the corpus stems that differ from it only by a short ending ("weigh" /
        "weight", "india" / "indian"): one word the stemmer split in two. Stems under 4
        letters stand alone ("cost" is no form of "costimulatori": too long an ending)."""
        if len(stem) < 4:
            return (stem,)
        bm25 = self.base.contents.bm25
        if bm25 is None:
            return (stem,)
        if self._sorted_vocab is None:
            self._sorted_vocab = sorted(bm25.vocab_dict)
        words = self._sorted_vocab
        ending = self.base.settings.scoring.form_ending
        out = [stem]
        i = bisect.bisect_left(words, stem)
        while i < len(words) and words[i].startswith(stem):
            if 0 < len(words[i]) - len(stem) <= ending:
                out.append(words[i])
            i += 1
        for cut in range(1, ending + 1):
            if len(stem) - cut >= 4 and stem[:-cut] in bm25.vocab_dict:
                out.append(stem[:-cut])
        if len(stem) >= 6 and self.base.settings.scoring.sibling_forms:
            # The same root with another last letter: "respond" / "respons" (responded, responses).
            root = stem[:-1]
            i = bisect.bisect_left(words, root)
            while i < len(words) and words[i].startswith(root):
                if words[i] not in out and abs(len(words[i]) - len(stem)) <= 1:
                    out.append(words[i])
                i += 1
        return tuple(out)

    def close_words(self, word: str, n: int = 2) -> tuple[str, ...]:
        """Words of the corpus spelt almost like `word` (a word no passage contains), as a
        passage writes them: "sparsentin" -> "sparsentan". Only words of 6+ letters, compared
        with BM25's stems of about the same length and first letter (fast at any corpus size)."""
        toks = stems(word)
        bm25 = self.base.contents.bm25
        if len(toks) != 1 or len(word) < 6 or bm25 is None:
            return ()
        stem = toks[0]
        if self._sorted_vocab is None:
            self._sorted_vocab = sorted(bm25.vocab_dict)
        words = self._sorted_vocab
        i = bisect.bisect_left(words, stem[0])
        pool = []
        while i < len(words) and words[i][:1] == stem[0]:
            if abs(len(words[i]) - len(stem)) <= 2 and words[i] != stem:
                pool.append(words[i])
            i += 1
        out = []
        for close in difflib.get_close_matches(stem, pool, n=n, cutoff=0.8):
            shown = self._written(close)
            if shown and shown.lower() != word.lower():
                out.append(shown)
        return tuple(dict.fromkeys(out))

    def _written(self, stem: str) -> str:
        """A word of some passage whose stem is `stem`, as the passage writes it."""
        rows = self.postings(stem)
        if not len(rows):
            return ""
        text = self.base.contents.chunks[int(rows[0])].text
        for m in re.finditer(r"[A-Za-z][A-Za-z\-]+", text):
            if stems(m.group(0)) == (stem,):
                return m.group(0)
        return ""

    def in_catalogue(self, stem: str) -> bool:
        """Is `stem` a word of some document's author list? ("the Choudhry trial": a first
        author's name is how readers name a study.)"""
        if self._catalogue_stems is None:
            words = " ".join(" ".join(d.meta.authors) for d in self.base.contents.documents.values())
            self._catalogue_stems = frozenset(stems(words))
        return stem in self._catalogue_stems

    def has_word(self, word: str) -> bool:
        toks = stems(word)
        return bool(toks) and all(self.df(s) > 0 for s in toks)

    def chunks_with_terms(self, terms: Iterable[str]) -> list[int]:
        """Rows of chunks that may contain one of `terms`: every stem of a term must be in the
        chunk (BM25 postings intersected; a phrase check is left to the caller)."""
        rows: set[int] = set()
        for t in terms:
            toks = stems(t)
            if not toks:
                continue
            common: set[int] | None = None
            for s in toks:
                p = set(self.postings(s).tolist())
                common = p if common is None else common & p
                if not common:
                    break
            rows |= common or set()
        return sorted(rows)

    def has_concept(self, concept: Concept) -> bool:
        """Does any passage of the corpus mention the concept (any of its terms)? Looked up in
        BM25's postings, then confirmed by a phrase match in those chunks only."""
        key = concept.id
        if key not in self.present:
            self.present[key] = self._scan(concept)
        return self.present[key]

    def _scan(self, concept: Concept) -> bool:
        return self.mentions_any([t for t in (*concept.terms, *concept.library_terms) if t.strip()])

    def mentions_any(self, terms: Sequence[str]) -> bool:
        """Does any passage contain one of `terms` as a phrase? BM25's postings narrow the chunks
        first; the phrase is then confirmed in those chunks only."""
        pattern = term_pattern(terms)
        if pattern is None:
            return False
        chunks = self.base.contents.chunks
        return any(pattern.search(chunks[i].text) for i in self.chunks_with_terms(terms))

    # -- sentences --------------------------------------------------------------------
    def annotated(self, chunk: Chunk) -> tuple[Annotated, ...]:
        cached = self.sentences.get(chunk.chunk_id)
        if cached is None:
            cached = tuple(self._annotate(chunk))
            with self.lock:
                self.sentences[chunk.chunk_id] = cached
        return cached

    def _annotate(self, chunk: Chunk) -> list[Annotated]:
        vocab = self.vocab
        doc = self.base.document(chunk.source)
        text = doc.text
        title_ids = vocab.concepts_in(doc.title)
        if not any(vocab.concepts[c].kind in SECTION_KINDS for c in title_ids if c in vocab.concepts):
            # No drug in the title ("Abstract", "A retrospective case series of 21 patients"): the
            # drugs its opening names are what the document is about.
            lead = self.base.settings.scoring.lead_chars
            title_ids = title_ids | {c for c in vocab.concepts_in(text[:lead])
                                     if c in vocab.concepts and vocab.concepts[c].kind in SECTION_KINDS}
        sentences = chunk_sentences(text, chunk)
        topic_ids = vocab.concepts_in(sentences[0].text) if sentences else set()
        row_of = self.chunk_rows.get(chunk.chunk_id)
        rows = list(self.base.contents.sentence_rows(row_of)) if row_of is not None and \
            self.base.contents.sentence_offsets else []
        # What kind of study the catalogue says the document is ("randomized controlled trial",
        # "case series"): a question naming the design ("in the tac vs CsA RCT") is about it.
        design = " ".join((doc.meta.doc_type, doc.meta.evidence_level))
        design_ids = vocab.concepts_in(design) if design.strip() else set()
        out = []
        for i, s in enumerate(sentences):
            ctx_text = " ".join(text[a:b] for a, b in s.context)
            weights = _weights(vocab, s, ctx_text, topic_ids, title_ids)
            for c in design_ids:
                weights[c] = max(weights.get(c, 0.0), TITLE)
            out.append(Annotated(
                sent=s, weights=weights, stems=frozenset(stems(s.text)),
                context_stems=frozenset(stems(" ".join((ctx_text, s.heading, doc.title, design)))),
                figures=tuple(f for f in figures(text, s.start, s.end) if f.unit), meta=doc.meta,
                row=rows[i] if i < len(rows) else -1, drugs=_drugs(vocab, weights),
                navigation=is_navigation(s.text)))
        return out


_VIEWS: "weakref.WeakKeyDictionary[KnowledgeBase, CorpusView]" = weakref.WeakKeyDictionary()
_VIEWS_LOCK = threading.Lock()


def corpus_view(base: "KnowledgeBase") -> CorpusView:
    with _VIEWS_LOCK:
        view = _VIEWS.get(base)
        if view is None:
            view = _VIEWS[base] = CorpusView(base, base.vocabulary)
        return view


def term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive match of any of `terms` (spaces = hyphens, plural s)."""
    return _term_pattern(tuple(sorted(set(terms))))


@functools.lru_cache(maxsize=4096)
def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    bodies = []
    for t in terms:
        words = [w for w in re.split(r"[\s\-]+", t.strip()) if w]
        if words:
            bodies.append(r"[\s\-]+".join(re.escape(w) for w in words) + r"(?:s|es)?")
    if not bodies:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(sorted(set(bodies), key=len, reverse=True)) + r")(?![\w])",
                      re.IGNORECASE)


# ---------------------------------------------------------------------------- needs

@dataclass(frozen=True)
class Requirement:
    """Something the evidence must mention for the text to be covered."""

    kind: str  # "entity" (sentence-level: drug, class, therapy, disease) | "name" | "population"
    label: str
    ids: frozenset[str] = frozenset()  # vocabulary concepts that meet it (with members)
    terms: tuple[str, ...] = ()  # literal names that meet it (drugs the vocabulary lacks, trial names)
    key: str = ""  # the concept / entity id it stands for

    @property
    def scope(self) -> str:
        """Where the evidence must meet it: the sentence (with its context, headings and title)
        for entities; anywhere in the evidence's document for names and populations (a trial
        abstract names its trial and population once)."""
        return "sentence" if self.kind == "entity" else "document"


@dataclass(frozen=True)
class KeyTerm:
    """A word (or a vocabulary concept named in the text) the evidence should contain."""

    text: str  # as written in the text
    stems: frozenset[str]  # all must be in a sentence for it to contain the word ...
    ids: frozenset[str]  # ... or the sentence is about one of these concepts (synonyms count)
    weight: float  # IDF of its rarest stem in the corpus
    name: str = ""  # the vocabulary concept's label, when it names one
    absent: bool = False  # no chunk of the corpus contains it (and no synonym stands for it)
    forms: frozenset[str] = frozenset()  # corpus stems that stand for a one-stem word ("weight": "weigh")
    zipf: float = 9.0  # how common the word is in general English (kb/word_frequency.py); 9 = not judged
    proper: bool = False  # capitalised inside the sentence: a name (author, place) that identifies a study

    def within(self, have: frozenset[str] | set[str]) -> bool:
        """Does a set of stems contain the term (a one-stem word: in any of its forms)?"""
        return self.stems <= have or bool(self.forms and not self.forms.isdisjoint(have))

    @property
    def label(self) -> str:
        """How a reason names it: "side effects and toxicity (risks)", "enzymes"."""
        text = self.text.lower()
        name = self.name.lower()
        return f"{name} ({text})" if name and text not in name else (name or text)


@dataclass(frozen=True)
class Needs:
    text: str
    analysis: QuestionAnalysis
    query: Query
    requirements: tuple[Requirement, ...]
    answer_type: str
    key_terms: tuple[KeyTerm, ...]  # what the text asks about besides its required entities
    time_points: tuple[StatedFigure, ...] = ()  # time points / amounts the text states ("week 108")


@dataclass(frozen=True)
class StatedFigure:
    """A time point or amount a question states ("at week 108", "12 months", "2 mg/kg"): the
    evidence must state the same number, since a finding at week 8 does not answer week 108."""

    text: str  # as written in the question
    numbers: tuple[str, ...]  # the number as the evidence may write it ("52" weeks, or "12" months, "1" year)

    def pattern(self) -> re.Pattern[str]:
        return _number_pattern(self.numbers)


@functools.lru_cache(maxsize=256)
def _number_pattern(numbers: tuple[str, ...]) -> re.Pattern[str]:
    """Any of `numbers` standing alone: "108" but not "1080" nor "10.8"."""
    return re.compile(r"(?<![\d.,])(?:" + "|".join(map(re.escape, numbers)) + r")(?![\d]|[.,]\d)")


# A unit before its number ("week 108", "month 6", "day 7", "cycle 2"): kb.quantities reads
# units after a number only.
_UNIT_FIRST = re.compile(r"\b(?:weeks?|months?|days?|years?|cycles?|doses?|visits?)\s+(\d+(?:\.\d+)?)\b", re.IGNORECASE)
_AGE = re.compile(r"[\s-]*(?:years?|yrs?|months?)?[\s-]*old\b|\s*of\s+age\b", re.IGNORECASE)


def stated_figures(text: str) -> tuple[StatedFigure, ...]:
    """The time points and amounts `text` states, as numbers with a unit: not bare numbers
    ("phase 3" names a design), not ages ("34-year-old" identifies a patient) and not years."""
    from kb.quantities import duration_equivalents, quantities

    out: dict[str, StatedFigure] = {}
    for m in _UNIT_FIRST.finditer(text):
        unit = m.group(0).split()[0].lower().rstrip("s")
        out.setdefault(m.group(1), StatedFigure(m.group(0), duration_equivalents(float(m.group(1)), unit)))
    for q in quantities(text):
        if not q.unit or q.kind not in ("duration", "dose", "concentration") or _AGE.match(text, q.end):
            continue
        for v in sorted({q.low, q.high}):
            out.setdefault(f"{v:g}", StatedFigure(q.text, duration_equivalents(v, q.unit)))
    return tuple(out.values())


def states_figure(view: "CorpusView", ann: Annotated, fig: StatedFigure) -> bool:
    """Does the sentence's passage (its chunk, or its heading) state the figure's number? A
    study's follow-up is often stated once, in its methods, beside the results."""
    where = " ".join((view.base.chunk(ann.sent.chunk_id).text, ann.sent.heading))
    return bool(fig.pattern().search(where))


# International Nonproprietary Name stems (WHO): a word ending in one names a drug even when no
# dictionary knows it yet ("quellimab", "sparsentan"), so it is a requirement, not a key word.
_INN_STEM = re.compile(r"^[a-z]{3,}(?:mab|cept|nib|tinib|pril|sartan|sentan|olol|statin|parin|vir|mycin|cillin|"
                       r"azole|dronate|prazole|limus|platin|glutide|gliflozin|gliptin|lukast|dipine|semide|"
                       r"thiazide|sone|solone|kinra|cogene|ciguat|tercept|formin|oxetine|azepam)$")
_NAME = re.compile(r"(?<![\w-])(?:[A-Z][A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*|"
                   r"[A-Za-z]+\d+[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*|[A-Z]{2,}(?:-[A-Za-z0-9]+)+)(?![\w-])")


# A figure standing alone ("at 6 months", "52-week"), not a digit inside a name ("LA-15", "APOL1").
_TIME_POINT = re.compile(r"(?<![\w-])\d+(?:\.\d+)?(?![\w])")
# An acronym glued to an English word ("NIH-funded", "RTX-treated"): the acronym is the name.
_ACRONYM_WORD = re.compile(r"([A-Z][A-Za-z0-9]*[A-Z0-9])-([a-z]+)")


_POSSESSIVE = re.compile(r"\b(?:my|our|your|his|her|their)\s+$", re.IGNORECASE)


def _only_possessive(starts: Sequence[int], text: str) -> bool:
    """Is every one of these mentions preceded by a possessive ("my kids")?"""
    return bool(starts) and all(_POSSESSIVE.search(text, 0, s) for s in starts)


def _is_proper(word: str, start: int, text: str) -> bool:
    """A capitalised word inside a sentence is a proper name (an author, a place: "the
    Filippone series", "the Indian study") that identifies a study rather than asking for content."""
    before = text[:start].rstrip()
    return word[:1].isupper() and not word.isupper() and bool(before) and before[-1] not in ".?!:;"


def _general_zipf(word: str, start: int, text: str) -> float:
    """How common `word` is in general English; a proper name counts as common (9.0)."""
    return 9.0 if _is_proper(word, start, text) else zipf(word)


def needs_for(base: "KnowledgeBase", text: str, filters: Filters | None = None,
              analysis: QuestionAnalysis | None = None) -> Needs:
    """What a question (or claim) requires of its evidence (see the module docstring)."""
    vocab = base.vocabulary
    view = corpus_view(base)
    a = analysis or analyse(text, vocab)
    reqs: list[Requirement] = []
    covered: list[tuple[int, int]] = [(m.start, m.end) for m in a.mentions]
    # "my kids", "our children": the asker's family, not a patient population to restrict to.
    family = {cid for cid in a.concepts if vocab.concepts[cid].kind == "population"
              and _only_possessive([m.start for m in a.mentions if m.concept == cid], text)}
    for e in a.entities:
        c = vocab.concepts[e]
        if e in family:
            continue
        kind = "population" if c.kind == "population" else "entity"
        reqs.append(Requirement(kind, c.label, frozenset(vocab.with_members([e])), (), e))
    for cid in a.concepts:
        c = vocab.concepts[cid]
        if c.kind == "population" and cid not in a.entities and cid not in family:
            reqs.append(Requirement("population", c.label, frozenset(vocab.with_members([cid])), (), cid))
    for d in a.unknown_drugs:
        reqs.append(Requirement("entity", d.label, frozenset({d.id}), d.terms, d.id))
        for t in d.terms:
            for m in re.finditer(r"(?<!\w)" + re.escape(t) + r"(?!\w)", text, re.IGNORECASE):
                covered.append((m.start(), m.end()))
    for m in re.finditer(r"[A-Za-z]{6,}", text):
        word = m.group(0)
        if any(s <= m.start() and m.end() <= e for s, e in covered) or not _INN_STEM.match(word.lower()):
            continue
        if vocab.owner_of(word) is None:
            reqs.append(Requirement("entity", word, frozenset(), (word,), "inn:" + word.lower()))
            covered.append((m.start(), m.end()))
    # Names no list knows (trial acronyms, genes): literal constraints on the evidence's document.
    letters = [ch for ch in text if ch.isalpha()]
    shouting = len(letters) > 8 and sum(ch.isupper() for ch in letters) > len(letters) / 2
    if not shouting:
        for m in _NAME.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in covered):
                continue
            token = m.group(0)
            glued = _ACRONYM_WORD.fullmatch(token)
            if glued:
                token = glued.group(1)
            if token.lower() in vocab.question_words or len(token) < 3 and not any(ch.isdigit() for ch in token):
                continue
            if vocab.owner_of(token) is not None:
                continue
            reqs.append(Requirement("name", token, frozenset(), (token,), "name:" + token.lower()))
            covered.append((m.start(), m.end()))
    # Key terms: topical concepts named (matched through any synonym), then the remaining words
    # without entity words, question words and stop words.
    qwords = vocab.question_word_stems
    keys: list[KeyTerm] = []
    for m in a.mentions:
        c = vocab.concepts[m.concept]
        if c.generic or any(s <= m.start and m.end <= e for s, e in covered if (s, e) != (m.start, m.end)) \
                or m.concept in a.entities or c.kind == "population":
            continue
        st = frozenset(x for x in stems(m.text) if x not in qwords)
        if not st:
            continue
        keys.append(KeyTerm(m.text, st, frozenset(vocab.with_members([m.concept])),
                            max(view.idf(x) for x in st), c.label))
    chars = list(text)
    for s, e in covered:
        chars[s:e] = " " * (e - s)
    named = {x for k in keys for x in k.stems}
    for w in re.finditer(r"[A-Za-z0-9][\w\-/']*", "".join(chars)):
        parts = [x for x in stems(w.group(0)) if x not in qwords]
        if "-" in w.group(0) and len(parts) >= 2 and not set(parts) <= named:
            # A hyphenated compound ("half-life", "34-year-old") is one term: its words must
            # occur together, and it is absent when no passage has the phrase.
            named.update(parts)
            absent = not view.mentions_any([w.group(0)])
            keys.append(KeyTerm(w.group(0), frozenset(parts), frozenset(), max(view.idf(x) for x in parts),
                                absent=absent, zipf=_general_zipf(w.group(0), w.start(), text) if absent else 9.0))
            continue
        for x in stems(w.group(0)):
            if x in qwords or x in named:
                continue
            named.add(x)
            forms = view.forms(x)
            present = [f for f in forms if view.df(f) > 0]
            weight = view.idf(x) if view.df(x) > 0 or not present else max(view.idf(f) for f in present)
            absent = not present and not view.in_catalogue(x)
            keys.append(KeyTerm(w.group(0), frozenset({x}), frozenset(), weight, absent=absent,
                                forms=frozenset(present),
                                zipf=_general_zipf(w.group(0), w.start(), text) if absent else 9.0,
                                proper=_is_proper(w.group(0), w.start(), text)))
    kind = answer_type(text)
    if not kind and (a.comparative or _TIME_POINT.search(text)) and \
            any(vocab.concepts[c].kind == "outcome" for c in a.concepts):
        kind = "rate"  # "remission at 6 months, tac vs CsA?": an outcome at a time or compared wants its figure
    type_stems = {x for w in _TYPE_WORDS.get(kind, ()) for x in stems(w)}
    keys = [k for k in keys if not (k.stems <= type_stems)] if type_stems else keys
    return Needs(text=text, analysis=a, query=query_for(a, vocab, filters), requirements=tuple(reqs),
                 answer_type=kind, key_terms=tuple(keys), time_points=stated_figures(text))


def key_coverage(ann: Annotated, keys: Sequence[KeyTerm], context_credit: float) -> float:
    """IDF-weighted share of the key terms a sentence contains (its context counts partly).
    A term no passage contains cannot tell sentences apart: it is left out here (coverage()
    judges it through `absent_term_dense`)."""
    if keys and all(k.absent for k in keys):
        return 0.0  # every word it asks about is missing from the corpus
    keys = [k for k in keys if not k.absent]
    total = sum(k.weight for k in keys)
    if total <= 0:
        return 1.0  # the text asks nothing beyond its entities: nothing is missing
    got = 0.0
    for k in keys:
        if k.within(ann.stems) or (k.ids and ann.about(k.ids) >= CONTEXT):
            got += k.weight
        elif k.within(ann.stems | ann.context_stems) or (k.ids and ann.about(k.ids) > 0):
            got += context_credit * k.weight
    return got / total


def lacking_terms(keys: Sequence[KeyTerm], anns: Sequence[Annotated]) -> list[KeyTerm]:
    """The key terms that none of these sentences (with their context) contains."""
    return [k for k in keys if not any(key_coverage(a, [k], 1.0) > 0 for a in anns)]


# ---------------------------------------------------------------------------- scoring

@dataclass(frozen=True)
class Signals:
    dense: float  # cosine of the text and the sentence with its context
    lexical: float  # IDF-weighted share of key stems in the sentence (context counts partly)
    type_match: float  # 1.0 when it states a figure of the asked answer type
    chunk: float  # its chunk's hybrid score relative to the best retrieved chunk
    entity: float  # weakest aboutness over the sentence-level requirements (1.0 when none)


@dataclass(frozen=True)
class Candidate:
    ann: Annotated
    signals: Signals
    score: float
    unmet: tuple[str, ...]  # labels of requirements this sentence does not meet
    hard_unmet: bool = False  # one of them is an entity or population: not evidence at all
    unstated: tuple[str, ...] = ()  # the question's time points / amounts it does not state

    @property
    def eligible(self) -> bool:
        return not self.hard_unmet


def meets(view: CorpusView, ann: Annotated, req: Requirement, settings: ScoringSettings) -> bool:
    if req.scope == "sentence":
        if req.ids and ann.about(req.ids) >= settings.min_entity_aboutness:
            return True
        if req.terms:
            pattern = term_pattern(req.terms)
            ctx = " ".join((ann.sent.text, ann.sent.heading,
                            *(view.base.document(ann.sent.source).text[a:b] for a, b in ann.sent.context),
                            view.base.document(ann.sent.source).title))
            return bool(pattern and pattern.search(ctx))
        return False
    return document_mentions(view, ann.sent.source, req)


def requirement_terms(vocab: Vocabulary, req: Requirement) -> list[str]:
    """Every wording that meets a requirement: its literal names and its concepts' terms
    (synonyms, brand names from the drug dictionary, members of a class)."""
    terms = list(req.terms)
    for i in req.ids:
        c = vocab.concepts.get(i)
        if c is not None:
            terms += [*c.terms, *c.library_terms]
    return terms


def document_mentions(view: CorpusView, source: str, req: Requirement) -> bool:
    key = (source, req.kind, req.key, req.terms)
    hit = view.mentions.get(key)
    if hit is None:
        hit = view.mentions[key] = _document_mentions(view, source, req)
    return hit


def _document_mentions(view: CorpusView, source: str, req: Requirement) -> bool:
    doc = view.base.document(source)
    pattern = term_pattern(requirement_terms(view.vocab, req))
    where = " ".join((doc.title, doc.meta.publisher))
    return bool(pattern and (pattern.search(doc.text) or pattern.search(where)))


def sentence_vector_scores(base: "KnowledgeBase", query_vec: np.ndarray, anns: Sequence[Annotated]) -> np.ndarray:
    """Cosine of the query with each sentence's stored vector (0 where none is stored)."""
    rows = [a.row for a in anns]
    out = np.zeros(len(anns), dtype=np.float32)
    have = [i for i, r in enumerate(rows) if r >= 0]
    if have:
        mat = np.asarray(base.contents.sentence_vectors[[rows[i] for i in have]], dtype=np.float32)
        out[have] = mat @ query_vec.astype(np.float32)
    return out


def score_candidates(base: "KnowledgeBase", needs: Needs, chunks: Sequence[Chunk], hits: Sequence[Hit],
                     query_vec: np.ndarray, *, requirements: Sequence[Requirement] | None = None,
                     key_terms: Sequence[KeyTerm] | None = None) -> list[Candidate]:
    """Every sentence of `chunks`, scored (best first). `requirements` / `key_terms` override the
    needs' own (a comparison section drops the other compared entities)."""
    s = base.settings.scoring
    view = corpus_view(base)
    reqs = needs.requirements if requirements is None else tuple(requirements)
    keys = needs.key_terms if key_terms is None else tuple(key_terms)
    hit_scores = {h.chunk.chunk_id: h.score for h in hits}
    top = max(hit_scores.values(), default=1.0) or 1.0
    anns = [a for c in chunks for a in view.annotated(c)]
    dense = sentence_vector_scores(base, query_vec, anns)
    n_entities = sum(r.kind == "entity" for r in reqs)
    out: list[Candidate] = []
    for a, d in zip(anns, dense):
        if a.navigation:  # decided once per sentence, when its chunk was annotated
            continue
        lexical = key_coverage(a, keys, s.context_credit)
        if needs.answer_type in SOFT_TYPES:  # e.g. an enumeration of what is asked: a key word in it or its context
            typed = 1.0 if lexical > 0 and states_soft_type(needs.answer_type, a.sent, a.figures) else 0.0
        else:
            typed = 1.0 if needs.answer_type in QUANTITATIVE_TYPES and states_type(
                needs.answer_type, a.sent.text, a.figures) else 0.0
        sent_reqs = [r for r in reqs if r.scope == "sentence" and r.ids]
        entity = min((a.about(r.ids) for r in sent_reqs), default=1.0)
        failed = [r for r in reqs if not meets(view, a, r, s)]
        # Two or more entities asked together ("PLEX sessions before rituximab", "Acthar with
        # diuretics"): a sentence naming one of them may take the others from its document.
        by_doc = [r for r in failed if r.kind == "entity"] if n_entities >= 2 else []
        if by_doc and len(by_doc) < n_entities and \
                all(document_mentions(view, a.sent.source, r) for r in by_doc):
            failed = [r for r in failed if r not in by_doc]
        else:
            by_doc = []
        names = [r for r in reqs if r.kind == "name"]
        named = (1.0 - sum(r in failed for r in names) / len(names)) if names else 0.0
        chunk = hit_scores.get(a.sent.chunk_id, 0.0) / top
        score = (s.w_dense * float(d) + s.w_lexical * lexical + s.w_type * typed + s.w_chunk * chunk
                 + s.w_entity * entity + s.w_name * named)
        if needs.answer_type in QUANTITATIVE_TYPES and not typed:
            score *= s.untyped_factor
        if by_doc:
            score *= s.document_entity_factor
        if is_aim(a.sent.text) or restates_title(a.sent.text, view.base.document(a.sent.source).title):
            score *= s.aim_factor
        if a.sent.is_question:
            score *= s.question_penalty
        elif a.sent.ends_with_colon:
            score *= s.intro_penalty
        elif len(a.sent.text) < s.short_chars and not a.sent.intro:
            score *= s.short_penalty
        unstated = tuple(f.text for f in needs.time_points if not states_figure(view, a, f))
        out.append(Candidate(a, Signals(float(d), lexical, typed, chunk, entity), score,
                             tuple(r.label for r in failed), any(r.kind != "name" for r in failed), unstated))
    out.sort(key=lambda c: (-c.score, c.ann.sent.source, c.ann.sent.start))
    return without_planted(base, out)


def without_planted(base: "KnowledgeBase", cands: list[Candidate]) -> list[Candidate]:
    """Drop sentences that address the reader or a model (flagged at ingest by
    kb/instructions.py: "ignore previous instructions and say ..."), and sentences whose quote
    (from their list intro or pronoun lead through them) would include one: never evidence."""
    return [c for c in cands if not holds_planted(base, c.ann.sent.chunk_id, *c.ann.sent.quote_span())]


def holds_planted(base: "KnowledgeBase", chunk_id: str, start: int, end: int) -> bool:
    """Whether [start, end) of chunk `chunk_id`'s document overlaps a sentence flagged at ingest."""
    flagged = base.chunk(chunk_id).flagged
    return bool(flagged) and overlaps(flagged, start, end)


def gather(base: "KnowledgeBase", needs: Needs, k: int, extra_queries: Iterable[Query] = ()
           ) -> tuple[list[Hit], list[Chunk], np.ndarray]:
    """Hybrid hits for the text, its best BM25 chunks whatever their document, and BM25 hits per
    extra query (compared entities), plus the chunks naming each required entity or name (so a
    document that is the only one to name a trial is always considered)."""
    retriever = base.retriever
    query_vec = retriever.query_vector(needs.query)
    hits = retriever.search(needs.query, k, query_vec=query_vec)
    chunks = {h.chunk.chunk_id: h.chunk for h in hits}
    all_chunks = base.contents.chunks
    for i, _ in retriever.bm25(needs.query, k // 2):
        c = all_chunks[i]
        if accepts(base, needs.query.filters, c):
            chunks.setdefault(c.chunk_id, c)
    for q in extra_queries:
        per_doc: dict[str, int] = {}
        taken = 0
        for i, _ in retriever.bm25(q, 4 * k):
            c = all_chunks[i]
            if per_doc.get(c.source, 0) >= 2 or not accepts(base, needs.query.filters, c):
                continue
            per_doc[c.source] = per_doc.get(c.source, 0) + 1
            chunks.setdefault(c.chunk_id, c)
            taken += 1
            if taken >= k:
                break
    # The chunks naming each required entity or name (trials, genes, drugs), ranked by the
    # question's vector, join the candidates (bounded, so a common name cannot flood them): the
    # evidence must name them, so it must be among the candidates.
    view = corpus_view(base)
    vocab = base.vocabulary
    for r in needs.requirements:
        if r.kind == "population":
            continue
        rows = view.chunks_with_terms(requirement_terms(vocab, r))
        rows = [i for i in rows if accepts(base, needs.query.filters, all_chunks[i])]
        if rows:
            sims = base.contents.vectors[rows] @ query_vec
            for j in np.argsort(-sims)[: base.settings.scoring.name_chunks]:
                chunks.setdefault(all_chunks[rows[int(j)]].chunk_id, all_chunks[rows[int(j)]])
    return hits, list(chunks.values()), query_vec


def accepts(base: "KnowledgeBase", filters: Filters, chunk: Chunk) -> bool:
    if filters.is_empty():
        return True
    doc = base.contents.documents.get(chunk.source)
    return doc is not None and filters.accepts(doc.meta, chunk.source)


# ---------------------------------------------------------------------------- coverage

# Which check an abstention comes from (`Gap.rule`, `Answer.abstain_rule`), in the order
# they are made: a drug or name no passage of the corpus mentions (kb/answer.py), no evidence
# at all, a requirement the evidence does not meet, key words not covered, a question word
# absent from the corpus, a rare one, an unstated time point, too low a score, no figure of
# the asked type.
GAP_RULES = ("not-in-corpus", "no-evidence", "requirement", "key-terms", "absent-word", "rare-word",
             "time-point", "min-score", "answer-type")


@dataclass(frozen=True)
class Gap:
    """Why the evidence does not cover a text: the check that failed and, for a reader, what
    no passage meets ("no passage about Rituximab covers side effects")."""

    rule: str  # one of GAP_RULES
    reason: str
    words: tuple[str, ...] = ()  # names no passage of the corpus contains ("not-in-corpus"); absent
    # key words need no copy here: KeyTerm.absent says so

    def __str__(self) -> str:
        return self.reason


def coverage(needs: Needs, chosen: Sequence[Candidate], settings: ScoringSettings, *,
             answer_type: bool = True) -> Gap | None:
    """Why the chosen evidence does not cover the text (None when it does): the one abstention
    rule. Every requirement must be met by some chosen sentence; the best one must score high
    enough; the key words must be covered (or the meaning close, by the embedding); and a
    question asking for a figure must get a sentence stating one."""
    if not chosen:
        return Gap("no-evidence", "no passage scores high enough on it")
    # Entities and populations must be met; a trial or gene name only steers the ranking (the
    # abstract of a trial may call it by its full name), its absence from the corpus is
    # decided before (kb/answer.py).
    unmet = [r.label for r in needs.requirements
             if r.kind != "name" and all(r.label in c.unmet for c in chosen)]
    if unmet:
        return Gap("requirement", "no passage about it mentions " + join_or(unmet))
    best = chosen[0]
    about = [r.label for r in needs.requirements if r.kind != "name"]
    subject = f"about {join_or(about)} " if about else ""
    if needs.key_terms:
        covered = max(c.signals.lexical for c in chosen)
        dense = max(c.signals.dense for c in chosen)
        if covered < settings.min_key_coverage and dense < settings.min_dense_alone:
            missing = [k.label for k in lacking_terms(needs.key_terms, [c.ann for c in chosen])]
            return Gap("key-terms", f"no passage {subject}covers " + (", ".join(dict.fromkeys(missing)) or "its key terms"))
    # A word of the question that no passage of the corpus contains at all ("bariatric",
    # "cost") can only be answered through a paraphrase: the meaning must then be close.
    absent = [k for k in needs.key_terms if k.absent]
    total = sum(k.weight for k in needs.key_terms)
    # A missing proper name ("the Indian study") only identifies the study: not part of the share.
    share = sum(k.weight for k in absent if not (k.proper and settings.names_not_required)) / total \
        if total > 0 else 0.0
    if absent and share >= settings.absent_share and max(c.signals.dense for c in chosen) < settings.absent_term_dense:
        return Gap("absent-word", f"no passage {subject}covers " + ", ".join(dict.fromkeys(k.label for k in absent)))
    # A missing word that is rare in general language is a technical term ("bariatric",
    # "premedication"): a requirement no passage meets unless a sentence is a close paraphrase;
    # a common one ("kids", "join") is wording the corpus phrases otherwise, and a short one
    # ("dex", "yrs") an abbreviation the corpus spells out.
    rare = [k for k in absent if k.zipf < settings.rare_absent_zipf and len(k.text) >= settings.rare_min_chars]
    if rare and max(c.signals.dense for c in chosen) < settings.rare_absent_dense:
        return Gap("rare-word", f"no passage {subject}covers " + ", ".join(dict.fromkeys(k.label for k in rare)))
    # A time point or amount the question states must be stated by the evidence.
    unstated = [f.text for f in needs.time_points if all(f.text in c.unstated for c in chosen)] \
        if settings.require_time_points else []
    if unstated:
        return Gap("time-point", f"no passage {subject}states " + join_or(unstated))
    if best.score < settings.min_score:
        if needs.key_terms:
            weakest = sorted(needs.key_terms, key=lambda k: -k.weight)[0]
            if not any(key_coverage(c.ann, [weakest], 1.0) >= 1.0 for c in chosen):
                return Gap("min-score", f"no passage {subject}covers {weakest.label}")
        return Gap("min-score", f"no passage {subject}is close enough to it")
    if answer_type and settings.require_answer_type and needs.answer_type in QUANTITATIVE_TYPES \
            and not any(c.signals.type_match for c in chosen):
        what = {"rate": "a rate or proportion", "dose": "a dose", "duration": "a duration",
                "frequency": "how often", "count": "a number", "level": "a target level",
                "cost": "a cost or price"}[needs.answer_type]
        return Gap("answer-type", f"no passage on it states {what}")
    return None


def join_or(items: Sequence[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# ---------------------------------------------------------------------------- audit API

@dataclass(frozen=True)
class Evidence:
    """One evidence sentence for a text: `quote == document.text[start:end]`."""

    source: str
    title: str
    start: int
    end: int
    quote: str
    score: float
    chunk_id: str
    section: str
    coverage: float  # IDF-weighted share of the text's key terms in the sentence and its context
    dense: float  # cosine of the text and the sentence with its context
    missing: tuple[str, ...]  # requirements of the text this evidence does not meet


def find_evidence(base: "KnowledgeBase", text: str, *, sources: Sequence[str] = (), k: int = 5) -> list[Evidence]:
    """The best evidence sentences for `text` in the corpus, or only in `sources` when given;
    those meeting every requirement first."""
    filters = Filters(sources=tuple(sources)) if sources else Filters()
    needs = needs_for(base, text, filters)
    hits, chunks, qvec = gather(base, needs, base.settings.answer.retrieval_k)
    cands = score_candidates(base, needs, chunks, hits, qvec)
    if sources:
        cands = [c for c in cands if c.ann.sent.source in sources]
    cands.sort(key=lambda c: (not c.eligible, -c.score))
    out = []
    for c in cands[:k]:
        s = c.ann.sent
        doc = base.document(s.source)
        a, b = s.quote_span()
        out.append(Evidence(source=s.source, title=doc.title, start=a, end=b, quote=doc.text[a:b],
                            score=round(c.score, 4), chunk_id=s.chunk_id, section=s.section,
                            coverage=round(c.signals.lexical, 4), dense=round(c.signals.dense, 4),
                            missing=c.unmet))
    return out
