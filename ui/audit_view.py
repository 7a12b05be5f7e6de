"""The "Check a draft" view: paste or upload a draft, and read it back sentence by sentence with
a verdict badge, the citation as resolved, and the evidence passages beside it.

No checking logic here: the audit is kb.audit.audit_text, the exports kb.audit_export; this
module only collects the input and turns the AuditReport into (escaped) HTML.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import streamlit as st

from kb.audit_export import to_csv, to_markdown
from kb.audit_types import VERDICTS, AuditReport, AuditSentence
from kb.errors import KBError
from ui.render import esc, md_escape

if TYPE_CHECKING:
    from kb.api import KnowledgeBase

logger = logging.getLogger(__name__)

EXAMPLE = """# Calcineurin inhibitors in steroid-resistant FSGS

For steroid-resistant primary FSGS, calcineurin inhibitors should be used as the treatment of choice for at least 12 months [1].
Studies report remission rates of 70% with CNIs in steroid-resistant cases [1].
Tacrolimus is given at 0.05-0.1 mg/kg/day in two divided doses (Cattran 2003).
In steroid-resistant patients, 50% to 70% will have a response to cyclosporine in terms of a significant reduction in proteinuria (Cattran et al., 2003).
Belimumab induced complete remission in 35% of adults with primary FSGS [3].
What should be tried next?

References
1. Dr.Oracle Medical Advisory Board. What is the treatment approach for resistant Focal Segmental Glomerulosclerosis (FSGS)? 2025.
2. Cattran DC. Cyclosporine in the treatment of idiopathic focal segmental glomerulosclerosis. Semin Nephrol. 2003.
3. Smith J, Brown K. Novel biologics in adult FSGS: a cohort study. Kidney Med. 2019.
"""

LIMITS = ("Verdicts rest on exact evidence: key terms, named drugs and trials, and figures compared with "
          "their units and ranges. There is no entailment model: a negation or a reversed direction "
          "(\"increased\" for \"decreased\") is not detected, figures written as words are not compared, and a "
          "correct paraphrase in other words can come out as not found. Read the quotes before relying on a verdict.")

VERDICT_CLASS = {"supported-by-cited": "ok", "supported-elsewhere": "else", "numbers-differ": "num",
                 "not-found": "nf", "no-claim": "nc"}

CSS = """
<style>
.kb-audit { display: flex; flex-direction: column; gap: .55rem; }
.kb-arow { display: grid; grid-template-columns: minmax(0, 11fr) minmax(0, 9fr); gap: 1.2rem;
  border: 1px solid rgba(128,128,128,.22); border-radius: .6rem; padding: .65rem .85rem; }
.kb-arow.kb-v-nc { opacity: .7; padding: .35rem .85rem; }
.kb-asent { font-size: .98rem; line-height: 1.55; }
.kb-vbadge { display: inline-block; font-size: .7rem; font-weight: 700; letter-spacing: .02em;
  padding: .08rem .5rem; border-radius: 999px; margin-bottom: .3rem; }
