"""The "Add from PubMed" form (sidebar): a query and a maximum count, progress while records
are fetched and indexed, then what was added, skipped or failed. Off, with a note, when NCBI
E-utilities cannot be reached. The import itself is ingest.pubmed.import_pubmed, run by the
callable app.py passes in (it holds the build lock and the embedder)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import streamlit as st

from ui import render

if TYPE_CHECKING:
    from ingest.pubmed import ImportReport, ProgressCallback
    from kb.config import Settings

RunImport = Callable[[str, int, "ProgressCallback"], "ImportReport"]
MAX_COUNT = 500  # per import from the UI; the CLI takes more
DEFAULT_COUNT = 20


@st.cache_data(ttl=60, show_spinner=False)
def _reachable(url: str) -> tuple[bool, str]:
    """Checked at most once a minute per address (one small EInfo request)."""
    from ingest.pubmed import network_available
    from kb.config import get_settings

    settings = get_settings()
    return network_available(settings) if settings.pubmed.eutils_url == url else (False, "settings changed")


def report_markdown(report: "ImportReport", titles: dict[str, str]) -> str:
    """What one import did, for the success/warning box (titles of the added records)."""
    lines = [render.md_escape(f"{len(report.added)} added, {len(report.skipped)} already in the corpus "
                              f"({report.found} found, {report.requested} considered).")]
    for pmid in report.added[:30]:
        lines.append(f"- PMID {pmid}: {render.md_escape(titles.get(pmid, ''))}")
    if len(report.added) > 30:
        lines.append(f"- … and {len(report.added) - 30} more")
    for failure in report.failed:
        lines.append(render.md_escape(f"Not added: {failure}"))
    if report.ingest_error:
        lines.append(render.md_escape(f"The index was not updated: {report.ingest_error}"))
    return "\n".join(lines)


def _titles(settings: "Settings", pmids: tuple[str, ...]) -> dict[str, str]:
    """Titles of stored records, read back from their files (the index may still be reloading)."""
    from ingest.loaders import load_file
    from kb.errors import KBError

    out: dict[str, str] = {}
    for pmid in pmids[:30]:
        try:
            out[pmid] = load_file(settings.corpus_dir / settings.pubmed.subdir / f"{pmid}.xml",
                                  settings.max_file_bytes)[0].meta.title
        except KBError:
            out[pmid] = ""
    return out


def pubmed_widget(settings: "Settings", run_import: RunImport) -> None:
    with st.expander("Add from PubMed", icon=":material/travel_explore:"):
        st.caption("Searches PubMed (NCBI E-utilities) and adds each record — title, abstract and its "
                   "metadata — to the corpus, then indexes it. Records already present are skipped.")
        # The only networked feature: nothing is sent until the user switches it on.
        if not st.toggle("Connect to PubMed", key="pm_on", help="Uses the network (NCBI E-utilities)."):
            return
        ok, why = _reachable(settings.pubmed.eutils_url)
        if not ok:
            st.info(render.md_escape(f"PubMed import is off: {why}. The rest of the app works offline."),
                    icon=":material/cloud_off:")
        query = st.text_input("PubMed query", key="pm_query", disabled=not ok,
                              placeholder="focal segmental glomerulosclerosis AND rituximab")
        count = st.number_input("Maximum records", min_value=1, max_value=MAX_COUNT, value=DEFAULT_COUNT,
                                step=10, key="pm_max", disabled=not ok)
        if st.button("Search and add", key="pm_go", disabled=not ok or not (query or "").strip(),
                     type="primary", width="stretch", icon=":material/add:"):
            bar = st.progress(0.0, text="Searching PubMed…")

            def progress(done: int, total: int, message: str) -> None:
                bar.progress(min(1.0, done / total) if total else 1.0, text=f"{done}/{total} records · {message}")

            from kb.errors import KBError

            try:
                report = run_import(str(query).strip(), int(count), progress)
            except KBError as e:
                bar.empty()
                st.error(render.md_escape(f"PubMed import failed: {e}"), icon=":material/error:")
                return
            bar.progress(1.0, text="Done")
            st.session_state.pm_result = (report_markdown(report, _titles(settings, report.added)), bool(report.failed or report.ingest_error))
            st.rerun()
        result = st.session_state.get("pm_result")
        if result:
            text, problems = result
            (st.warning if problems else st.success)(text, icon=":material/warning:" if problems else ":material/check_circle:")
