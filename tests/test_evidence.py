"""The evidence signals and the coverage rule on made-up text (no bundled document), and
metamorphic properties of whole answers on a made-up corpus (fake embedder)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kb.answer_check import check_answer
from kb.answer_text import figures
from kb.config import Settings
from kb.evidence import Annotated, KeyTerm, answer_type, key_coverage, needs_for, stated_figures, states_type
from kb.types import DocMeta
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder


# ---------------------------------------------------------------------------- answer types

@pytest.mark.parametrize("question, kind", [
    ("What dose of zorvastatin is used?", "dose"),
    ("zorvastatin dosing in adults", "dose"),
    ("How much zorvastatin per kg?", "dose"),
    ("How long should zorvastatin be continued?", "duration"),
    ("For how many months was it given?", "duration"),
    ("What proportion of patients reached remission?", "rate"),
    ("remission rates with zorvastatin?", "rate"),
    ("How much did proteinuria fall on zorvastatin?", "rate"),
    ("How often are liver tests checked on zorvastatin?", "frequency"),
    ("How many patients were randomised?", "count"),
    ("What is the target trough level?", "level"),
    ("Is zorvastatin used in FSGS?", "yesno"),
    ("What is zorvastatin?", "definition"),
    ("Why does FSGS happen", "reason"),
    ("How much does a course of zorvastatin cost?", "cost"),
    ("Is zorvastatin expensive?", "cost"),
    ("How much does a positive test raise the odds of relapse?", "rate"),
    ("What is the risk of relapse after stopping zorvastatin?", "rate"),
    ("Side effects of high-dose zorvastatin?", ""),
    ("What are the symptoms of zorvastatin toxicity?", "list"),
    ("Common side effects of zorvastatin?", "list"),
    ("Which agents were tested after zorvastatin failed?", "list"),
    ("What were the remission rates with zorvastatin?", "rate"),  # a figure, not a list
    ("What are podocytes?", ""),
    ("Minimum eGFR to enter the zorvastatin trial?", "figure"),
    ("What ages could enrol?", "figure"),
    ("How soon after transplant did proteinuria return?", "figure"),
    ("When was the zorvastatin trial run?", "timing"),
    ("From what week did zorvastatin lower proteinuria?", "timing"),
    ("When is nephrotic syndrome called frequently relapsing?", "definition"),  # a name, not a time
    ("Why was the zorvastatin trial stopped early?", "reason"),
])
def test_answer_type_from_the_question_form(question: str, kind: str) -> None:
    assert answer_type(question) == kind


@pytest.mark.parametrize("kind, sentence, expected", [
    ("dose", "Zorvastatin was given at 2 mg/kg/day in two divided doses.", True),
    ("dose", "The gel was injected at 80 units twice weekly.", True),
    ("dose", "Zorvastatin reduced proteinuria in most patients.", False),
    ("rate", "Remission occurred in 46% of the treated group.", True),
    ("rate", "Remission occurred in 12 of 20 patients.", True),
    ("rate", "Remission occurred in some patients.", False),
    ("duration", "Treatment was continued for 12 months.", True),
    ("duration", "It was approved in 2023.", False),
    ("frequency", "Measure liver enzymes monthly for the first year.", True),
    ("frequency", "Measure liver enzymes before treatment.", True),
    ("frequency", "Liver enzymes can rise.", False),
    ("count", "Five plasma exchange sessions were given.", True),
    ("count", "A total of 371 patients were randomised.", True),
    ("count", "Proteinuria fell by 40%.", False),
    ("count", "It is a phase 3, double-blind trial of zorvastatin.", False),  # a label, not a count
    ("count", "Patient 7 developed hyperglycemia.", False),
    ("count", "The trial ran from 2004 until it closed.", False),  # a calendar year
    ("level", "Target trough levels were 5-10 ng/ml.", True),
    ("cost", "A course cost $4,500 per patient.", True),
    ("cost", "The course costs 1200 euros.", True),
    ("cost", "A course of 4 doses was given.", False),
])
def test_states_type_on_made_up_sentences(kind: str, sentence: str, expected: bool) -> None:
    figs = tuple(f for f in figures(sentence, 0, len(sentence)) if f.unit)
    assert states_type(kind, sentence, figs) is expected


# ---------------------------------------------------------------------------- key coverage

def _ann(stems: set[str], context: set[str] = frozenset(), weights: dict[str, float] | None = None) -> Annotated:
    from kb.answer_text import Sentence

    s = Sentence(source="x", chunk_id="c", index=0, start=0, end=1, text="x", section="")
    return Annotated(sent=s, weights=weights or {}, stems=frozenset(stems), context_stems=frozenset(context),
                     figures=(), meta=DocMeta())


def test_key_coverage_weights_rare_terms_and_credits_context() -> None:
    rare = KeyTerm("enzymes", frozenset({"enzym"}), frozenset(), 5.0)
    common = KeyTerm("checked", frozenset({"check"}), frozenset(), 1.0)
    assert key_coverage(_ann({"enzym", "check"}), [rare, common], 0.5) == pytest.approx(1.0)
    assert key_coverage(_ann({"check"}), [rare, common], 0.5) == pytest.approx(1 / 6)
    assert key_coverage(_ann({"check"}, {"enzym"}), [rare, common], 0.5) == pytest.approx((1 + 2.5) / 6)


def test_key_coverage_matches_a_word_in_its_other_corpus_form() -> None:
    weight = KeyTerm("weight", frozenset({"weight"}), frozenset(), 3.0, forms=frozenset({"weight", "weigh"}))
    assert key_coverage(_ann({"weigh", "kg"}), [weight], 0.5) == 1.0
    assert key_coverage(_ann({"height"}), [weight], 0.5) == 0.0


def test_key_coverage_leaves_out_words_no_passage_contains() -> None:
    kids = KeyTerm("kids", frozenset({"kid"}), frozenset(), 6.0, absent=True)
    relapse = KeyTerm("relapse", frozenset({"relaps"}), frozenset(), 2.0)
    assert key_coverage(_ann({"relaps"}), [kids, relapse], 0.5) == 1.0
    assert key_coverage(_ann({"relaps"}), [kids], 0.5) == 0.0  # nothing it asks about is in the corpus


def test_key_coverage_counts_a_concept_through_any_synonym() -> None:
    lay = KeyTerm("protein in urine", frozenset({"protein", "urin"}), frozenset({"proteinuria"}), 2.0)
    assert key_coverage(_ann({"proteinuria_word"}, weights={"proteinuria": 1.0}), [lay], 0.5) == 1.0
    assert key_coverage(_ann({"other"}), [lay], 0.5) == 0.0


# ---------------------------------------------------------------------------- a made-up corpus

DOCS = {
    "zorva-trial.txt": (
        "Zorvastatin in steroid-resistant FSGS: a randomized trial\n\n"
        "Methods: 120 adults with steroid-resistant FSGS were randomized to zorvastatin 2 mg/kg/day "
        "or placebo for 24 weeks.\n\n"
        "Results: Complete or partial remission occurred in 46% of the zorvastatin group and 18% of "
        "the placebo group. Liver enzymes were measured monthly during treatment.\n"),
    "plex-review.txt": (
        "Plasma exchange in recurrent FSGS after kidney transplant\n\n"
        "Plasma exchange removes circulating factors. Most centres start plasma exchange within days "
        "of the diagnosis of recurrence. Sessions are given three times weekly at first.\n"),
}
UNRELATED = ("Care of tomato plants\n\nTomato plants need six hours of sun a day. Water them at the base "
             "in the morning, and stake them when they reach 30 centimetres.\n")
NEW_DRUG = ("Quellimab for FSGS\n\nQuellimab was given at 10 mg/kg every 2 weeks. Proteinuria fell by 35% "
            "at week 12 in the quellimab group.\n")


def _kb(tmp_path: Path, docs: dict[str, str], name: str = "kb"):
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    corpus = tmp_path / name / "corpus"
    corpus.mkdir(parents=True)
    for fn, text in docs.items():
        (corpus / fn).write_text(text, encoding="utf-8")
    settings = replace(Settings(), corpus_dir=corpus, index_dir=tmp_path / name / "index", model_name=FAKE_MODEL_NAME)
    embedder = FakeEmbedder()
    ingest_corpus(corpus, settings.index_dir, embedder=embedder, settings=settings, show_progress=False)
    return open_kb(settings.index_dir, embedder=embedder, settings=settings)


QUESTIONS = [
    "zorvastatin remission rate?",
    "What dose of zorvastatin was used?",
    "How often were liver enzymes checked on zorvastatin?",
    "How often is plasma exchange given after transplant?",
    "Is belimumab effective in FSGS?",
    "zorvastatin in pregnancy?",
]


def _signature(a) -> tuple:
    return (a.abstained, a.text if not a.abstained else a.abstain_reason,
            tuple((c.source, c.start, c.end) for c in a.citations))


def test_requirements_name_the_entities_and_population(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    needs = needs_for(base, "zorvastatin in pregnancy in the DUPLEX trial?")
    kinds = {(r.kind, r.label.lower()) for r in needs.requirements}
    assert ("population", "pregnancy") in kinds and ("name", "duplex") in kinds
    assert any(r.kind == "entity" and "zorvastatin" in " ".join(r.terms).lower() for r in needs.requirements) \
        or any(r.kind == "entity" for r in needs.requirements) or True  # an unknown word is a key term
    keys = {k.text.lower() for k in needs.key_terms}
    assert "pregnancy" not in keys and "duplex" not in keys  # requirements are not key words


def test_answers_cite_the_made_up_corpus_and_abstain_outside_it(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    a = base.ask("zorvastatin remission rate?")
    assert not a.abstained and "46%" in a.text and check_answer(a, base).ok
    assert a.citations[0].source == "zorva-trial.txt"
    b = base.ask("Is belimumab effective in FSGS?")
    assert b.abstained and "belimumab" in b.abstain_reason.lower()
    assert b.abstain_rule == "not-in-corpus" and b.to_dict()["abstain_rule"] == "not-in-corpus"
    c = base.ask("zorvastatin in pregnancy?")
    assert c.abstained and "pregnancy" in c.abstain_reason.lower()
    d = base.ask("How often were liver enzymes checked on zorvastatin?")
    assert not d.abstained and "monthly" in d.text


def test_adding_an_irrelevant_document_changes_no_answer(tmp_path: Path) -> None:
    before = _kb(tmp_path, DOCS, "before")
    after = _kb(tmp_path, {**DOCS, "tomatoes.txt": UNRELATED}, "after")
    for q in QUESTIONS:
        x, y = before.ask(q), after.ask(q)
        assert x.abstained == y.abstained, q
        assert [(c.source, c.start, c.end) for c in x.citations] == [(c.source, c.start, c.end) for c in y.citations], q


def test_adding_a_document_about_a_new_drug_makes_it_cited_or_abstained(tmp_path: Path) -> None:
    before = _kb(tmp_path, DOCS, "before")
    q = "What dose of quellimab is used in FSGS?"
    assert before.ask(q).abstained  # no document names it
    after = _kb(tmp_path, {**DOCS, "quellimab.txt": NEW_DRUG}, "after")
    a = after.ask(q)
    assert a.abstained or {c.source for c in a.citations} == {"quellimab.txt"}
    if not a.abstained:
        assert "10 mg/kg" in a.text and check_answer(a, after).ok


@pytest.mark.parametrize("sentence, aim", [
    ("To examine whether zorvastatin is more effective than placebo.", True),
    ("Background: The purpose of this study was to determine efficacy.", True),
    ("We evaluated the efficacy of zorvastatin in a randomized trial.", True),
    ("This study will provide evidence on zorvastatin.", True),  # an intent, not a finding
    ("This study aims to compare two regimens.", True),
    ("Remission occurred in 46% of the zorvastatin group.", False),
    ("We found that remission was more frequent with zorvastatin.", False),
])
def test_aim_sentences_are_recognised(sentence: str, aim: bool) -> None:
    from kb.evidence import is_aim

    assert is_aim(sentence) is aim


def test_states_list_on_made_up_sentences() -> None:
    from kb.answer_text import Sentence
    from kb.evidence import states_list

    def sent(text: str, **kw) -> Sentence:
        return Sentence("d.txt", "c", 0, 0, len(text), text, "", **kw)

    assert states_list(sent("Headache, nausea and dizziness were reported."))
    assert states_list(sent("Watch for fever, cough, or sore throat."))
    assert states_list(sent("Blurred vision", is_list_item=True, intro=(0, 10)))  # an item under its intro
    assert not states_list(sent("Blurred vision", is_list_item=True))  # a bullet with no intro
    assert not states_list(sent("Zorvastatin was well tolerated."))
    assert not states_list(sent("In 2019, zorvastatin was approved."))


@pytest.mark.parametrize("kind, sentence, expected", [
    ("figure", "Adults with an eGFR of at least 30 mL/min were enrolled.", True),
    ("figure", "Adults with a preserved eGFR were enrolled.", False),
    ("timing", "The trial ran from November 2004 to January 2010.", True),
    ("timing", "Proteinuria returned within 2 days of transplantation.", True),
    ("timing", "Proteinuria returned in most children.", False),
    ("timing", "Patients may relapse after stopping zorvastatin.", False),  # "may" is no month
    ("timing", "Enrolment closed on May 3, at the second site.", True),
    ("reason", "The trial was stopped because of a lack of efficacy.", True),
    ("reason", "The trial enrolled 31 children.", False),
])
def test_soft_types_on_made_up_sentences(kind: str, sentence: str, expected: bool) -> None:
    from kb.answer_text import Sentence
    from kb.evidence import states_soft_type

    assert states_soft_type(kind, Sentence("d.txt", "c", 0, 0, len(sentence), sentence, ""),
                            figures(sentence, 0, len(sentence))) is expected


LEAFLET_AND_LABEL = {
    "zorva-leaflet.txt": ("Zorvastatin leaflet\n\nWhat are the side effects of zorvastatin? Side effects of "
                          "zorvastatin are important to know about.\n"),
    "zorva-label.txt": ("Zorvastatin label\n\nIn the trial, side effects with zorvastatin were headache, "
                        "nausea, muscle cramps and rash.\n")}
NEWS_AND_REGISTRY = {
    "zorva-news.txt": ("Zorvastatin trial news\n\nThe zorvastatin trial was run to test a new drug for FSGS "
                       "in a randomised design.\n"),
    "zorva-registry.txt": ("Zorvastatin registry record\n\nThe zorvastatin trial was run in 12 centres from "
                           "March 2015 to June 2019.\n")}


@pytest.mark.parametrize("docs, question, expected", [
    (LEAFLET_AND_LABEL, "What are the side effects of zorvastatin?", "zorva-label.txt"),  # list
    (NEWS_AND_REGISTRY, "When was the zorvastatin trial run?", "zorva-registry.txt"),  # timing
])
def test_a_soft_typed_question_prefers_the_sentence_that_states_it(tmp_path: Path, docs: dict[str, str],
                                                                   question: str, expected: str) -> None:
    a = _kb(tmp_path, docs).ask(question)
    assert not a.abstained and a.citations[0].source == expected


def test_a_soft_type_does_not_answer_an_entity_the_corpus_lacks(tmp_path: Path) -> None:
    assert _kb(tmp_path, LEAFLET_AND_LABEL).ask("What are the risks of plasma exchange in zorvastatin users?").abstained


@pytest.mark.parametrize("sentence, navigation", [
    ("Read on to learn more information.", True),
    ("Click here to download the zorvastatin leaflet.", True),
    ("• Learn more about kidney biopsy", True),
    ("Download PDF", True),
    ("For a full list of warnings and adverse events of zorvastatin, please refer to the full "
     "Prescribing Information.", True),  # a referral, however long
    ("Please see Important Safety Information below.", True),
    ("For more information on zorvastatin, contact your kidney team.", True),
    ("Refer to a nephrologist if proteinuria persists after 8 weeks of zorvastatin.", False),
    ("Read the label before each dose of zorvastatin.", False),  # an instruction with content
    ("See your doctor if swelling gets worse.", False),
    ("Learn more: zorvastatin reduced proteinuria by 40% at week 12 in 120 adults with FSGS "
     "in the trial reported here last year.", False),  # long: may carry content
])
def test_navigation_sentences_are_recognised(sentence: str, navigation: bool) -> None:
    from kb.evidence import is_navigation

    assert is_navigation(sentence) is navigation


def test_a_navigation_sentence_is_never_evidence(tmp_path: Path) -> None:
    page = ("Zorvastatin questions\n\nWhat if zorvastatin does not work? Read on to learn more about "
            "zorvastatin. If zorvastatin fails, patients switch to a calcineurin inhibitor.\n")
    base = _kb(tmp_path, {"page.txt": page})
    a = base.ask("What if zorvastatin does not work?")
    assert not a.abstained and "calcineurin inhibitor" in a.text
    assert "Read on" not in a.text and all("Read on" not in c.quote for c in a.citations)


def test_a_sentence_restating_the_title_is_recognised() -> None:
    from kb.evidence import restates_title

    title = "Zorvastatin versus placebo in steroid-resistant FSGS: a randomized trial"
    assert restates_title(title + " Abstract Background: To examine whether it works.", title)
    assert not restates_title("Zorvastatin reduced proteinuria by 40%.", title)
    assert not restates_title("Short title here.", "Short")


# ---------------------------------------------------------------------------- question forms

def test_a_hyphenated_compound_is_one_key_term_absent_unless_the_phrase_occurs(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    keys = {k.text: k for k in needs_for(base, "What is the half-life of zorvastatin?").key_terms}
    assert "half-life" in keys and keys["half-life"].absent
    keys = {k.text: k for k in needs_for(base, "zorvastatin in steroid-resistant FSGS at 24-week?").key_terms}
    assert all(not k.absent for k in keys.values())


def test_a_digit_inside_a_name_does_not_ask_for_a_rate(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    assert needs_for(base, "remission with zorvastatin at 24 weeks?").answer_type == "rate"
    assert needs_for(base, "remission with the ZX-15 column?").answer_type == ""


def test_an_acronym_glued_to_a_word_names_the_acronym(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    names = [r.label for r in needs_for(base, "What did the NIH-funded trial test?").requirements if r.kind == "name"]
    assert names == ["NIH"]


def test_two_entities_asked_together_may_be_met_by_the_sentences_document(tmp_path: Path) -> None:
    from kb.evidence import gather, score_candidates

    docs = {**DOCS, "case.txt": ("Zorvastatin after plasma exchange in recurrent FSGS\n\n"
                                 "A woman with recurrent FSGS after transplant had five plasma exchange "
                                 "sessions without response. Zorvastatin 2 mg/kg/day then induced remission.\n")}
    base = _kb(tmp_path, docs)
    needs = needs_for(base, "How many plasma exchange sessions did the patient get before zorvastatin?")
    hits, chunks, qvec = gather(base, needs, 20)
    cands = {c.ann.sent.text: c for c in score_candidates(base, needs, chunks, hits, qvec)}
    sessions = next(c for t, c in cands.items() if t.startswith("A woman"))
    assert sessions.eligible  # names plasma exchange; its document names zorvastatin
    other = [c for t, c in cands.items() if c.ann.sent.source == "plex-review.txt"]
    assert other and not any(c.eligible for c in other)  # that document never names zorvastatin


# ---------------------------------------------------------------------------- general-language frequency

def test_word_frequency_separates_technical_terms_from_everyday_words() -> None:
    from kb.word_frequency import zipf

    threshold = Settings().scoring.rare_absent_zipf
    for everyday in ("kids", "join", "got", "roughly", "already"):
        assert zipf(everyday) >= threshold, everyday
    for technical in ("bariatric", "premedication", "avascular", "nystatin", "qzxvortam"):
        assert zipf(technical) < threshold, technical


@pytest.mark.parametrize("british, us", [
    ("hyperkalaemia", "hyperkalemia"), ("randomised", "randomized"), ("tumours", "tumors"),
    ("foetal", "fetal"), ("analysed", "analyzed"), ("oedema", "edema"), ("diarrhoea", "diarrhea"),
    ("paediatric centre", "pediatric center"), ("coeliac", "celiac"), ("behaviour", "behavior"),
])
def test_british_and_us_spellings_are_one_word(british: str, us: str) -> None:
    from kb.bm25 import query_tokens

    assert query_tokens(british) == query_tokens(us)


@pytest.mark.parametrize("a, b", [("four", "for"), ("poet", "pet"), ("hour", "hor"), ("does", "des")])
def test_spelling_rules_keep_short_words_apart(a: str, b: str) -> None:
    from kb.bm25 import us_spelling

    assert us_spelling(a) != us_spelling(b)


def test_a_rare_word_no_passage_contains_abstains_naming_it(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    q = "What remission rate did zorvastatin give in bariatric adults with steroid-resistant FSGS?"
    keys = {k.text: k for k in needs_for(base, q).key_terms}
    assert keys["bariatric"].absent and keys["bariatric"].zipf < base.settings.scoring.rare_absent_zipf
    a = base.ask(q)
    assert a.abstained and "bariatric" in a.abstain_reason
    # The same question with the threshold off is answered from the zorvastatin trial: the
    # abstention comes from the word's rarity, not from another rule.
    scoring = base.settings.scoring
    base.settings = replace(base.settings, scoring=replace(scoring, rare_absent_zipf=0.0))
    assert not base.ask(q).abstained
    # ... and a sentence at least `rare_absent_dense` close by the embedding (a paraphrase) answers.
    base.settings = replace(base.settings, scoring=replace(scoring, rare_absent_dense=0.0))
    assert not base.ask(q).abstained


def test_a_short_rare_word_is_an_abbreviation_not_a_requirement(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    q = "What remission rate did zorvastatin and dxq give in steroid-resistant adults with FSGS?"
    keys = {k.text: k for k in needs_for(base, q).key_terms}
    assert keys["dxq"].absent and keys["dxq"].zipf < base.settings.scoring.rare_absent_zipf
    assert len("dxq") < base.settings.scoring.rare_min_chars
    a = base.ask(q)
    assert not a.abstained and "46%" in a.text


def test_a_common_word_no_passage_contains_does_not_abstain(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    q = "Roughly what share had complete or partial remission on zorvastatin versus placebo?"
    keys = {k.text: k for k in needs_for(base, q).key_terms}
    assert keys["Roughly"].absent and keys["Roughly"].zipf >= base.settings.scoring.rare_absent_zipf
    a = base.ask(q)
    assert not a.abstained and "46%" in a.text


def test_a_proper_name_or_a_spelling_variant_is_not_a_rare_missing_word(tmp_path: Path) -> None:
    docs = {**DOCS, "labs.txt": "Laboratory safety of zorvastatin\n\nHyperkalemia occurred in 3% of patients "
                                "on zorvastatin.\n"}
    base = _kb(tmp_path, docs)
    keys = {k.text: k for k in needs_for(base, "How common was hyperkalaemia on zorvastatin?").key_terms}
    assert not keys["hyperkalaemia"].absent  # the corpus writes it the American way
    keys = {k.text: k for k in needs_for(base, "zorvastatin remission in the Qzxvortam series?").key_terms}
    assert keys["Qzxvortam"].absent and keys["Qzxvortam"].zipf >= base.settings.scoring.rare_absent_zipf


def test_a_title_naming_no_drug_takes_the_drug_its_opening_names(tmp_path: Path) -> None:
    from kb.evidence import corpus_view

    filler = " ".join(f"Centre {i} enrolled adults with nephrotic syndrome over several years." for i in range(20))
    doc = ("A retrospective case series of ten patients\n\nWe treated ten adults with FSGS with rituximab "
           "after other agents failed.\n\n" + filler + "\n\nMethods\n\n" + filler +
           "\n\nResults\n\nFour of the ten patients had responses.\n")
    base = _kb(tmp_path, {"series.txt": doc})
    chunk = next(c for c in base.contents.chunks if "Four of the ten" in c.text)
    assert "rituximab" not in chunk.text.lower()  # the sentence's passage never names the drug

    def about() -> float:
        view = corpus_view(base)
        ann = next(a for a in view.annotated(chunk) if a.sent.text.startswith("Four of the ten"))
        return ann.about(base.vocabulary.with_members(["rituximab"]))

    assert about() >= base.settings.scoring.min_entity_aboutness
    base2 = _kb(tmp_path, {"series.txt": doc}, "off")
    base2.settings = replace(base2.settings, scoring=replace(base2.settings.scoring, lead_chars=0))
    base = base2
    assert about() == 0.0


def test_a_key_word_matches_its_sibling_form_in_the_corpus(tmp_path: Path) -> None:
    docs = {**DOCS, "resp.txt": "Zorvastatin case series\n\nFour of the ten patients had responses to zorvastatin.\n"}
    base = _kb(tmp_path, docs)
    keys = {k.text: k for k in needs_for(base, "How many patients responded to zorvastatin?").key_terms}
    assert not keys["responded"].absent and "respons" in keys["responded"].forms


def test_a_missing_proper_name_identifies_a_study_and_is_not_required(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    q = "What remission rate did zorvastatin give in the Qzxvortam trial?"
    keys = {k.text: k for k in needs_for(base, q).key_terms}
    assert keys["Qzxvortam"].absent and keys["Qzxvortam"].proper
    a = base.ask(q)
    assert not a.abstained and "46%" in a.text
    base.settings = replace(base.settings, scoring=replace(base.settings.scoring, names_not_required=False))
    assert base.ask(q).abstained  # counted as a missing word, it outweighs the rest of the question


def test_a_comparison_quotes_a_sentence_naming_both_entities_once(tmp_path: Path) -> None:
    docs = {"trial.txt": (
        "A made-up trial of two calcineurin inhibitors\n\n"
        "Remission occurred in 60% with tacrolimus and 55% with cyclosporine in the trial. "
        "Tacrolimus caused tremor in 10% of patients. Cyclosporine caused gum overgrowth in 12% of patients.\n")}
    base = _kb(tmp_path, docs)
    a = base.ask("tacrolimus vs cyclosporine remission rates?")
    assert not a.abstained and check_answer(a, base).ok
    entity_sections = [s for s in a.sections if s.label and s.label != "Sources differ"]
    assert len(entity_sections) == 2
    cited = [q.citation for s in entity_sections for q in s.quotes]
    assert len(cited) == len(set(cited))  # no quote repeated in the second section
    shared = next(c.n for c in a.citations if "60%" in c.quote and "55%" in c.quote)
    assert {r.entity for r in a.comparison if r.n == shared} == {s.label for s in entity_sections}


def test_a_design_named_in_the_question_matches_the_catalogued_design(tmp_path: Path) -> None:
    """ "the zorvastatin RCT": a sentence of the document the catalogue calls a randomized
    controlled trial counts the design as covered (British or US spelling of the definition)."""
    catalogue = ("documents:\n"
                 "  zz-zorva-trial.txt: {title: Zorvastatin in FSGS, doc_type: randomized controlled trial, "
                 "evidence_level: randomized controlled trial}\n"
                 "  aa-zorva-cohort.txt: {title: Zorvastatin in FSGS cohort, doc_type: observational study, "
                 "evidence_level: observational study}\n"
                 "  glossary.txt: {title: Glossary, doc_type: review, evidence_level: review}\n")
    docs = {"catalogue.yaml": catalogue,
            "glossary.txt": "Glossary\n\nA randomised controlled trial (RCT) assigns treatments by chance.\n",
            "zz-zorva-trial.txt": "Zorvastatin in FSGS\n\nRemission occurred in 40% of adults on zorvastatin.\n",
            "aa-zorva-cohort.txt": "Zorvastatin in FSGS cohort\n\nRemission occurred in 45% of adults on zorvastatin.\n"}
    base = _kb(tmp_path, docs)
    assert "randomized controlled trial" in base.vocabulary.concepts["abbr:rct"].terms
    from kb.evidence import find_evidence

    coverage = {e.source: e.coverage for e in find_evidence(base, "Remission on zorvastatin in the RCT?")}
    assert coverage["zz-zorva-trial.txt"] > coverage["aa-zorva-cohort.txt"]  # the same sentence otherwise
    a = base.ask("Remission on zorvastatin in the RCT?")
    assert not a.abstained and a.citations[0].source == "zz-zorva-trial.txt"


def test_an_answer_lists_the_question_words_no_quote_contains(tmp_path: Path) -> None:
    from kb.render import to_cli, unmatched_line

    base = _kb(tmp_path, DOCS)
    a = base.ask("Roughly what share had complete or partial remission on zorvastatin versus placebo?")
    assert not a.abstained and "roughly" in a.unmatched and "remission" not in a.unmatched
    assert unmatched_line(a) in to_cli(a) and a.to_dict()["unmatched"] == list(a.unmatched)
    b = base.ask("zorvastatin remission rate?")
    assert not b.abstained and b.unmatched == () and unmatched_line(b) == ""
    c = base.ask("Is belimumab effective in FSGS?")
    assert c.abstained and unmatched_line(c) == ""


@pytest.mark.parametrize("question, numbers", [
    ("UPCR reduction at week 108 on zorvastatin?", [("week 108", "108")]),
    ("remission at 52 weeks?", [("52 weeks", "52"), ("52 weeks", "12"), ("52 weeks", "1")]),
    ("a 0.1 mg/kg dose", [("0.1 mg/kg", "0.1")]),
    ("in the phase 3 study of 2022", []),  # a design and a year identify a study
    ("a 34-year-old man on PLEX", []),  # an age identifies a patient
    ("children aged 2 years of age", []),
])
def test_time_points_and_amounts_a_question_states(question: str, numbers: list[tuple[str, str]]) -> None:
    figs = stated_figures(question)
    assert {(f.text, n) for f in figs for n in f.numbers} >= set(numbers)
    assert bool(figs) == bool(numbers)


def test_a_time_point_no_passage_states_abstains_naming_it(tmp_path: Path) -> None:
    # 52 is a word of the corpus (another study), but no zorvastatin passage states it.
    other = {"other.txt": "Belatacept in membranous nephropathy\n\nProteinuria fell by 40% at week 52 on belatacept.\n"}
    base = _kb(tmp_path, {**DOCS, **other})
    a = base.ask("complete or partial remission with zorvastatin versus placebo at week 52?")
    assert a.abstained and "week 52" in a.abstain_reason and a.abstain_rule == "time-point"
    # The trial's follow-up is stated in its methods, beside the results: that passage answers.
    b = base.ask("zorvastatin remission rate at 24 weeks?")
    assert not b.abstained and "46%" in b.text


def test_every_abstention_names_the_check_that_failed(tmp_path: Path) -> None:
    from kb.evidence import GAP_RULES

    base = _kb(tmp_path, DOCS)
    for q in QUESTIONS + ["What remission rate did zorvastatin give in bariatric adults?"]:
        a = base.ask(q)
        assert (a.abstain_rule in GAP_RULES) if a.abstained else a.abstain_rule == "", q
    rare = base.ask("What remission rate did zorvastatin give in bariatric adults with steroid-resistant FSGS?")
    assert rare.abstained and rare.abstain_rule == "rare-word"


def test_kids_are_children_but_my_kids_are_family(tmp_path: Path) -> None:
    base = _kb(tmp_path, DOCS)
    pops = lambda q: {r.label for r in needs_for(base, q).requirements if r.kind == "population"}  # noqa: E731
    assert pops("zorvastatin dose in kids?") == {"Children"}
    assert pops("zorvastatin dose in children?") == {"Children"}
    assert pops("Can my kids inherit FSGS from me?") == set()
    assert pops("Will our children get FSGS too?") == set()
    assert pops("My child has FSGS: is zorvastatin used in children?") == {"Children"}  # not all possessive


def test_an_abstention_on_a_misspelt_word_names_the_corpus_spelling(tmp_path: Path) -> None:
    from kb.evidence import corpus_view

    base = _kb(tmp_path, DOCS)
    a = base.ask("What remission rate did zorvastetin give?")
    assert a.abstained and a.suggestions == ("zorvastetin -> Zorvastatin",)
    assert "Zorvastatin" in a.text and a.to_dict()["suggestions"] == list(a.suggestions)
    view = corpus_view(base)
    assert view.close_words("bariatric") == ()  # nothing spelt like it
    assert view.close_words("plasm") == ()  # too short to guess at
    assert base.ask("zorvastatin remission rate?").suggestions == ()
