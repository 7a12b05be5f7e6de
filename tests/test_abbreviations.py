"""Abbreviation-definition pairs mined at ingest: the miner on made-up sentences, the stored
pairs and their offsets, incremental builds, older indexes, and the KnowledgeBase lookup."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from ingest.abbreviations import Definition, acceptable, find_definitions, mine, normalise
from ingest.build import ingest_corpus
from kb import store
from kb.abbreviations import AbbreviationMap
from kb.api import open_kb
from kb.types import Abbreviation, DocMeta, Document


def pairs(text: str) -> list[tuple[str, str]]:
    return [(d.short, d.long) for d in find_definitions(text)]


def doc(source: str, text: str) -> Document:
    return Document(doc_id=source, source=source, text=text, meta=DocMeta(), content_hash=source)


@pytest.mark.parametrize("text, expected", [
    ("Calcineurin inhibitors (CNIs) induce remission in many patients.", ("CNI", "calcineurin inhibitor")),
    ("Patients then received mycophenolate mofetil (MMF) for a year.", ("MMF", "mycophenolate mofetil")),
    ("The rate of complete remission (CR) was 40% at six months.", ("CR", "complete remission")),
    ("Kidney Disease: Improving Global Outcomes (KDIGO) advises this.",
     ("KDIGO", "kidney disease: improving global outcomes")),
    ("The estimated glomerular filtration rate (eGFR) fell.", ("eGFR", "estimated glomerular filtration rate")),
    ("Angiotensin receptor blockers (ARBs) reduce proteinuria.", ("ARB", "angiotensin receptor blocker")),
    ("Congenital disorders of glycosylation (CDGs) are rare.", ("CDG", "congenital disorders of glycosylation")),
])
def test_definitions_are_found_and_normalised(text: str, expected: tuple[str, str]) -> None:
    assert pairs(text) == [expected]


@pytest.mark.parametrize("text", [
    "Twelve patients were treated (n = 12) with steroids.",
    "Proteinuria fell significantly (p < 0.05) after treatment.",
    "Results are plotted in figure 2 (Figure 2) for all patients.",  # Schwartz-Hearst alone accepts it
    "The full results in table 1 (Table 1) are given.",
    "Remission was common in this cohort (2019) of patients.",
    "The drug was given orally (daily) to all patients.",  # Schwartz-Hearst alone accepts it
    "Tacrolimus (tacrolimus) was used.",  # ditto
    "This sentence has an unbalanced (CNI parenthesis and calcineurin inhibitors.",
])
def test_non_definitions_are_rejected(text: str) -> None:
    assert pairs(text) == []


def test_offsets_point_at_the_defining_occurrence() -> None:
    text = "Background.\nMany centres use calcineurin inhibitors (CNIs) first. Later, mycophenolate mofetil (MMF)."
    found = find_definitions(text)
    assert [text[d.start:d.end] for d in found] == ["calcineurin inhibitors (CNIs)", "mycophenolate mofetil (MMF)"]


def test_a_short_form_in_brackets_inside_parentheses_is_found_with_exact_offsets() -> None:
    text = ("Remission was similar (hazard ratio [HR], 1.07; 95% confidence interval [CI], 0.8 to 1.4). "
            "The odds ratio [OR] was 2 in adults.")
    found = {(d.short, d.long): text[d.start:d.end] for d in find_definitions(text)}
    assert found == {("HR", "hazard ratio"): "hazard ratio [HR]",
                     ("CI", "confidence interval"): "confidence interval [CI]",
                     ("OR", "odds ratio"): "odds ratio [OR]"}
    assert not find_definitions("A reference [12] and a note [NB] here.")  # no long form before them


def test_only_the_given_sentence_spans_are_searched() -> None:
    text = "Share this page (STP). Calcineurin inhibitors (CNIs) work."
    assert [d.short for d in find_definitions(text, [(23, len(text))])] == ["CNI"]


@pytest.mark.parametrize("short, long, ok", [
    ("CR", "complete remission", True),
    ("C", "complete", False),  # too short
    ("ABCDEFGHIJK", "a b c d e f g h i j k", False),  # too long
    ("cr", "complete remission", False),  # no capital or digit
    ("CR", "remission complete", False),  # the long form must start with the short form's initial
    ("Figure 2", "figure 2", False),
])
def test_acceptable(short: str, long: str, ok: bool) -> None:
    assert acceptable(short, long) is ok


def test_normalise_strips_punctuation_and_keeps_meaningful_capitals() -> None:
    assert normalise("CNIs.", "Calcineurin Inhibitors,") == ("CNI", "calcineurin inhibitor")
    assert normalise("IgAN", "IgA Nephropathy") == ("IgAN", "IgA nephropathy")
    assert normalise("AD", "Alzheimer's disease") == ("AD", "Alzheimer's disease")


def test_mine_counts_documents_and_keeps_conflicting_expansions() -> None:
    docs = [
        doc("b.txt", "We used complete remission (CR) as endpoint. Again complete remission (CR)."),
        doc("a.txt", "Complete remission (CR) was reached by half."),
        doc("c.txt", "Serum creatinine (Cr) rose, and cyclophosphamide (CR) was not given."),
    ]
    got = {(a.short, a.long): a for a in mine(docs)}
    remission = got[("CR", "complete remission")]
    assert (remission.sources, remission.doc_count) == (("a.txt", "b.txt"), 2)
    assert docs[1].text[remission.start:remission.end] == "Complete remission (CR)"  # first source: a.txt
    assert got[("Cr", "creatinine")].doc_count == 1
    assert ("CR", "cyclophosphamide") not in got  # no "r" in it: not a Schwartz-Hearst match
    m = AbbreviationMap(got.values())
    assert m["cr"] == m["CR"] == ["complete remission", "creatinine"]  # by doc count
    assert "Cr" in m and "XYZ" not in m and m.doc_count("cr", "Complete Remission") == 2


def test_map_orders_by_doc_count_and_merges_case_variants() -> None:
    m = AbbreviationMap([
        Abbreviation("PR", "pulse rate", ("x",), 0, 1, 1),
        Abbreviation("PR", "partial remission", ("a", "b"), 0, 1, 2),
        Abbreviation("Pr", "partial remission", ("c",), 0, 1, 1),
    ])
    assert m["pr"] == ["partial remission", "pulse rate"] and m.doc_count("PR", "partial remission") == 3
    assert len(m) == 1 and list(m) == ["pr"]


def test_importing_the_package_leaves_logging_alone() -> None:
    code = ("import logging, ingest.abbreviations as a; a._schwartz_hearst(); "
            "r = logging.getLogger(); print(len(r.handlers), r.level)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", str(logging.WARNING)]


# ---------------------------------------------------------------- stored in the index

NEW_DOC = ("# Pulse therapy\n\nIntravenous methylprednisolone (IVMP) pulses were given for three days. "
           "Calcineurin inhibitors (CNIs) followed.\n")


def _ingest(settings, embedder):
    return ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=embedder, settings=settings,
                         show_progress=False)


def test_index_stores_pairs_with_exact_offsets(fake_settings, fake_embedder) -> None:
    (fake_settings.corpus_dir / "pulse.md").write_text(NEW_DOC, encoding="utf-8")
    _ingest(fake_settings, fake_embedder)
    index = fake_settings.index_dir
    manifest = json.loads((index / "manifest.json").read_text())
    assert "abbreviations.jsonl" in manifest["files"]
    rows = [json.loads(line) for line in (index / "abbreviations.jsonl").read_text().splitlines()]
    assert manifest["counts"]["abbreviations"] == len(rows) > 3
    base = open_kb(index, embedder=fake_embedder, settings=fake_settings)
    for a in base.abbreviation_pairs():
        span = base.document(a.sources[0]).text[a.start:a.end]
        assert span.endswith(")") and a.short.rstrip("s") in span, (a, span)
    ivmp = [a for a in base.abbreviation_pairs() if a.short == "IVMP"]
    assert [(a.long, a.sources, a.doc_count) for a in ivmp] == [("intravenous methylprednisolone", ("pulse.md",), 1)]
    assert base.document("pulse.md").text[ivmp[0].start:ivmp[0].end] == "Intravenous methylprednisolone (IVMP)"
    abbr = base.abbreviations()
    assert abbr["ivmp"] == ["intravenous methylprednisolone"]
    assert abbr["fsgs"][0] == "focal segmental glomerulosclerosis"  # defined by every seed document
    assert abbr["mmf"] == ["mycophenolate mofetil"]
    assert len(base.abbreviations()["cni"]) == 1 and base.abbreviation_pairs()[0].doc_count >= 1


def test_incremental_build_follows_the_corpus(fake_settings, fake_embedder) -> None:
    new = fake_settings.corpus_dir / "pulse.md"
    new.write_text(NEW_DOC, encoding="utf-8")
    _ingest(fake_settings, fake_embedder)
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    cni_before = [a for a in base.abbreviation_pairs() if a.short == "CNI"]
    assert "IVMP" in base.abbreviations() and "pulse.md" in cni_before[0].sources

    new.unlink()
    _ingest(fake_settings, fake_embedder)
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert "IVMP" not in base.abbreviations()
    cni_after = [a for a in base.abbreviation_pairs() if a.short == "CNI"]
    assert cni_after[0].doc_count == cni_before[0].doc_count - 1
    assert all("pulse.md" not in a.sources for a in base.abbreviation_pairs())


def test_index_built_before_abbreviations_existed_opens_with_none(fake_settings, fake_embedder) -> None:
    _ingest(fake_settings, fake_embedder)
    index = fake_settings.index_dir.resolve()
    (index / "abbreviations.jsonl").unlink()
    manifest = json.loads((index / "manifest.json").read_text())
    del manifest["files"]["abbreviations.jsonl"]
    manifest["checksum"] = store.manifest_checksum(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest))
    base = open_kb(fake_settings.index_dir, embedder=fake_embedder, settings=fake_settings)
    assert base.abbreviation_pairs() == () and len(base.abbreviations()) == 0


def test_definition_is_a_frozen_value() -> None:
    d = Definition("CR", "complete remission", 0, 5)
    with pytest.raises(AttributeError):
        d.short = "PR"  # type: ignore[misc]
