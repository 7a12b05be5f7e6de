"""The "Check a draft" view through AppTest, over the bundled corpus indexed with the fake
embedder (fixtures shared with tests/test_ui_app.py)."""
from __future__ import annotations

import csv
import io
import re

from streamlit.testing.v1 import AppTest

from kb.audit_types import VERDICTS
from kb.config import Settings
from tests.test_ui_app import app_env, downloads, html_of, run_app  # noqa: F401  (fixtures)


def audit_view() -> AppTest:
    at = run_app()
    at.segmented_control(key="view").set_value("Check a draft").run()
    assert not at.exception, at.exception
    return at


def test_example_draft_is_annotated_sentence_by_sentence(app_env: Settings) -> None:
    at = audit_view()
    assert any("no entailment model" in i.value for i in at.info)  # the limits are stated
    at.button(key="audit_example").click().run()
    at.button(key="audit_go").click().run()
    assert not at.exception and not at.error
    report = at.session_state["audit_report"]
    assert len(report.sentences) == 7  # a heading, 5 sentences, a question; the references are not audited
    body = html_of(at, "kb-audit")[0]
    verdicts = re.findall(r'data-verdict="([a-z-]+)"', body)
    assert verdicts == [s.verdict for s in report.sentences] and all(v in VERDICTS for v in verdicts)
    by_text = {s.text: s for s in report.sentences}
    s70 = next(s for t, s in by_text.items() if "70% with CNIs" in t)
    assert s70.verdict == "numbers-differ" and "40-50%" in s70.reason
    bel = next(s for t, s in by_text.items() if t.startswith("Belimumab"))
    assert bel.verdict == "not-found" and not bel.citations[0].sources
    assert "not resolved" in body
    docs = {d.source: d for d in app_env_docs(at)}
    for s in report.sentences:
        for e in s.evidence:
            assert docs[e.source].text[e.start:e.end] == e.quote
    assert any("Numbers differ: 1" in h for h in html_of(at, "kb-counts"))
    assert at.expander  # the draft's reference list, resolved


def app_env_docs(at: AppTest):  # type: ignore[no-untyped-def]
    from kb.api import open_kb
    from kb.config import get_settings
    from tests.fakes import FakeEmbedder

    return open_kb(get_settings().index_dir, embedder=FakeEmbedder()).documents


def test_exports(app_env: Settings, downloads: dict) -> None:  # noqa: F811
    at = audit_view()
    at.button(key="audit_example").click().run()
    at.button(key="audit_go").click().run()
    assert {"fsgs-audit.csv", "fsgs-audit.md"} <= set(downloads)
    rows = list(csv.DictReader(io.StringIO(str(downloads["fsgs-audit.csv"]()))))
    report = at.session_state["audit_report"]
    assert {int(r["sentence_no"]) for r in rows} == set(range(1, len(report.sentences) + 1))
    assert all(r["verdict"] in VERDICTS for r in rows)
    md = str(downloads["fsgs-audit.md"]())
    assert md.startswith("# Citation audit") and "Not found in the corpus" in md


def test_docx_upload(app_env: Settings) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("Tacrolimus is given at 0.05-0.1 mg/kg/day in two divided doses [1].")
    d.add_heading("References", level=2)
    d.add_paragraph("Dr.Oracle. What is the treatment approach for resistant Focal Segmental "
                    "Glomerulosclerosis (FSGS)? 2025.", style="List Number")
    buf = io.BytesIO()
    d.save(buf)
    at = audit_view()
    at.file_uploader(key="audit_file").set_value(("draft.docx", buf.getvalue(),
                                                   "application/vnd.openxmlformats-officedocument."
                                                   "wordprocessingml.document")).run()
    at.button(key="audit_go").click().run()
    assert not at.exception and not at.error
    report = at.session_state["audit_report"]
    assert report.name == "draft.docx" and len(report.sentences) == 1
    assert report.sentences[0].resolved_sources == ("000_af2669614d1c7faa.txt",)


def test_empty_and_bad_input_get_a_message(app_env: Settings) -> None:
    at = audit_view()
    at.button(key="audit_go").click().run()
    assert at.error and "empty" in at.error[0].value and "audit_report" not in at.session_state
    at.file_uploader(key="audit_file").set_value(("draft.docx", b"not a docx", "application/octet-stream")).run()
    at.button(key="audit_go").click().run()
    assert at.error and "not a readable" in at.error[0].value


def test_draft_text_is_never_rendered_as_html(app_env: Settings) -> None:
    at = audit_view()
    at.text_area(key="audit_text").set_value(
        "Cyclosporine <script>alert('x')</script> is used in FSGS <img src=x onerror=alert(1)> [1].").run()
    at.button(key="audit_go").click().run()
    assert not at.exception
    for h in at.html:
        assert "<script>alert" not in h.value and "<img" not in h.value
    assert "&lt;script&gt;" in html_of(at, "kb-audit")[0]
