"""Query understanding: abbreviation / synonym expansion from kb/vocabulary.yaml, word
boundaries, the drug library, comparisons and attributes. No index or model needed."""
from __future__ import annotations

import re
import time

import pytest

from kb.query import analyse as _analyse, dense_text as _dense_text, drug_library, load_vocabulary, understand as _understand


def analyse(q):
    return _analyse(q, load_vocabulary())


def dense_text(a):
    return _dense_text(a, load_vocabulary())


def understand(q, filters=None):
    return _understand(q, load_vocabulary(), filters)
from kb.types import Filters


def _expanded(question: str) -> str:
    """Everything BM25 is given, lower-case."""
    return understand(question).bm25_text.lower()


@pytest.mark.parametrize("question, concept, expansion", [
    ("CNI dose?", "cni", "calcineurin inhibitor"),
    ("CsA dose", "cyclosporine", "cyclosporine"),
    ("ciclosporin levels", "cyclosporine", "cyclosporine"),
    ("cyclosporin A toxicity", "cyclosporine", "csa"),
    ("Tac trough", "tacrolimus", "tacrolimus"),
    ("MMF in FSGS", "mmf", "mycophenolate mofetil"),
    ("RTX for FSGS", "rituximab", "rituximab"),
    ("CYC course", "cyclophosphamide", "cyclophosphamide"),
    ("PLEX sessions", "plasmapheresis", "plasma exchange"),
    ("plasma exchange", "plasmapheresis", "plasmapheresis"),
    ("ACEi in FSGS", "acei", "ace inhibitor"),
    ("ARB for proteinuria", "arb", "angiotensin receptor blocker"),
    ("RAS blockade", "ras_blockade", "renin-angiotensin system blockade"),
    ("SRNS management", "steroid_resistance", "steroid-resistant"),
    ("steroids", "steroids", "glucocorticoid"),
    ("prednisolone taper", "prednisolone", "prednisolone"),
    ("CR rate", "complete_remission", "complete remission"),
    ("PR after CNI", "partial_remission", "partial remission"),
    ("eGFR decline", "kidney_function", "kidney function"),
    ("tac level", "trough", "trough"),
    ("will I need dialysis", "kidney_failure", "kidney failure"),
    ("ESKD risk", "kidney_failure", "dialysis"),
    ("water pills", "diuretics", "diuretic"),
    ("protein in my pee", "proteinuria", "proteinuria"),
])
def test_abbreviations_and_synonyms_expand(question: str, concept: str, expansion: str) -> None:
    assert concept in analyse(question).concepts
    assert expansion in _expanded(question)


def test_class_expands_to_its_members() -> None:
    terms = _expanded("CNI vs rituximab")
    assert "cyclosporine" in terms and "tacrolimus" in terms


def test_matching_is_case_insensitive() -> None:
    for q in ("csa dose", "CSA dose", "CsA dose", "Cyclosporine dose"):
        assert "cyclosporine" in analyse(q).concepts, q


@pytest.mark.parametrize("question, concept", [
    ("CRP level", "complete_remission"),  # CR inside CRP
    ("prednisone dose", "partial_remission"),  # PR inside prednisone
    ("Tacoma clinic", "tacrolimus"),  # Tac inside Tacoma
    ("an arbitrary question", "arb"),  # ARB inside arbitrary
    ("macrolide", "cyclosporine"),
])
def test_abbreviations_match_whole_words_only(question: str, concept: str) -> None:
    assert concept not in analyse(question).concepts
    assert concept not in load_vocabulary().concepts_in(question)


def test_passages_match_the_same_vocabulary() -> None:
    vocab = load_vocabulary()
    found = vocab.concepts_in("Cyclosporin A is taken 4-5 mg/kg every day")
    assert "cyclosporine" in found
    assert "cni" in vocab.with_classes(found)  # a cyclosporine sentence is about CNIs
    assert "tacrolimus" in vocab.with_members(["cni"])


