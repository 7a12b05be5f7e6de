"""Query understanding: abbreviations, synonyms and lay words from kb/vocabulary.yaml, plus drug
names from the `drug-named-entity-recognition` package.

`understand(question)` gives the retrievers a `Query`: BM25 gets the expansions (CNI ->
cyclosporine, tacrolimus, calcineurin inhibitor), the embedding model gets the question with
abbreviations spelled out ("tac" -> "tac (Tacrolimus)"; MiniLM does not know "tac").
Measured on the answerable gold questions (eval/gold.yaml, real model): the expansions raise
BM25's MRR of the chunk holding the gold fact from 0.795 to 0.842; for the embedding, spelling
out (dense MRR 0.808) beats the bare question (0.794) and question + all expansions (0.774),
which dilute it.
`analyse(question)` gives the answerer what the question is about (concepts, entities to
compare, attributes asked for, drugs the vocabulary does not know). The same `Vocabulary`
matches concepts in passages, so "Cyclosporin A" in a passage counts as a CNI.

About the drug library (`drug-named-entity-recognition`): its dictionary ships inside the
wheel, so it works fully offline, and a look-up takes well under a millisecond; loading the
dictionary takes ~1 s, once per process (`warm_up()` does it ahead of the first question; see
`DrugLibrary` for why the package's own import is not used). It does not know clinical
abbreviations (CsA, Tac, MMF, RTX, CYC) or drug classes (CNI, ARB), which stay in the YAML; it
adds brand names and spellings of the drugs the YAML names (Neoral, Sandimmune, ciclosporin),
and recognises drugs the YAML does not name (sparsentan, belimumab) so the answerer can say
the corpus does not cover them. If it cannot be loaded, the YAML alone is used.
"""
from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from kb.bm25 import STOP_WORDS, us_spelling
from kb.types import Filters, Query

logger = logging.getLogger(__name__)

VOCABULARY_PATH = Path(__file__).with_name("vocabulary.yaml")
SPECIFIC_KINDS = frozenset({"drug", "drug_class", "therapy", "disease"})
SECTION_KINDS = frozenset({"drug", "drug_class", "therapy"})  # what a comparison compares

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:['’\-][A-Za-z0-9]+)*")
# "X vs Y", "X versus Y", "compare X and Y", "X or Y", "difference between X and Y", ...
_COMPARATIVE = re.compile(
    r"\b(?:vs\.?|versus|compared?|compares|comparing|comparison|difference|differences|differ|"
    r"better|worse|or|against)\b", re.IGNORECASE)
# Acronym-like tokens ("IgA", "APOL1", "KDIGO"): specific names, even when no list knows them.
_ACRONYM = re.compile(r"^(?:[A-Z][A-Za-z]*[A-Z][A-Za-z0-9]*|[A-Za-z]+[0-9]+[A-Za-z0-9]*)$")

_UNIT_WORDS = frozenset({"ml", "mg", "kg", "dl", "mm", "cm", "min", "g", "l", "h", "d"})


# ---------------------------------------------------------------------------- data types

@dataclass(frozen=True)
class Concept:
    id: str
    label: str
    kind: str
    terms: tuple[str, ...]
    question_terms: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    generic: bool = False
    library_terms: tuple[str, ...] = ()  # spellings and brand names from the drug library

    @property
    def specific(self) -> bool:
        return self.kind in SPECIFIC_KINDS and not self.generic


@dataclass(frozen=True)
class Attribute:
    """What a figure measures (dose, trough level, remission rate, ...); see vocabulary.yaml."""

    id: str
    label: str
    units: str  # regular expression for the unit right after the number
    cues: tuple[str, ...]
    question_cues: tuple[str, ...]
    per_drug: bool
    requires: str = ""  # a concept the sentence must be about (e.g. steroid_resistance)
    evident_units: str = ""  # units that need no cue word ("g/d" is a dose)
    concept: str = ""  # the concept a sentence stating such a figure is about
    compare: bool = True  # False: never reported as "Sources differ"


@dataclass(frozen=True)
class Mention:
    concept: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class QuestionAnalysis:
    """What a question is about, for retrieval and for shaping the answer."""

    question: str
    mentions: tuple[Mention, ...] = ()
    concepts: tuple[str, ...] = ()  # vocabulary concepts, in order of first mention
    entities: tuple[str, ...] = ()  # specific ones (drugs, classes, therapies, diseases)
    unknown_drugs: tuple[Concept, ...] = ()  # drugs the library knows and the vocabulary does not
    unknown_terms: tuple[str, ...] = ()  # acronym-like names no list knows ("APOL1", "IgA")
    attributes: tuple[str, ...] = ()  # attribute ids the question asks for
    comparative: bool = False  # "X vs Y", "compare X and Y", "X or Y", "X and Y doses"
    section_entities: tuple[str, ...] = ()  # entities an answer gets one section each for


# ---------------------------------------------------------------------------- vocabulary

def _term_regex(term: str) -> str:
    # Words of a compound term are joined by any of space, hyphen, slash or colon, as writers
    # vary them: "protein/creatinine ratio" = "protein-creatinine ratio" = "protein:creatinine ratio".
    words = [w for w in re.split(r"[\s\-/:]+", term.strip()) if w]
    body = r"[\s\-/:]+".join(re.escape(w).replace("'", "['’]") for w in words)
    if term[-1:].isalpha():
        body += r"(?:s|es)?"  # plurals: CNIs, ARBs, steroids
    return body


def _compile(terms: Iterable[str]) -> re.Pattern[str] | None:
    bodies = sorted({_term_regex(t) for t in terms if t.strip()}, key=len, reverse=True)
    if not bodies:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(bodies) + r")(?![\w])", re.IGNORECASE)


