"""The corpus view's document table (every document's metadata and where each value came from:
catalogue, PubMed record or inferred from the text) and the form that corrects a document's
metadata, written back to corpus/catalogue.yaml (ingest.catalogue.write_entry) and re-indexed
by the callable app.py passes in."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import streamlit as st

from kb.evidence_types import CONCERN, ERRATUM, EVIDENCE_TYPES, INFERRED, RETRACTED
from kb.types import DocMeta
from ui import render

if TYPE_CHECKING:
    from kb.api import KnowledgeBase
    from kb.config import Settings

SaveCorrection = Callable[[str, dict[str, Any]], tuple[bool, str]]
ORIGIN = {"catalogue": "catalogue", "pubmed": "PubMed record", "inferred": "inferred"}
FIELD_LABELS = {"title": "Title", "authors": "Authors (one per line)", "year": "Year", "journal": "Journal",
                "publisher": "Publisher", "doi": "DOI", "pmid": "PMID", "url": "URL",
                "doc_type": "Document type", "evidence_level": "Evidence level"}


def origin_summary(meta: DocMeta) -> str:
    """'catalogue: title, year · inferred: doc_type' — where the filled fields came from."""
    by: dict[str, list[str]] = {}
    for name, origin in meta.provenance:
        by.setdefault(ORIGIN.get(origin, origin), []).append(name)
    return " · ".join(f"{k}: {', '.join(v)}" for k, v in by.items())


def document_rows(base: "KnowledgeBase") -> list[dict[str, Any]]:
    sources = base.manifest.get("sources", {})
    rows = []
    for d in base.documents:
        m = d.meta
        rows.append({
            "Title": m.title, "Type": m.doc_type, "Evidence level": m.shown_evidence,
            "Type from": ORIGIN.get(m.source_of("doc_type"), ""), "Flags": ", ".join(m.flags),
            "Year": m.year, "Journal / publisher": m.journal or m.publisher,
            "Authors": "; ".join(m.authors), "DOI": m.doi, "PMID": m.pmid,
            "MeSH": "; ".join(m.mesh), "Publication types": "; ".join(m.publication_types),
            "Metadata from": origin_summary(m),
            "Passages": sources.get(d.source, {}).get("chunks", len(base.chunks_of(d.source))),
            "References": sources.get(d.source, {}).get("references", 0),
            "File": d.source,
        })
    return rows


def document_table(base: "KnowledgeBase") -> None:
    st.dataframe(document_rows(base), hide_index=True, width="stretch", column_config={
        "Title": st.column_config.TextColumn(width="large"),
        "Year": st.column_config.NumberColumn(format="%d", width="small"),
        "Passages": st.column_config.NumberColumn(width="small"),
        "References": st.column_config.NumberColumn(width="small")})
    st.caption("“Metadata from” says where each value came from: the catalogue (corpus/catalogue.yaml), "
               "the PubMed record itself, or inferred from the document's text (DOI, year, study type… "
               "only where the text states them). A retracted or corrected article is flagged in every citation.")


def _changes(meta: DocMeta, values: dict[str, Any]) -> dict[str, Any]:
    """Only the fields the user changed: the catalogue then overrides just those."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        current = getattr(meta, name)
        if name == "authors":
            value = [a.strip() for a in str(value).splitlines() if a.strip()]
            if tuple(value) != current:
                out[name] = value
        elif name == "year":
            text = str(value).strip()
            if text != (str(current) if current else ""):
                if text and not (text.isdigit() and len(text) == 4):
                    raise ValueError(f"year {text!r} must be four digits (or empty)")
                out[name] = int(text) if text else None
        elif str(value).strip() != (current or ""):
            out[name] = str(value).strip()
    return out


def correction_form(base: "KnowledgeBase", save: SaveCorrection) -> None:
    st.markdown("**Correct a document's metadata**")
    docs = {d.source: d for d in base.documents}
    source = st.selectbox("Document", ["", *docs], key="meta_doc",
                          format_func=lambda s: "Choose a document…" if not s else f"{docs[s].meta.title or s} ({s})")
    if not source:
        return
    meta = docs[source].meta
    types = list(dict.fromkeys([meta.doc_type, *(t.doc_type for t in EVIDENCE_TYPES), *(d.meta.doc_type for d in base.documents)]))
    types = [t for t in types if t] + [""]
    with st.form(key=f"meta_form_{source}"):
        values: dict[str, Any] = {}
        for name in ("title", "authors", "year", "journal", "publisher", "doi", "pmid", "url", "doc_type", "evidence_level"):
            label = FIELD_LABELS[name]
            origin = ORIGIN.get(meta.source_of(name), "")
            helptext = f"Now from: {origin}" if origin else "Not stated"
            if name == "authors":
                values[name] = st.text_area(label, "\n".join(meta.authors), help=helptext, key=f"mf_{name}")
            elif name == "doc_type":
                values[name] = st.selectbox(label, types, index=types.index(meta.doc_type), help=helptext,
                                            key=f"mf_{name}", format_func=lambda t: t or "(not stated)")
            else:
                current = getattr(meta, name)
                values[name] = st.text_input(label, "" if current is None else str(current), help=helptext,
                                             key=f"mf_{name}")
        current_flags = [f for f in meta.flags if f != INFERRED]
        flags = st.multiselect("Flags", [RETRACTED, CONCERN, ERRATUM], default=current_flags, key="mf_flags",
                               help="Shown with every citation of the document. A flag the PubMed record "
                                    "itself carries cannot be removed here.")
        submitted = st.form_submit_button("Save to the catalogue", type="primary")
    if submitted:
        if values["doc_type"] != meta.doc_type and values["evidence_level"] == meta.evidence_level:
            # A new type with the old evidence label would contradict itself: take the table's label.
            row = next((t for t in EVIDENCE_TYPES if t.doc_type == values["doc_type"]), None)
            values["evidence_level"] = row.evidence_level if row else ""
        try:
            changes = _changes(meta, values)
            if sorted(flags) != sorted(current_flags):
                changes["flags"] = list(flags)
        except ValueError as e:
            st.error(render.md_escape(str(e)), icon=":material/error:")
            return
        if not changes:
            st.info("Nothing changed.")
            return
        ok, message = save(source, changes)
        if ok:
            st.session_state.meta_flash = message
            st.rerun()
        st.error(message, icon=":material/error:")
    flash = st.session_state.pop("meta_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")


def corpus_documents(base: "KnowledgeBase", settings: "Settings", save: SaveCorrection) -> None:
    """Hook for app.corpus_view: the table, then the correction form."""
    document_table(base)
    with st.expander("Correct metadata", icon=":material/edit:"):
        st.caption(render.md_escape(f"Corrections are written to {settings.catalogue_path} and override the "
                                    "record or the inferred value field by field; the index is updated at once."))
        correction_form(base, save)
