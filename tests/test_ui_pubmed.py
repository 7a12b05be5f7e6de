"""The "Add from PubMed" form and the corpus view's metadata (provenance, corrections) through
streamlit's AppTest, against the local E-utilities stand-in (no test reaches the internet)."""
from __future__ import annotations

import socket
from typing import Iterator

import pytest
import yaml

from kb.config import Settings
from tests.eutils_server import QUERY, EUtilsStandIn
from tests.test_ui_app import app_env, run_app  # noqa: F401 - app_env is a fixture

CASE_REPORT = "004_1bb380601a0a640d.txt"


@pytest.fixture
def server() -> Iterator[EUtilsStandIn]:
    s = EUtilsStandIn().start()
    yield s
    s.stop()


def _texts(elements) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(str(e.value) for e in elements).replace("\\", "")  # markdown escapes off


def test_add_from_pubmed_shows_progress_and_what_was_added(app_env: Settings, server: EUtilsStandIn,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSGS_KB_EUTILS_URL", server.url)
    at = run_app()
    assert not [b for b in at.button if b.key == "pm_go"] and not server.requests  # off until switched on
    at.toggle(key="pm_on").set_value(True).run()
    assert at.button(key="pm_go").disabled  # no query yet
    at.text_input(key="pm_query").set_value(QUERY)
    at.number_input(key="pm_max").set_value(50).run()
    at.button(key="pm_go").click().run()
    assert not at.exception, at.exception
    shown = _texts(at.success)
    assert "7 added, 0 already in the corpus" in shown
    assert "PMID 90000001: Rituximab versus tacrolimus" in shown
    assert sorted(p.name for p in (app_env.corpus_dir / "pubmed").iterdir())[0] == "90000001.xml"
    assert any("12" in str(h.value) and "documents" in str(h.value) for h in at.sidebar.html)  # 5 seed + 7
    # again: nothing new
    at.button(key="pm_go").click().run()
    assert "0 added, 7 already in the corpus" in _texts(at.success)
    assert len(server.calls("efetch.fcgi")) == 1


def test_pubmed_form_is_off_without_network(app_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FSGS_KB_EUTILS_URL", f"http://127.0.0.1:{port}/")
    at = run_app()
    at.toggle(key="pm_on").set_value(True).run()
    assert "PubMed import is off" in _texts(at.info) and f"127.0.0.1:{port}" in _texts(at.info)
    assert at.button(key="pm_go").disabled and at.text_input(key="pm_query").disabled


def test_corpus_view_shows_provenance_and_saves_a_correction(app_env: Settings) -> None:  # noqa: F811
    catalogue = app_env.catalogue_path
    before = catalogue.read_text(encoding="utf-8")
    at = run_app()
    at.segmented_control(key="view").set_value("Corpus").run()
    table = at.dataframe[0].value
    row = table[table["File"] == CASE_REPORT].iloc[0]
    assert row["Type"] == "case report" and row["Type from"] == "catalogue"
    assert "catalogue: title" in row["Metadata from"]
    at.selectbox(key="meta_doc").set_value(CASE_REPORT).run()
    at.text_input(key="mf_year").set_value("2019")
    at.text_input(key="mf_journal").set_value("Test Journal of Nephrology Cases")
    at.multiselect(key="mf_flags").set_value(["erratum"])
    at.button[[b.label for b in at.button].index("Save to the catalogue")].click().run()
    assert not at.exception, at.exception
    assert "Saved year, journal, flags" in _texts(at.success)
    after = catalogue.read_text(encoding="utf-8")
    entry = yaml.safe_load(after)["documents"][CASE_REPORT]
    assert entry["year"] == 2019 and entry["journal"] == "Test Journal of Nephrology Cases"
    assert entry["flags"] == ["erratum"]
    assert entry["title"].startswith("Intravenous Rituximab")  # the rest of the entry is kept
    # every other line of the file (comments included) is unchanged
    assert before.split(f"  {CASE_REPORT}:")[0] == after.split(f"  {CASE_REPORT}:")[0]
    table = at.dataframe[0].value
    row = table[table["File"] == CASE_REPORT].iloc[0]
    assert row["Year"] == 2019 and row["Journal / publisher"] == "Test Journal of Nephrology Cases"
    assert row["Flags"] == "erratum" and row["Evidence level"] == "case report (single patient) (erratum published)"


def test_a_bad_year_is_refused(app_env: Settings) -> None:  # noqa: F811
    at = run_app()
    at.segmented_control(key="view").set_value("Corpus").run()
    at.selectbox(key="meta_doc").set_value(CASE_REPORT).run()
    at.text_input(key="mf_year").set_value("nineteen")
    at.button[[b.label for b in at.button].index("Save to the catalogue")].click().run()
    assert "must be four digits" in _texts(at.error)