_WORD = re.compile(r"\w+")


def _first_word_index(items: Iterable[tuple[str, Iterable[str]]]) -> tuple[dict[str, set[str]], set[str]]:
    """first word of a term (lower case) -> concept ids; and the concepts some term of which
    does not start with a word character (always candidates). A match of a term's pattern starts
    at a word boundary with that first word whole (or with its plural, when it is the last word)."""
    by_first: dict[str, set[str]] = {}
    always: set[str] = set()
    for cid, terms in items:
        for t in terms:
            t = t.strip()
            if not t:
                continue
            m = _WORD.match(t.lower())
            if m is None:
                always.add(cid)
            else:
                by_first.setdefault(m.group(0), set()).add(cid)
    return by_first, always


class Vocabulary:
    """Concepts and attributes of vocabulary.yaml, with compiled matchers (read-only)."""

    def __init__(self, concepts: dict[str, Concept], attributes: dict[str, Attribute],
                 question_words: frozenset[str], library_names: dict[str, str] | None = None,
                 digest: str = "") -> None:
        self.digest = digest  # sha256 of what it was built from (recorded in manifests and answers)
        self.concepts = concepts
        self.attributes = attributes
        self.question_words = question_words
        self._passage = {cid: _compile((*c.terms, *c.library_terms)) for cid, c in concepts.items()}
        self._question = {cid: _compile((*c.terms, *c.library_terms, *c.question_terms))
                          for cid, c in concepts.items()}
        # With a corpus's mined abbreviations there are thousands of concepts: only those whose
        # terms' first word occurs in a text are matched against it (see _candidates).
        self._order = {cid: i for i, cid in enumerate(concepts)}
        self._by_first = {False: _first_word_index((cid, (*c.terms, *c.library_terms)) for cid, c in concepts.items()),
                          True: _first_word_index((cid, (*c.terms, *c.library_terms, *c.question_terms))
                                                  for cid, c in concepts.items())}
        self._classes: dict[str, set[str]] = {}
        for cid, c in concepts.items():
            for m in c.members:
                self._classes.setdefault(m, set()).add(cid)
        self._attr_units = {a.id: re.compile(a.units, re.IGNORECASE) for a in attributes.values()}
        self._attr_cues = {a.id: _compile(a.cues) for a in attributes.values()}
        self._attr_qcues = {a.id: _compile(a.question_cues) for a in attributes.values()}
        self._library_names = dict(library_names or {})  # library canonical name (lower) -> concept id
        self._qword_stems: frozenset[str] | None = None
        self._term_owner: dict[str, str] = {}  # any term (lower) -> concept id
        for cid, c in concepts.items():
            for t in (*c.terms, *c.library_terms):
                self._term_owner.setdefault(t.lower(), cid)

    # -- matching ------------------------------------------------------------------
    def find(self, text: str, *, question: bool = False) -> list[Mention]:
        """Every concept mention in `text`, sorted by position."""
        out: list[Mention] = []
        patterns = self._question if question else self._passage
        for cid in sorted(self._candidates(text, question), key=self._order.__getitem__):
            pattern = patterns[cid]
            if pattern is None:
                continue
            for m in pattern.finditer(text):
                out.append(Mention(cid, m.start(), m.end(), m.group(0)))
        out.sort(key=lambda m: (m.start, -m.end))
        # A mention inside a longer one of another concept is part of that phrase, not a
        # mention of its own: "steroid-resistant" is a condition, not the drug class.
        return [m for m in out if not any(o.concept != m.concept and o.start <= m.start and m.end <= o.end
                                          and (o.end - o.start) > (m.end - m.start) for o in out)]

    def _candidates(self, text: str, question: bool) -> set[str]:
        """Concepts that may be mentioned in `text`: a superset of what their patterns match,
        found by set look-ups of the text's words (a plural's singular too) instead of one
        regex scan per concept."""
        by_first, always = self._by_first[question]
        words = set(_WORD.findall(text.lower()))
        words |= {w[:-1] for w in words if w.endswith("s")} | {w[:-2] for w in words if w.endswith("es")}
        out = set(always)
        for w in words:
            out.update(by_first.get(w, ()))
        return out

    def concepts_in(self, text: str, *, question: bool = False) -> set[str]:
        return {m.concept for m in self.find(text, question=question)}

    def with_classes(self, ids: Iterable[str]) -> set[str]:
        """`ids` plus every class they are members of (cyclosporine -> cni)."""
        out = set(ids)
        stack = list(out)
        while stack:
            for cls in self._classes.get(stack.pop(), ()):
                if cls not in out:
                    out.add(cls)
                    stack.append(cls)
        return out

    def with_members(self, ids: Iterable[str]) -> set[str]:
        """`ids` plus their members, transitively (cni -> cyclosporine, tacrolimus)."""
        out = set(ids)
        stack = list(out)
        while stack:
            c = self.concepts.get(stack.pop())
            for m in c.members if c else ():
                if m not in out:
                    out.add(m)
                    stack.append(m)
        return out

    def owner_of(self, term: str) -> str | None:
        return self._term_owner.get(term.lower())

    def with_abbreviations(self, pairs: Iterable[tuple[str, str]]) -> "Vocabulary":
        """A copy that also knows abbreviations the corpus defines ("CsA" = "cyclosporine A"):
        a short form whose long form a concept already owns becomes one of its terms; any other
        pair becomes a concept of its own (a drug when the drug library knows the long form), so
        questions using the short form find passages using the long one and vice versa."""
        import hashlib

        concepts = dict(self.concepts)
        added: list[str] = []
        lib = drug_library()
        for short, long in pairs:
            short, long = short.strip(), long.strip()
            if not short or not long or self.owner_of(short) is not None:
                continue
            if short.lower() in STOP_WORDS or short.lower() in _UNIT_WORDS \
                    or short.lower() in self.question_words:
                continue  # "IS" (immunosuppression), "ml": matched case-insensitively they hit "is", "ml"
            owner = self.owner_of(long)
            if owner is None:
                for n in _long_form_variants(long):
                    owner = self.owner_of(n)
                    if owner:
                        break
            if owner is not None:
                c = concepts[owner]
                concepts[owner] = Concept(c.id, c.label, c.kind, (*c.terms, short), c.question_terms, c.members,
                                          c.generic, c.library_terms)
            else:
                cid = "abbr:" + short.lower()
                # Both spellings of the long form: a document's "randomised controlled trial" is a
                # catalogue's or a question's "randomized controlled trial".
                us = us_spelling(long)
                spellings = (long, us) if us != long.lower() else (long,)
                if cid in concepts:  # another expansion of the same short form
                    c = concepts[cid]
                    concepts[cid] = Concept(c.id, c.label, c.kind, tuple(dict.fromkeys((*c.terms, *spellings))))
                else:
                    is_drug = bool(lib and any("drugbank_id" in d for _, d, _, _ in lib.find(long)))
                    concepts[cid] = Concept(cid, f"{long} ({short})", "drug" if is_drug else "topic",
                                            (short, *spellings))
            added.append(f"{short}={long}")
        if not added:
            return self
        digest = hashlib.sha256((self.digest + "\n" + "\n".join(sorted(added))).encode("utf-8")).hexdigest()
        return Vocabulary(concepts, self.attributes, self.question_words, self._library_names, digest)

    def concept_for_library_name(self, name: str) -> str | None:
        return self._library_names.get(name.lower())

    # -- attributes -------------------------------------------------------------------
    def unit_matches(self, attribute: str, unit: str) -> bool:
        return bool(self._attr_units[attribute].fullmatch(unit.strip()))

    def unit_is_evident(self, attribute: str, unit: str) -> bool:
        units = self.attributes[attribute].evident_units
        return bool(units) and bool(re.fullmatch(units, unit.strip(), re.IGNORECASE))

    def has_cue(self, attribute: str, text: str) -> bool:
        p = self._attr_cues[attribute]
        return bool(p and p.search(text))

    def cue_spans(self, attribute: str, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Where the attribute's cue words occur in text[start:end] (absolute offsets)."""
        p = self._attr_cues[attribute]
        return [(m.start(), m.end()) for m in p.finditer(text, start, end)] if p else []

    @property
    def question_word_stems(self) -> frozenset[str]:
        if self._qword_stems is None:
            self._qword_stems = frozenset(s for w in self.question_words for s in stems(w))
        return self._qword_stems

    def asked_attributes(self, question: str, concepts: Iterable[str] = ()) -> list[str]:
        """Attributes the question asks for; one that `requires` a concept needs it named."""
        named = set(concepts)
        drug_named = any(self.concepts[c].kind in SECTION_KINDS for c in named if c in self.concepts)
        return [a for a, p in self._attr_qcues.items() if p and p.search(question)
                and (not self.attributes[a].requires or self.attributes[a].requires in named)
                and (not self.attributes[a].per_drug or drug_named)]


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _library_synonyms(name: str) -> tuple[str, ...]:
    """Spellings and brand names the drug library knows for `name` (lower-case canonical)."""
    lib = drug_library()
    return lib.synonyms(name) if lib is not None else ()


def _long_form_variants(long: str) -> list[str]:
    """"calcineurin inhibitors" -> ["calcineurin inhibitor"]: plural long forms."""
    out = []
    if long.lower().endswith("s"):
        out.append(long[:-1])
    return out


def _parse(data: dict[str, Any], with_library: bool, digest: str = "") -> Vocabulary:
    concepts: dict[str, Concept] = {}
    library_names: dict[str, str] = {}
    for cid, d in (data.get("concepts") or {}).items():
        lib_name = str(d.get("drug_library") or "")
        lib_terms = _library_synonyms(lib_name) if (lib_name and with_library) else ()
        if lib_name:
            library_names[lib_name.lower()] = cid
        concepts[cid] = Concept(
            id=cid, label=str(d.get("label") or cid), kind=str(d.get("kind") or "topic"),
            terms=_as_tuple(d.get("terms")), question_terms=_as_tuple(d.get("question_terms")),
            members=_as_tuple(d.get("members")), generic=bool(d.get("generic", False)),
            library_terms=lib_terms)
    for c in concepts.values():
        unknown = [m for m in c.members if m not in concepts]
        if unknown:
            raise ValueError(f"vocabulary: concept {c.id!r} has unknown members {unknown}")
    attributes = {
        aid: Attribute(id=aid, label=str(a.get("label") or aid), units=str(a["units"]),
                       cues=_as_tuple(a.get("cues")), question_cues=_as_tuple(a.get("question_cues")),
                       per_drug=bool(a.get("per_drug", False)), requires=str(a.get("requires") or ""),
                       evident_units=str(a.get("evident_units") or ""), concept=str(a.get("concept") or ""),
                       compare=bool(a.get("compare", True)))
        for aid, a in (data.get("attributes") or {}).items()
    }
    return Vocabulary(concepts, attributes, frozenset(w.lower() for w in _as_tuple(data.get("question_words"))),
                      library_names, digest)


@lru_cache(maxsize=4)
def load_vocabulary(path: str | Path | None = None, with_library: bool = True) -> Vocabulary:
    """The vocabulary (cached: loaded once per process and path)."""
    import hashlib

    p = Path(path) if path is not None else VOCABULARY_PATH
    raw = p.read_bytes()
    data = yaml.safe_load(raw.decode("utf-8")) or {}
    return _parse(data, with_library, hashlib.sha256(raw).hexdigest())


# ---------------------------------------------------------------------------- drug library

_PLAIN_NAME = re.compile(r"[a-z][a-z \-]*[a-z]")  # not "1,4-pregnadiene-17α,21-diol-3,11,20-trione"


def _plain_unpickle(f: Any) -> Any:
    """The package ships its dictionary only as a pickle. Read it with an unpickler that refuses
    every import, so it can rebuild dicts, lists and strings but never call anything: loading
    the file cannot execute code, whatever it holds."""
    import pickle

    class PlainData(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"{module}.{name} refused: only plain data is read")

    return PlainData(f).load()


class DrugLibrary:
    """Exact drug-name look-up over the dictionary that ships inside the
    drug-named-entity-recognition wheel (20,000 drugs, 107,000 names: DrugBank, MeSH, brands).

    Why not `import drug_named_entity_recognition`: importing it also builds a fuzzy-matching
    n-gram index of all 107,000 names (~3-4 s here), which exact matching does not need; reading
    the dictionary itself takes ~1 s. The look-up is the one its `find_drugs` does (two-word
    names first, then single words, case-insensitive). Offline by construction: the optional
    structure / OMOP / PubChem downloads of the package are never touched."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.variant_to_canonical: dict[str, list[str]] = data["drug_variant_to_canonical"]
        self.canonical_to_data: dict[str, dict[str, Any]] = data["drug_canonical_to_data"]
        self._synonyms: dict[str, list[str]] | None = None

    @classmethod
    def load(cls) -> "DrugLibrary":
        import bz2
        import importlib.util

        spec = importlib.util.find_spec("drug_named_entity_recognition")
        if spec is None or spec.origin is None:
            raise ImportError("drug-named-entity-recognition is not installed")
        path = Path(spec.origin).parent / "drug_ner_dictionary.pkl.bz2"
        with bz2.open(path, "rb") as f:
            return cls(_plain_unpickle(f))

    def synonyms(self, canonical: str) -> tuple[str, ...]:
        if self._synonyms is None:
            index: dict[str, list[str]] = {}
            for variant, canonicals in self.variant_to_canonical.items():
                for c in canonicals:
                    index.setdefault(c, []).append(variant)
            self._synonyms = index
        return tuple(sorted({v for v in self._synonyms.get(canonical.lower(), ())
                             if len(v) >= 5 and _PLAIN_NAME.fullmatch(v)}))

    def find(self, text: str) -> list[tuple[str, dict[str, Any], int, int]]:
        """(canonical name, data, start, end) for each drug named in `text`."""
        words = list(_WORD.finditer(text))
        names = [re.sub(r"['’]s$", "", w.group(0)).lower() for w in words]  # "obinutuzumab's"
        out: list[tuple[str, dict[str, Any], int, int]] = []
        used: set[int] = set()
        for i in range(len(words) - 1):
            key = f"{names[i]} {names[i + 1]}"
            for c in self.variant_to_canonical.get(key, ()):
                out.append((c, self.canonical_to_data.get(c, {}), words[i].start(), words[i + 1].end()))
                used.update((i, i + 1))
        for i, w in enumerate(words):
            if i in used:
                continue
            for c in self.variant_to_canonical.get(names[i], ()):
                out.append((c, self.canonical_to_data.get(c, {}), w.start(), w.end()))
        return out


@lru_cache(maxsize=1)
def drug_library() -> DrugLibrary | None:
    """The drug dictionary, loaded once per process; None if unusable (the YAML still works)."""
    try:
        return DrugLibrary.load()
    except Exception as e:  # an optional helper: never fatal
        logger.warning("drug-named-entity-recognition unavailable (%s); using the vocabulary file only", e)
        return None


def warm_up() -> None:
    """Load the vocabulary and the drug dictionary now rather than on the first question."""
    load_vocabulary()
    drug_library()


def _library_drugs(question: str, covered: list[tuple[int, int]], vocab: Vocabulary) -> list[Concept]:
    """Drugs named in the question that the vocabulary does not know (e.g. sparsentan)."""
    lib = drug_library()
    if lib is None:
        return []
    found: dict[str, Concept] = {}
    for canonical, data, a, b in lib.find(question):
        name = str(data.get("name") or canonical)
        if "drugbank_id" not in data:
            continue  # classes such as "Immunosuppressive Agents" are not specific drugs
        if any(s < b and a < e for s, e in covered):
            continue  # already a vocabulary concept ("ACTH")
        if vocab.concept_for_library_name(canonical) or vocab.owner_of(name):
            continue
        cid = "drug:" + canonical.lower()
        found[cid] = Concept(id=cid, label=name, kind="drug",
                             terms=tuple(dict.fromkeys((question[a:b], canonical.lower(), *lib.synonyms(canonical)))))
    return list(found.values())


# ---------------------------------------------------------------------------- questions

_LIST_JOIN = re.compile(r"\s*(?:,|and|&|,\s*and)\s*", re.IGNORECASE)  # not "/": "ACEi/ARB" is one thing


def _listed(question: str, mentions: list[Mention], unknown: list[Concept], vocab: Vocabulary) -> bool:
    """Two drugs named side by side ("cyclosporine and tacrolimus doses") are compared too."""
    spans = sorted([(m.start, m.end) for m in mentions if vocab.concepts[m.concept].kind in SECTION_KINDS] +
                   [(mm.start(), mm.end()) for d in unknown for t in d.terms[:1]
                    for mm in re.finditer(re.escape(t), question, re.IGNORECASE)])
    return any(_LIST_JOIN.fullmatch(question[b:c]) for (_, b), (c, _) in itertools.pairwise(spans) if c >= b)


def _drop_covered_classes(entities: list[str], vocab: Vocabulary) -> list[str]:
    """'CNIs such as tacrolimus': the member is the subject, the class is context."""
    out = []
    for e in entities:
        members = vocab.with_members([e]) - {e}
        if members & set(entities):
            continue
        out.append(e)
    return out


def analyse(question: str, vocab: Vocabulary) -> QuestionAnalysis:
    mentions = vocab.find(question, question=True)
    concepts = list(dict.fromkeys(m.concept for m in mentions))
    entities = _drop_covered_classes([c for c in concepts if vocab.concepts[c].specific], vocab)
    covered = [(m.start, m.end) for m in mentions]
    unknown_drugs = _library_drugs(question, covered, vocab)
    for d in unknown_drugs:
        for t in d.terms:
            for m in re.finditer(r"(?<!\w)" + re.escape(t) + r"(?!\w)", question, re.IGNORECASE):
                covered.append((m.start(), m.end()))
    unknown_terms: list[str] = []
    letters = [ch for ch in question if ch.isalpha()]
    shouting = len(letters) > 8 and sum(ch.isupper() for ch in letters) > len(letters) / 2  # "WHAT IS..."
    for w in _WORD.finditer(question):
        if any(s <= w.start() and w.end() <= e for s, e in covered):
            continue
        token = w.group(0)
        low = token.lower().replace("’", "'")
        if _ACRONYM.match(token) and not shouting and (len(token) >= 3 or any(ch.isdigit() for ch in token)) \
                and low not in vocab.question_words:
            unknown_terms.append(token)
    n_specific = len([e for e in entities if vocab.concepts[e].kind in SECTION_KINDS]) + len(unknown_drugs)
    comparative = n_specific >= 2 and (bool(_COMPARATIVE.search(question))
                                       or _listed(question, mentions, unknown_drugs, vocab))
    sections = [e for e in entities if vocab.concepts[e].kind in SECTION_KINDS] + [d.id for d in unknown_drugs]
    # In the order the question names them ("sparsentan vs irbesartan": sparsentan first).
    first: dict[str, int] = {}
    for m in mentions:
        first.setdefault(m.concept, m.start)
    for d in unknown_drugs:
        hits = [m.start() for t in d.terms
                for m in re.finditer(r"(?<!\w)" + re.escape(t) + r"(?!\w)", question, re.IGNORECASE)]
        first[d.id] = min(hits, default=len(question))
    sections.sort(key=lambda e: first.get(e, len(question)))
    return QuestionAnalysis(
        question=question, mentions=tuple(mentions), concepts=tuple(concepts), entities=tuple(entities),
        unknown_drugs=tuple(unknown_drugs), unknown_terms=tuple(dict.fromkeys(unknown_terms)),
        attributes=tuple(vocab.asked_attributes(question, concepts)),
        comparative=comparative, section_entities=tuple(sections))


def stems(text: str) -> tuple[str, ...]:
    """BM25's tokens of `text` (stop words out, stemmed): vocabulary terms and sentences are
    tokenised again and again, so kb.bm25.query_tokens caches them."""
    from kb.bm25 import query_tokens

    return query_tokens(text)


def _stems(text: str) -> set[str]:
    return set(stems(text))


def expansion_terms(analysis: QuestionAnalysis, vocab: Vocabulary) -> list[str]:
    """Terms added to the BM25 query: each concept's terms and its members' terms, skipping
    terms whose stems the question (or an earlier term) already has, so a concept named twice
    does not outweigh the rest of the question."""
    seen = _stems(analysis.question)
    out: list[str] = []
    for cid in analysis.concepts:
        c = vocab.concepts[cid]
        if c.generic:
            continue
        ids = [cid, *sorted(vocab.with_members([cid]) - {cid})]
        for term in (t for i in ids for t in vocab.concepts[i].terms):
            new = _stems(term) - seen
            if new:
                out.append(term)
                seen |= new
    return out


def _main_name(concept: Concept) -> str:
    """"Mycophenolate mofetil (MMF)" -> "Mycophenolate mofetil"."""
    return concept.label.split(" (")[0].strip()


def _needs_spelling_out(mention: Mention, concept: Concept) -> bool:
    """True when the words used are not the concept's main name ("tac", "MMF", "water pills")."""
    name_words = {w.lower() for w in re.findall(r"\w+", _main_name(concept))}
    said = re.findall(r"\w+", mention.text.lower())
    return not concept.generic and not all(w in name_words or w.rstrip("s") in name_words
                                           or w + "s" in name_words for w in said)


def dense_text(analysis: QuestionAnalysis, vocab: Vocabulary) -> str:
    """The question with abbreviations and lay words followed by the concept's label:
    "tac trough target?" -> "tac (Tacrolimus) trough target?"."""
    q = analysis.question
    out, pos, done = [], 0, set()
    for m in analysis.mentions:
        c = vocab.concepts[m.concept]
        if m.start < pos or m.concept in done or not _needs_spelling_out(m, c):
            continue
        out.append(q[pos:m.end])
        out.append(f" ({_main_name(c)})")
        pos = m.end
        done.add(m.concept)
    out.append(q[pos:])
    return "".join(out)


def query_for(analysis: QuestionAnalysis, vocab: Vocabulary, filters: Filters | None = None) -> Query:
    text = dense_text(analysis, vocab)
    return Query(text=analysis.question, dense_text=text if text != analysis.question else "",
                 bm25_terms=tuple(expansion_terms(analysis, vocab)), filters=filters or Filters())


def understand(question: str, vocab: Vocabulary, filters: Filters | None = None) -> Query:
    """The Query the retrievers get: BM25 expansions and an embedding text with abbreviations
    spelled out (see module docstring)."""
    return query_for(analyse(question, vocab), vocab, filters)

