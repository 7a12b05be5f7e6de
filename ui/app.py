"""The chat UI (`make run`): ask, read the cited answer, check each quote in its source.

No retrieval logic here: questions go to `KnowledgeBase.ask`, uploads to `ingest.build.add_file`;
ui/render.py turns answers into (escaped) HTML and ui/export.py into files.

Index location comes from Settings (FSGS_KB_INDEX / FSGS_KB_CORPUS). The embedding model is the
one the index records; FSGS_KB_EMBEDDER="module:callable" names a factory to use instead (tests
set it to "tests.fakes:FakeEmbedder" so they need no model; a deployment could point it at
another implementation of kb.embed.Embedder).
"""
from __future__ import annotations

import logging
import sys
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run ui/app.py` works without PYTHONPATH too
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from kb.config import Settings, get_settings  # noqa: E402
from kb.errors import KBError  # noqa: E402
from kb.question_input import clean_question  # noqa: E402
from kb.render import unmatched_line  # noqa: E402
from kb.source_check import STALE_NOTE  # noqa: E402
from kb.types import Answer, Filters  # noqa: E402
from ui import Turn, corpus_view as corpus_panel, export, pubmed_view, render  # noqa: E402

if TYPE_CHECKING:
    from kb.api import KnowledgeBase
    from streamlit.delta_generator import DeltaGenerator

    from kb.embed import Embedder

logger = logging.getLogger(__name__)

EXAMPLES = (
    "Compare remission rates for CNIs versus rituximab",
    "What trough level should tacrolimus be kept at?",
    "How is steroid-resistant FSGS defined?",
    "What dose of cyclosporine is used in FSGS?",
)
VIEWS = ("Chat", "Corpus", "References", "Check a draft")
USER_AVATAR = ":material/person:"
ASSISTANT_AVATAR = ":material/menu_book:"

APP_CSS = """
<style>
[data-testid="stMainBlockContainer"] { max-width: 76rem; padding-top: 2.2rem; }
.kb-header { display: flex; align-items: baseline; gap: .8rem; flex-wrap: wrap;
  border-bottom: 1px solid rgba(128,128,128,.2); padding-bottom: .6rem; margin-bottom: .4rem; }
.kb-h1 { font-size: 1.45rem; font-weight: 700; letter-spacing: -.01em; }
.kb-sub { font-size: .88rem; opacity: .7; }
.kb-brand { font-weight: 700; font-size: 1.05rem; }
.kb-side-stats { font-size: .82rem; line-height: 1.6; }
.kb-side-stats b { font-variant-numeric: tabular-nums; }
</style>
"""


# ---------------------------------------------------------------- loading (once per server)

@st.cache_resource(show_spinner="Loading the embedding model…")
def _cached_embedder(model_name: str, spec: str) -> "Embedder":
    if spec:
        from kb.embed import embedder_factory

        return embedder_factory(spec)()
    from kb.embed import load_embedder

    return load_embedder(model_name)


def get_embedder(model_name: str) -> "Embedder":
    spec = get_settings().embedder_factory
    return _cached_embedder("" if spec else model_name, spec)


def _index_version(index_dir: Path) -> tuple[str, str]:
    """(folder the index link points at, manifest checksum): the cache key of an opened index,
    so a rebuild or an upload (which swaps the link) is picked up on the next rerun."""
    from kb import store

    resolved = index_dir.resolve()
    manifest = store.read_manifest(resolved if resolved.exists() else index_dir)
    return str(resolved), str(manifest.get("checksum") or manifest.get("build_time", ""))


@st.cache_resource(show_spinner="Loading the knowledge base…", max_entries=2)
def _open_kb(version_dir: str, checksum: str, spec: str) -> "KnowledgeBase":
    from kb import store
    from kb.api import open_kb

    model = str(store.read_manifest(Path(version_dir))["embedding"]["model"])
    base = open_kb(Path(version_dir), embedder=get_embedder(model), settings=get_settings())
    base.search("focal segmental glomerulosclerosis treatment", k=1)  # warm up: the first answer is fast
    logger.info("opened index %s (%s, %d chunks)", version_dir, model, base.info.n_chunks)
    return base


def load_base(settings: Settings) -> tuple["KnowledgeBase | None", str]:
    """The shared KnowledgeBase, or None and a message saying what is wrong."""
    try:
        version, checksum = _index_version(settings.index_dir)
        return _open_kb(version, checksum, get_settings().embedder_factory), ""
    except KBError as e:
        return None, str(e)
    except Exception as e:  # e.g. a model that fails to load: say so, keep the page up
        logger.exception("could not open the index at %s", settings.index_dir)
        return None, f"could not open the index at {settings.index_dir}: {e}"


@st.cache_resource
def _ingest_lock() -> threading.Lock:
    """One build at a time per server: two sessions uploading must not race on the index (other
    processes, e.g. `make ingest`, are kept out by the index lock the ingest entry points take)."""
    return threading.Lock()


# ---------------------------------------------------------------- actions

def _build_settings(base: "KnowledgeBase | None", settings: Settings) -> Settings:
    """Ingest with the model the current index was built with (or the hook's, for a new one)."""
    if base is not None:
        return replace(settings, model_name=base.info.model_name)
    if get_settings().embedder_factory:
        return replace(settings, model_name=get_embedder("").name)
    return settings


def ingest_upload(name: str, data: bytes, base: "KnowledgeBase | None", settings: Settings) -> tuple[bool, str]:
    """Save + index an uploaded file. A bad file gets the reason and leaves corpus and index as
    they were (add_file validates before writing anything)."""
    from ingest.build import add_file

    build = _build_settings(base, settings)
    with _ingest_lock():
        try:
            saved, report = add_file(name, data, corpus_dir=settings.corpus_dir, index_dir=settings.index_dir,
                                     embedder=lambda: get_embedder(build.model_name), settings=build)
        except KBError as e:
            return False, render.md_escape(f"Not added — {e}. The corpus and the index are unchanged.")
        except Exception as e:
            logger.exception("upload of %r failed", name)
            return False, render.md_escape(f"Not added — {name}: {e}. The corpus and the index are unchanged.")
    _open_kb.clear()  # the next run opens the swapped-in index; the old one is released
    return True, f"Added **{render.md_escape(saved)}** — {render.md_escape(report.summary())}"


def build_index(base: "KnowledgeBase | None", settings: Settings) -> tuple[bool, str]:
    from ingest.build import ingest_corpus

    build = _build_settings(base, settings)
    with _ingest_lock():
        try:
            report = ingest_corpus(settings.corpus_dir, settings.index_dir, settings=build, show_progress=False,
                                   embedder=lambda: get_embedder(build.model_name))
        except KBError as e:
            return False, str(e)
    _open_kb.clear()
    return True, report.summary()


def import_from_pubmed(query: str, count: int, on_progress: Callable[[int, int, str], None],
                       base: "KnowledgeBase | None", settings: Settings):  # -> ingest.pubmed.ImportReport
    """Fetch PubMed records into the corpus and re-index (one build at a time)."""
    from ingest.pubmed import import_pubmed

    build = _build_settings(base, settings)
    with _ingest_lock():
        report = import_pubmed(query, max_records=count, settings=build, show_progress=False,
                               on_progress=on_progress, embedder=lambda: get_embedder(build.model_name))
    _open_kb.clear()
    return report


def save_correction(source: str, changes: dict, base: "KnowledgeBase | None", settings: Settings) -> tuple[bool, str]:
    """Write a metadata correction to the catalogue and re-index (vectors are reused)."""
    from ingest.catalogue import write_entry
    from ingest.lock import index_lock

    with _ingest_lock():
        try:
            with index_lock(settings.index_dir, settings.index_lock_wait_s):  # not while an ingest reads it
                write_entry(settings.catalogue_path, source, changes)
        except KBError as e:
            return False, render.md_escape(f"Not saved — {e}")
    ok, message = build_index(base, settings)
    fields = ", ".join(changes)
    return ok, render.md_escape(f"Saved {fields} of {source} to the catalogue. {message}")


def ask(base: "KnowledgeBase", question: str, filters: Filters) -> Turn:
    """Answer, and keep the cited documents with it so the turn renders on its own later."""
    try:
        answer = base.ask(question, filters)
    except KBError as e:
        answer = Answer(question=question, text="", error=str(e))
    except Exception:
        logger.exception("answering failed")
        answer = Answer(question=question, text="", error="Something went wrong while answering "
                        "(the error was logged). Please try again or rephrase the question.")
    docs, passages = {}, {}
    for c in (*answer.citations, *answer.closest):
        try:
            docs.setdefault(c.source, base.document(c.source))
            if c.chunk_id:
                chunk = base.chunk(c.chunk_id)
                passages[c.chunk_id] = (chunk.start, chunk.end)
        except KBError:
            logger.warning("citation %s of %r is not in the index", c.n, c.source)
    flagged = {source: spans for source in docs if (spans := base.flagged_spans(source))}
    return Turn(question=question, answer=answer, documents=docs, passages=passages, filters=filters,
                asked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), flagged=flagged)


# ---------------------------------------------------------------- sidebar

def _fmt_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso or "unknown"


def filter_widgets(base: "KnowledgeBase") -> Filters:
    metas = [d.meta for d in base.documents]
    types = sorted({m.doc_type for m in metas if m.doc_type})
    levels = sorted({m.evidence_level for m in metas if m.evidence_level})
    years = sorted({m.year for m in metas if m.year})
    st.markdown("**Filters**")
    sel_types = st.multiselect("Document type", types, key="f_types", placeholder="Any type")
    sel_levels = st.multiselect("Evidence level", levels, key="f_levels", placeholder="Any level")
    year_min = year_max = None
    if len(years) >= 2:
        # The key carries the bounds: a new document outside them gets a fresh full-range slider.
        lo, hi = st.slider("Year", years[0], years[-1], (years[0], years[-1]), key=f"f_years_{years[0]}_{years[-1]}")
        if (lo, hi) != (years[0], years[-1]):
            year_min, year_max = lo, hi
            st.caption("Undated documents are left out while a year range is set.")
    filters = Filters(doc_types=tuple(sel_types), evidence_levels=tuple(sel_levels),
                      year_min=year_min, year_max=year_max)
    allowed = sum(1 for d in base.documents if filters.accepts(d.meta, d.source))
    if not filters.is_empty():
        st.caption(f"Answers use {allowed} of {len(metas)} documents.")
    return filters


def corpus_summary(base: "KnowledgeBase") -> None:
    info = base.info
    st.html(
        '<div class="kb-side-stats">'
        f"<b>{info.n_documents}</b> documents · <b>{info.n_chunks}</b> passages · "
        f"<b>{info.n_references}</b> references<br>"
        f"Index built {render.esc(_fmt_time(info.build_time))}<br>"
        f"Model <code>{render.esc(info.model_name)}</code></div>")


def upload_widget(base: "KnowledgeBase | None", settings: Settings) -> None:
    with st.expander("Add a document", icon=":material/upload_file:"):
        st.caption("Text, Markdown, HTML, PDF or a PubMed export (nbib, MEDLINE, XML). It is saved "
                   "into the corpus folder and indexed; answers use it right away.")
        n = st.session_state.setdefault("upload_n", 0)
        from ingest.loaders import SUPPORTED_SUFFIXES

        uploaded = st.file_uploader("Source file", type=sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES),
                                    key=f"upload_{n}", label_visibility="collapsed",
                                    max_upload_size=max(1, settings.max_file_bytes // 2**20))
        if st.button("Add to the knowledge base", key="upload_go", disabled=uploaded is None,
                     type="primary", width="stretch"):
            assert uploaded is not None
            with st.spinner("Indexing…"):
                ok, message = ingest_upload(uploaded.name, uploaded.getvalue(), base, settings)
            if ok:
                st.session_state.flash = message
                st.session_state.upload_n = n + 1  # a fresh, empty uploader
                st.rerun()
            st.error(message, icon=":material/error:")
        flash = st.session_state.pop("flash", None)
        if flash:
            st.success(flash, icon=":material/check_circle:")


def export_buttons(turns: list[Turn], stem: str, key: str) -> None:
    """Download buttons; the file is made only when clicked (deferred), not on every rerun."""
    snapshot = tuple(turns)
    with st.container(horizontal=True, gap="small"):
        for fmt in export.FORMATS:
            st.download_button(fmt.label, data=(lambda f=fmt: f.render(snapshot)),
                               file_name=f"{stem}.{fmt.extension}", mime=fmt.mime, key=f"{key}-{fmt.key}",
                               icon=":material/download:", type="tertiary", on_click="ignore")


def sidebar(base: "KnowledgeBase | None", settings: Settings) -> tuple[str, Filters, "DeltaGenerator"]:
    with st.sidebar:
        st.html('<div class="kb-brand">FSGS knowledge base</div>')
        view = st.segmented_control("View", VIEWS, default="Chat", key="view", required=True,
                                    label_visibility="collapsed", width="stretch") or "Chat"
        filters = Filters()
        if base is not None:
            filters = filter_widgets(base)
            st.divider()
            corpus_summary(base)
        upload_widget(base, settings)
        pubmed_view.pubmed_widget(settings, lambda q, n, cb: import_from_pubmed(q, n, cb, base, settings))
        slot = st.container()  # filled after the chat view ran, so it includes this run's answer
    return view, filters, slot


def conversation_tools(slot: "DeltaGenerator") -> None:
    turns = st.session_state.get("turns", [])
    if not turns:
        return
    with slot:
        st.divider()
        st.markdown("**This conversation**")
        export_buttons(turns, "fsgs-conversation", "dl-all")
        if st.button("Clear conversation", key="clear", icon=":material/delete_sweep:", type="tertiary"):
            st.session_state.turns = []
            st.rerun()


# ---------------------------------------------------------------- main views

def render_answer(turn: Turn, i: int) -> None:
    a, mid = turn.answer, f"a{i}"
    if a.error:  # a rejected question's text says why (empty, too long, no words)
        st.error(render.md_escape(a.text or a.error), icon=":material/error:")
        return
    if a.abstained:
        st.info(render.md_escape(a.text or "The indexed sources have no passage that answers this question."),
                icon=":material/search_off:")
        if a.search_terms and not all(t in a.text for t in a.search_terms):  # else the text lists them
            st.html(render.search_terms_html(a.search_terms))
        if a.closest:
            st.html(render.sources_html(turn, mid, closest=True))
        return
    if a.comparison:
        st.html(render.comparison_html(a.comparison, mid, turn.documents))
    for note in a.notes:
        if note.lower().startswith("sources differ") or note == STALE_NOTE:
            st.warning(render.md_escape(note), icon=":material/warning:")
        else:
            st.info(render.md_escape(note), icon=":material/info:")
    left, right = st.columns([11, 9], gap="large")
    with left:
        st.html(render.answer_html(a, mid))
        n_docs = len({c.source for c in a.citations})
        details = [f"{len(a.citations)} passages cited from {n_docs} document{'s' if n_docs != 1 else ''}"]
        if a.mode != "extractive":
            details.append("written by a language model; each sentence was checked against its sources "
                           "and unsupported ones are marked unverified")
        if turn.filters is not None and not turn.filters.is_empty():
            details.append("filtered: " + render.filters_summary(turn.filters))
        if unmatched := unmatched_line(a):
            details.append(unmatched)
        st.caption(render.md_escape(" · ".join(details)))
        export_buttons([turn], f"fsgs-answer-{i + 1}", f"dl-{i}")
    with right:
        st.html(render.sources_html(turn, mid))


def render_turn(turn: Turn, i: int) -> None:
    with st.chat_message("user", avatar=USER_AVATAR):
        st.markdown(render.md_escape(turn.question))
    with st.chat_message("assistant", avatar=ASSISTANT_AVATAR):
        render_answer(turn, i)


def _set_pending(question: str) -> None:
    st.session_state.pending = question


def empty_screen() -> None:
    st.markdown("")
    st.markdown("##### Try one of these")
    cols = st.columns(2)
    for i, q in enumerate(EXAMPLES):
        cols[i % 2].button(q, key=f"example_{i}", on_click=_set_pending, args=(q,), width="stretch",
                           icon=":material/chat_bubble:")
    st.caption("Answers quote the indexed sources sentence by sentence, each with its evidence level. "
               "They support, and do not replace, clinical judgement.")


def chat_view(base: "KnowledgeBase", filters: Filters) -> None:
    turns: list[Turn] = st.session_state.setdefault("turns", [])
    typed = st.chat_input("Ask a question about FSGS…", key="question")
    question = typed if typed is not None else st.session_state.pop("pending", None)
    if question is not None:  # shown and asked in the one form kb.question_input gives any text
        question = clean_question(str(question)) or None  # empty questions are ignored
    if not turns and question is None:
        empty_screen()
        return
    for i, turn in enumerate(turns):
        render_turn(turn, i)
    if question is None:
        return
    question = str(question)
    with st.chat_message("user", avatar=USER_AVATAR):
        st.markdown(render.md_escape(question))
    with st.chat_message("assistant", avatar=ASSISTANT_AVATAR):
        with st.spinner("Searching the sources…"):
            turn = ask(base, question, filters)
        turns.append(turn)
        render_answer(turn, len(turns) - 1)


def corpus_view(base: "KnowledgeBase") -> None:
    info, manifest = base.info, base.manifest
    st.subheader("Corpus")
    st.caption(render.md_escape(f"Index built {_fmt_time(info.build_time)} with {info.model_name} "
                                f"({info.dim} dimensions), {info.index_type} vector index + BM25."))
    c = st.columns(3)
    c[0].metric("Documents", info.n_documents)
    c[1].metric("Passages", info.n_chunks)
    c[2].metric("Reference-list entries", info.n_references)
    corpus_panel.corpus_documents(base, get_settings(), lambda src, ch: save_correction(src, ch, base, get_settings()))
    st.caption(render.md_escape(f"Chunking {info.chunking} · index folder {info.path}"))
    for skipped in manifest.get("skipped", []):
        st.warning(render.md_escape(f"Not indexed: {skipped.get('source')} — {skipped.get('reason')}"))
    for source, why in base.source_status.stale:  # its quotes carry the same warning
        st.warning(render.md_escape(f"{source} — {why}"), icon=":material/warning:")
    for source in sorted({c.source for c in base.contents.chunks if c.flagged}):
        st.warning(render.md_escape(f"{source}: some of its text addresses the reader or a model; "
                                    "that text is not used in answers"), icon=":material/warning:")


def references_view(base: "KnowledgeBase") -> None:
    st.subheader("Reference lists")
    st.caption("The reference lists parsed out of each document (kept out of answer retrieval), "
               "with their character offsets in the document text for auditing.")
    refs = base.references()
    if not refs:
        st.info("No reference lists were found in the indexed documents.")
        return
    titles = {d.source: d.meta.title or d.source for d in base.documents}
    by_doc: dict[str, list] = {}
    for r in refs:
        by_doc.setdefault(r.source, []).append(r)
    left, right = st.columns([3, 2])
    pick = left.selectbox("Document", ["", *by_doc], key="ref_doc",
                          format_func=lambda s: f"All documents ({len(refs)} entries)" if not s
                          else f"{titles.get(s, s)} ({len(by_doc[s])})")
    needle = right.text_input("Search", key="ref_q", placeholder="author, title, journal or year").strip().lower()
    config = {"No.": st.column_config.NumberColumn(width="small"),
              "Year": st.column_config.NumberColumn(format="%d", width="small"),
              "Title": st.column_config.TextColumn(width="large"),
              "As written": st.column_config.TextColumn(width="large")}
    shown = 0
    for source, entries in by_doc.items():
        if pick and source != pick:
            continue
        rows = [{"No.": r.n, "Authors": "; ".join(r.authors), "Title": r.title, "Journal": r.journal,
                 "Year": r.year, "As written": r.raw, "Offsets": f"{r.start}–{r.end}"}
                for r in entries if not needle or needle in r.raw.lower()]
        if not rows:
            continue
        shown += len(rows)
        st.markdown(f"**{render.md_escape(titles.get(source, source))}**")
        st.caption(render.md_escape(f"{source} · {len(rows)} of {len(entries)} entries"))
        st.dataframe(rows, hide_index=True, width="stretch", column_config=config)
    if not shown:
        st.info("No reference matches the search.")


def missing_index(message: str, base: "KnowledgeBase | None", settings: Settings) -> None:
    st.error(render.md_escape(f"The knowledge base is not available: {message}"), icon=":material/error:")
    st.markdown(
        "**How to fix it:** build the index from the corpus folder with `make ingest` "
        "(or `python -m ingest`), or point `FSGS_KB_INDEX` at an existing index folder, then reload "
        "this page. You can also build it from here:")
    st.caption(render.md_escape(f"Corpus folder: {settings.corpus_dir} · index folder: {settings.index_dir}"))
    if st.button("Build the index now", key="build_index", icon=":material/build:"):
        with st.spinner("Building the index…"):
            ok, msg = build_index(base, settings)
        if ok:
            st.rerun()
        st.error(render.md_escape(msg))


def main() -> None:
    st.set_page_config(page_title="FSGS knowledge base", page_icon="🩺", layout="wide")
    st.html(render.CSS + APP_CSS)
    settings = get_settings()
    base, error = load_base(settings)
    view, filters, slot = sidebar(base, settings)
    st.html('<div class="kb-header"><div class="kb-h1">FSGS literature assistant</div>'
            '<div class="kb-sub">Answers quoted from the indexed sources — every sentence cited, '
            "every source with its evidence level</div></div>")
    if base is None:
        missing_index(error, base, settings)
    elif view == "Corpus":
        corpus_view(base)
    elif view == "References":
        references_view(base)
    elif view == "Check a draft":
        from ui import audit_view

        audit_view.render(base)
    else:
        chat_view(base, filters)
    conversation_tools(slot)


main()