def test_a_condition_is_not_a_drug_mention() -> None:
    vocab = load_vocabulary()
    found = vocab.concepts_in("in the steroid-resistant patients")
    assert "steroid_resistance" in found and "steroids" not in found


def test_dense_text_spells_out_abbreviations() -> None:
    assert "Tacrolimus" in dense_text(analyse("tac trough target?"))
    assert "Mycophenolate mofetil" in dense_text(analyse("MMF dose?"))
    assert dense_text(analyse("tacrolimus dose")) == "tacrolimus dose"  # nothing to spell out


def test_understand_keeps_question_and_filters() -> None:
    f = Filters(doc_types=("review",))
    q = understand("CsA dose", f)
    assert q.text == "CsA dose" and q.filters == f
    assert len(set(q.bm25_terms)) == len(q.bm25_terms)


def test_drug_library_works_offline_and_knows_brands() -> None:
    lib = drug_library()
    assert lib is not None
    assert "neoral" in lib.synonyms("cyclosporine")
    assert "cyclosporine" in analyse("Neoral trough").concepts  # a brand name, from the library


@pytest.mark.parametrize("question, drug", [
    ("What is the efficacy of sparsentan in FSGS?", "drug:sparsentan"),
    ("Is belimumab effective?", "drug:belimumab"),
    ("nebivolol dose", "drug:nebivolol"),
])
def test_drugs_the_vocabulary_does_not_know_are_recognised(question: str, drug: str) -> None:
    a = analyse(question)
    assert [d.id for d in a.unknown_drugs] == [drug]


def test_known_drugs_are_not_reported_as_unknown() -> None:
    assert analyse("ACTH gel and rituximab").unknown_drugs == ()


def test_acronyms_no_list_knows_are_kept() -> None:
    a = analyse("What does KDIGO say about APOL1?")
    assert set(a.unknown_terms) == {"KDIGO", "APOL1"}
    assert analyse("FSGS and CNI").unknown_terms == ()
    assert analyse("IV rituximab dose?").unknown_terms == ()  # known, and two letters
    assert analyse("WHAT IS THE TAC DOSE?").unknown_terms == ()  # capitals are not acronyms here


@pytest.mark.parametrize("question, entities", [
    ("Compare remission rates for CNIs versus rituximab", ("cni", "rituximab")),
    ("cyclosporine vs tacrolimus", ("cyclosporine", "tacrolimus")),
    ("compare MMF and cyclophosphamide", ("mmf", "cyclophosphamide")),
    ("Tac or CsA?", ("tacrolimus", "cyclosporine")),
    ("cyclosporine and tacrolimus doses", ("cyclosporine", "tacrolimus")),
    ("Is belimumab or rituximab better?", ("rituximab", "drug:belimumab")),
])
def test_comparisons_are_detected(question: str, entities: tuple[str, ...]) -> None:
    a = analyse(question)
    assert a.comparative
    assert set(a.section_entities) == set(entities)


@pytest.mark.parametrize("question", [
    "What tacrolimus dose?",
    "What prednisone dose is given alongside CNI therapy?",
    "What are the options when steroids fail?",
])
def test_non_comparisons(question: str) -> None:
    assert not analyse(question).comparative


@pytest.mark.parametrize("question, attribute, present", [
    ("tac trough target?", "trough", True),
    ("MMF dose?", "dose", True),
    ("Compare remission rates", "remission_rate", True),
    ("When is FSGS considered steroid resistant?", "resistance_definition", True),
    ("options when steroids and CNIs both fail", "resistance_definition", False),
    ("How long should CNIs be continued after remission?", "remission_rate", False),
    ("How much tacrolimus?", "dose", True),
    ("How much does a kidney biopsy cost?", "dose", False),  # a dose needs a drug
])
def test_attributes_asked(question: str, attribute: str, present: bool) -> None:
    assert (attribute in analyse(question).attributes) is present


