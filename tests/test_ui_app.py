"""The Streamlit app through streamlit.testing.v1.AppTest, over a tmp index of a copy of the
bundled corpus built with the fake embedder. The app reads the index location from Settings
(FSGS_KB_INDEX / FSGS_KB_CORPUS) and takes the embedder from the FSGS_KB_EMBEDDER hook."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Callable

import pytest
from streamlit.testing.v1 import AppTest

from kb import store
from kb.config import REPO_ROOT, Settings
from tests.fakes import FakeEmbedder

APP = str(REPO_ROOT / "ui" / "app.py")
CASE_REPORT = "004_1bb380601a0a640d.txt"


@pytest.fixture
def app_env(fake_settings: Settings, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from ingest.build import ingest_corpus

    ingest_corpus(fake_settings.corpus_dir, fake_settings.index_dir, embedder=fake_embedder,
                  settings=fake_settings, show_progress=False)
    monkeypatch.setenv("FSGS_KB_INDEX", str(fake_settings.index_dir))
    monkeypatch.setenv("FSGS_KB_CORPUS", str(fake_settings.corpus_dir))
    monkeypatch.setenv("FSGS_KB_EMBEDDER", "tests.fakes:FakeEmbedder")
    monkeypatch.delenv("FSGS_KB_LLM", raising=False)
    return fake_settings


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], object]]:
    """file name -> the deferred callable behind each st.download_button of the last run."""
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen: dict[str, Callable[[], object]] = {}

    class Recording(MediaFileManager):
        def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kw):  # type: ignore[no-untyped-def]
            seen[str(file_name)] = data_callable
            return super().add_deferred(data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(app_test_module, "MediaFileManager", Recording)
    return seen


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception, at.exception
    return at


def html_of(at: AppTest, cls: str) -> list[str]:
    return [h.value for h in at.html if f'class="{cls}"' in h.value]


def last_answer(at: AppTest):  # type: ignore[no-untyped-def]
    return at.session_state["turns"][-1].answer


def test_empty_screen_offers_examples_and_asks_one(app_env: Settings) -> None:
    at = run_app()
    labels = [b.label for b in at.button]
    assert "Compare remission rates for CNIs versus rituximab" in labels
    assert "What trough level should tacrolimus be kept at?" in labels
    next(b for b in at.button if b.label.startswith("How is steroid-resistant")).click().run()
    assert not at.exception
    assert at.session_state["turns"][0].question == "How is steroid-resistant FSGS defined?"
    assert html_of(at, "kb-answer")
    assert not [b for b in at.button if b.label.startswith("What trough level")]  # examples gone


def test_question_renders_cited_answer(app_env: Settings) -> None:
    at = ask(run_app(), "Compare remission rates for CNIs versus rituximab")
    answer = last_answer(at)
    assert answer.citations and not answer.abstained
    body = html_of(at, "kb-answer")[0]
    markers = re.findall(r'href="#a0-c(\d+)"', body)
    assert markers and {int(n) for n in markers} <= {c.n for c in answer.citations}
    sources = html_of(at, "kb-sources")[0]
    for n in set(markers):  # every [n] link has its passage, and the span is highlighted in it
        assert f'id="a0-c{n}"' in sources and f'id="a0-cm{n}"' in sources
    assert '<mark class="kb-hl">' in sources
    # the conversation survives a rerun (history replayed from session state)
    at.run()
    assert len(at.chat_message) == 2 and len(at.session_state["turns"]) == 1


def test_empty_question_is_ignored(app_env: Settings) -> None:
    at = ask(run_app(), "   ")
    assert at.session_state["turns"] == []
    assert not at.error and not html_of(at, "kb-answer")


def test_out_of_corpus_question_renders_abstention(app_env: Settings) -> None:
    at = ask(run_app(), "What is the efficacy of sparsentan in FSGS?")
    answer = last_answer(at)
    assert answer.abstained, "the answerer should abstain on a drug the corpus does not cover"
    assert at.info, "the abstention is shown as a notice"
    assert not html_of(at, "kb-answer")
    shown = " ".join([i.value for i in at.info] + html_of(at, "kb-terms")).replace("\\", "")
    assert all(t in shown for t in answer.search_terms)  # the search terms tried are shown
    if answer.closest:
        assert "Closest passages" in html_of(at, "kb-sources")[0]


def _shown_sources(at: AppTest) -> set[str]:
    a = last_answer(at)
    return {c.source for c in (*a.citations, *a.closest)}


def test_filter_restricts_sources(app_env: Settings) -> None:
    question = "Compare remission rates for CNIs versus rituximab"
    at = ask(run_app(), question)
    unfiltered = _shown_sources(at)
    assert unfiltered - {CASE_REPORT}, unfiltered
    at.multiselect(key="f_types").set_value(["case report"]).run()
    ask(at, question)
    assert _shown_sources(at) == {CASE_REPORT}  # cited (or, on an abstention, closest) passages
    sources = html_of(at, "kb-sources")[-1]
    assert "Intravenous Rituximab" in sources and "What is the treatment approach" not in sources
    assert at.session_state["turns"][-1].filters.doc_types == ("case report",)
    assert any("Answers use 1 of 5 documents" in c.value for c in at.sidebar.caption)


def test_exports_are_well_formed(app_env: Settings, downloads: dict) -> None:
    at = ask(run_app(), "Compare remission rates for CNIs versus rituximab")
    at.run()  # the sidebar's conversation exports
    answer = last_answer(at)
    labels = {b.label for b in at.download_button}
    assert labels == {"Markdown", "BibTeX", "RIS", "Audit CSV"}
    for stem in ("fsgs-answer-1", "fsgs-conversation"):
        files = {name: downloads[name]() for name in downloads if name.startswith(stem)}
        assert set(files) == {f"{stem}.{ext}" for ext in ("md", "bib", "ris", "csv")}
        md = str(files[f"{stem}.md"])
        assert "## References" in md and re.search(r"\[\d+\]", md)
        bib = str(files[f"{stem}.bib"])
        assert bib.count("{") == bib.count("}")
        cited = {c.source for c in answer.citations}
        assert len(re.findall(r"^@\w+\{", bib, re.M)) == len(cited)
        ris = str(files[f"{stem}.ris"]).splitlines()
        assert sum(1 for x in ris if x.startswith("TY  - ")) == sum(1 for x in ris if x.startswith("ER  - ")) == len(cited)
        rows = list(csv.DictReader(io.StringIO(str(files[f"{stem}.csv"]))))
        assert rows and all(r["source_file"] in cited for r in rows if r["part"] == "answer")
        base_docs = at.session_state["turns"][-1].documents
        for r in rows:
            if r["source_file"]:
                text = base_docs[r["source_file"]].text
                assert text[int(r["start"]):int(r["end"])] == r["quote"].removeprefix("'")


def test_bad_upload_changes_nothing(app_env: Settings) -> None:
    before = store.read_manifest(Path(app_env.index_dir).resolve())["checksum"]
    files_before = sorted(p.name for p in Path(app_env.corpus_dir).iterdir())
    at = run_app()
    at.sidebar.file_uploader[0].set_value(("broken.pdf", b"this is not a PDF", "application/pdf")).run()
    at.button(key="upload_go").click().run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert errors and "unchanged" in errors[0], errors
    assert store.read_manifest(Path(app_env.index_dir).resolve())["checksum"] == before
    assert sorted(p.name for p in Path(app_env.corpus_dir).iterdir()) == files_before


def test_upload_is_indexed_and_its_text_never_rendered(app_env: Settings) -> None:
    before = store.read_manifest(Path(app_env.index_dir).resolve())["checksum"]
    text = ("Sparsentan notes\n\nSparsentan, a dual endothelin angiotensin receptor antagonist, reduced "
            "proteinuria in FSGS in the DUET trial. <script>alert('xss')</script> "
            "[click](javascript:alert(1)) <img src=x onerror=alert(2)>\n")
    at = run_app()
    at.sidebar.file_uploader[0].set_value(("../../sparsentan notes.txt", text.encode(), "text/plain")).run()
    at.button(key="upload_go").click().run()
    assert not at.exception and not at.sidebar.error
    assert any("Added" in s.value for s in at.sidebar.success)
    assert (Path(app_env.corpus_dir) / "sparsentan_notes.txt").is_file()  # safe name, inside corpus/
    assert store.read_manifest(Path(app_env.index_dir).resolve())["checksum"] != before
    assert any("<b>6</b> documents" in h for h in html_of(at, "kb-side-stats"))
    ask(at, "Sparsentan DUET trial proteinuria")
    cited = {c.source for c in (*last_answer(at).citations, *last_answer(at).closest)}
    assert "sparsentan_notes.txt" in cited
    for h in at.html:
        assert "<script>alert" not in h.value and "<img" not in h.value


def test_missing_index_explains_the_fix(app_env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FSGS_KB_INDEX", str(tmp_path / "no-index-here"))
    at = run_app()
    assert at.error and "not available" in at.error[0].value
    assert any("make ingest" in m.value for m in at.markdown)
    assert at.button(key="build_index")
    at.button(key="build_index").click().run()  # builds it from the corpus, then the chat appears
    assert not at.exception and not at.error
    assert at.chat_input(key="question")


def test_corpus_and_references_views(app_env: Settings) -> None:
    at = run_app()
    at.segmented_control(key="view").set_value("Corpus").run()
    assert not at.exception
    titles = at.dataframe[0].value["Title"].tolist()
    assert len(titles) == 5 and "Focal segmental glomerulosclerosis (FSGS)" in titles
    at.segmented_control(key="view").set_value("References").run()
    assert not at.exception and at.dataframe
    assert sum(len(d.value) for d in at.dataframe) == 28


def test_overlong_question_gets_a_plain_message(app_env: Settings) -> None:
    at = ask(run_app(), "proteinuria " * 5000)
    answer = last_answer(at)
    assert answer.error and at.error and not html_of(at, "kb-answer")