.kb-v-ok .kb-vbadge { background: rgba(22,163,74,.15); color: #15803d; }
.kb-v-else .kb-vbadge { background: rgba(37,99,235,.14); color: #1d4ed8; }
.kb-v-num .kb-vbadge { background: rgba(220,38,38,.14); color: #b91c1c; }
.kb-v-nf .kb-vbadge { background: rgba(217,119,6,.16); color: #b45309; }
.kb-v-nc .kb-vbadge { background: rgba(107,114,128,.16); color: #4b5563; }
.kb-v-ok { border-left: 4px solid rgba(22,163,74,.6); }
.kb-v-else { border-left: 4px solid rgba(37,99,235,.55); }
.kb-v-num { border-left: 4px solid rgba(220,38,38,.65); }
.kb-v-nf { border-left: 4px solid rgba(217,119,6,.65); }
.kb-acite { font-size: .78rem; margin-top: .25rem; }
.kb-acite code { font-size: .75rem; }
.kb-acite .kb-unres { color: #b45309; }
.kb-areason { font-size: .8rem; opacity: .8; margin-top: .25rem; }
.kb-fig { font-variant-numeric: tabular-nums; font-weight: 650; }
.kb-fig-bad { color: #b91c1c; }
.kb-aev { font-size: .84rem; line-height: 1.5; border-left: 3px solid rgba(79,70,229,.4);
  padding: .2rem .6rem; margin: 0 0 .4rem 0; background: rgba(128,128,128,.05); border-radius: 0 .35rem .35rem 0; }
.kb-aev-head { font-size: .7rem; font-weight: 650; opacity: .7; }
.kb-counts { display: flex; flex-wrap: wrap; gap: .4rem; margin: .3rem 0 .6rem 0; }
.kb-counts .kb-vbadge { font-size: .78rem; margin: 0; }
</style>
"""


# ---------------------------------------------------------------- HTML (pure functions)

def _citations_html(s: AuditSentence, report: AuditReport) -> str:
    parts = []
    for c in s.citations:
        if c.sources:
            where = "; ".join(esc(report.titles.get(x, x)) for x in c.sources)
            status = " (ambiguous)" if c.status == "ambiguous" else ""
            parts.append(f"<div class=\"kb-acite\"><code>{esc(c.text)}</code> → {where}{status}"
                         f" <span class=\"kb-muted\">{esc(c.note)}</span></div>")
        else:
            parts.append(f"<div class=\"kb-acite\"><code>{esc(c.text)}</code> → "
                         f"<span class=\"kb-unres\">not resolved</span> <span class=\"kb-muted\">{esc(c.note)}</span></div>")
    return "".join(parts)


def _figures_html(s: AuditSentence) -> str:
    if not s.figures:
        return ""
    items = []
    for f in s.figures:
        cls = "kb-fig" if f.consistent else "kb-fig kb-fig-bad"
        items.append(f"<span class=\"{cls}\">{esc(f.claim)}</span> vs "
                     f"<span class=\"{cls}\">{esc(f.source_figure) or 'not stated'}</span>")
    return "<div class=\"kb-acite\">Figures: " + " · ".join(items) + "</div>"


def _evidence_html(s: AuditSentence) -> str:
    if not s.evidence:
        return "<div class=\"kb-muted\">No passage shown.</div>"
    out = []
    for e in s.evidence:
        out.append(f"<div class=\"kb-aev\"><div class=\"kb-aev-head\">{esc(e.title or e.source)} · "
                   f"{esc(e.source)} · chars {e.start}–{e.end} · key terms {e.coverage:.0%}</div>"
                   f"{esc(' '.join(e.quote.split()))}</div>")
    return "".join(out)


def sentence_html(s: AuditSentence, report: AuditReport) -> str:
    cls = VERDICT_CLASS[s.verdict]
    label = VERDICTS[s.verdict][0]
    left = (f"<div><span class=\"kb-vbadge\">{esc(label)}</span><div class=\"kb-asent\">{esc(s.text)}</div>"
            f"{_citations_html(s, report)}{_figures_html(s)}<div class=\"kb-areason\">{esc(s.reason)}</div></div>")
    right = "" if s.verdict == "no-claim" else _evidence_html(s)
    return (f"<div class=\"kb-arow kb-v-{cls}\" data-verdict=\"{esc(s.verdict)}\">{left}"
            f"<div>{right}</div></div>")


def counts_html(report: AuditReport) -> str:
    items = [f"<span class=\"kb-v-{VERDICT_CLASS[v]}\"><span class=\"kb-vbadge\">{esc(VERDICTS[v][0])}: {n}</span></span>"
             for v, n in report.counts().items() if n]
    return "<div class=\"kb-counts\">" + "".join(items) + "</div>"


def audit_html(report: AuditReport) -> str:
    return "<div class=\"kb-audit\">" + "".join(sentence_html(s, report) for s in report.sentences) + "</div>"


# ---------------------------------------------------------------- the view

def _run(base: "KnowledgeBase", name: str, text: str) -> None:
    from kb.audit import audit_text

    try:
        with st.spinner("Checking each sentence against the corpus…"):
            st.session_state.audit_report = audit_text(base, text, name=name)
        st.session_state.pop("audit_error", None)
    except KBError as e:
        st.session_state.audit_error = str(e)
    except Exception as e:  # keep the page up; the error is logged
        logger.exception("audit failed")
        st.session_state.audit_error = f"The audit failed ({type(e).__name__}); the error was logged."


def _load_example() -> None:
    st.session_state.audit_text = EXAMPLE


def render(base: "KnowledgeBase") -> None:
    from kb.audit_input import DRAFT_SUFFIXES, check_draft, read_draft

    st.html(CSS)
    st.subheader("Check a draft")
    st.caption("Paste a paragraph or upload a .txt, .md or .docx draft. Each sentence gets one verdict, with the "
               "citation as resolved (numbered citations through the draft's own reference list) and the passages "
               "of the corpus it rests on.")
    st.info(md_escape(LIMITS), icon=":material/info:")
    limit = base.settings.audit.max_draft_chars
    text = st.text_area("Draft", key="audit_text", height=180, placeholder="Paste the text to check, with its "
                        "citations ([2], (Cattran 2003), a DOI or PMID) and its reference list if it has one.")
    upload = st.file_uploader("or upload a draft", type=[s.lstrip(".") for s in DRAFT_SUFFIXES], key="audit_file")
    with st.container(horizontal=True, gap="small"):
        go = st.button("Check the draft", key="audit_go", type="primary", icon=":material/fact_check:")
        st.button("Load an example", key="audit_example", on_click=_load_example, type="tertiary")
    if go:
        try:
            if upload is not None:
                name, draft = upload.name, read_draft(upload.name, upload.getvalue(), limit)
            else:
                name, draft = "", check_draft("", text or "", limit)
        except KBError as e:
            st.session_state.audit_error = str(e)
            st.session_state.pop("audit_report", None)
        else:
            _run(base, name, draft)
    error = st.session_state.get("audit_error")
    if error:
        st.error(md_escape(error), icon=":material/error:")
        return
    report: AuditReport | None = st.session_state.get("audit_report")
    if report is None:
        return
    st.html(counts_html(report))
    stem = "fsgs-audit" + (f"-{report.name.rsplit('.', 1)[0]}" if report.name else "")
    with st.container(horizontal=True, gap="small"):
        st.download_button("Audit CSV", data=lambda: to_csv(report), file_name=f"{stem}.csv", mime="text/csv",
                           key="audit-dl-csv", icon=":material/download:", type="tertiary", on_click="ignore")
        st.download_button("Audit Markdown", data=lambda: to_markdown(report), file_name=f"{stem}.md",
                           mime="text/markdown", key="audit-dl-md", icon=":material/download:", type="tertiary",
                           on_click="ignore")
    st.html(audit_html(report))
    if report.references:
        with st.expander(f"The draft's reference list ({len(report.references)} entries)"):
            st.dataframe([{"No.": r.n, "As written": r.raw, "Corpus document": ", ".join(r.sources) or "—",
                           "Resolution": r.note} for r in report.references], hide_index=True, width="stretch")