def test_vocabulary_file_is_consistent() -> None:
    vocab = load_vocabulary()
    assert len(vocab.concepts) >= 40
    for c in vocab.concepts.values():
        assert c.terms, c.id
        assert not re.search(r"\d", c.label), f"{c.id}: labels are shown in answers and must hold no figures"
        assert all(m in vocab.concepts for m in c.members)
    for a in vocab.attributes.values():
        assert not re.search(r"\d", a.label)
        assert not a.concept or a.concept in vocab.concepts


def test_analysis_is_fast() -> None:
    analyse("warm up CsA")
    t0 = time.perf_counter()
    for i in range(50):
        understand(f"CsA versus Tac trough levels in SRNS number {i}?")
    assert (time.perf_counter() - t0) / 50 < 0.02  # well under the 100 ms budget of a whole answer


@pytest.mark.parametrize("text", ["The protein:creatinine ratio fell.", "The protein/creatinine ratio fell.",
                                  "The protein-creatinine ratio fell.", "The protein creatinine ratio fell."])
def test_compound_terms_match_whatever_joins_their_words(text: str) -> None:
    # A made-up mined pair: the vocabulary's matcher must not care which separator a writer used.
    vocab = load_vocabulary().with_abbreviations([("PCRX", "protein/creatinine ratio")])
    assert vocab.concepts_in(text) & vocab.concepts_in("PCRX")


def test_drug_dictionary_unpickler_refuses_code() -> None:
    # The wheel's dictionary is a pickle: the reader must rebuild plain data and refuse any import.
    import io
    import os
    import pickle

    from kb.query import _plain_unpickle

    assert _plain_unpickle(io.BytesIO(pickle.dumps({"a": ["b", 1]}))) == {"a": ["b", 1]}
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        _plain_unpickle(io.BytesIO(pickle.dumps(os.getcwd)))


def test_one_function_word_list_and_one_stemmer() -> None:
    """The question analysis and the LLM verifier use kb.bm25's list and stemmer (the verifier
    adds paraphrase words); BM25's own list is a subset, so no word is a stop word to BM25 but
    content to the analysis."""
    import bm25s.stopwords

    import kb.bm25
    import kb.query
    import kb.verify

    assert kb.query.STOP_WORDS is kb.bm25.STOP_WORDS
    assert kb.bm25.STOP_WORDS < kb.verify._STOPWORDS
    assert set(bm25s.stopwords.STOPWORDS_EN) <= kb.bm25.STOP_WORDS
    assert kb.verify.stemmer is kb.bm25.stemmer
    assert kb.verify.content_tokens("Patients were not treated with the drugs") == {"patient", "not", "treat", "drug"}


def test_compared_entities_keep_the_question_order() -> None:
    """Sections follow the question: a vocabulary drug and a dictionary-only drug alike."""
    first = analyse("cyclosporine vs tacrolimus remission?").section_entities
    second = analyse("tacrolimus vs cyclosporine remission?").section_entities
    assert len(first) == 2 and first == tuple(reversed(second))
    mixed = analyse("sparsentan vs irbesartan proteinuria?").section_entities
    assert len(mixed) == 2 and "sparsentan" in mixed[0].lower()


def test_a_mined_long_form_matches_in_either_spelling_whichever_expansion_it_is() -> None:
    base = load_vocabulary(with_library=False)
    vocab = base.with_abbreviations([("ZQT", "zorvastatin quantity trial"), ("ZQT", "zorvastatin randomised trial")])
    assert {"zorvastatin randomised trial", "zorvastatin randomized trial"} <= set(vocab.concepts["abbr:zqt"].terms)
    assert "abbr:zqt" in vocab.concepts_in("a zorvastatin randomized trial")
    assert vocab.digest != base.with_abbreviations([("ZQT", "zorvastatin quantity trial")]).digest
