"""Reads corpus/catalogue.yaml: the metadata of each source, keyed by its path under corpus/."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from kb.errors import KBError
from kb.types import DocMeta

logger = logging.getLogger(__name__)


def read_catalogue(path: Path) -> dict[str, DocMeta]:
    """{source: DocMeta}. A missing catalogue is fine (titles come from the texts); a broken one
    stops the build with a message, since silently losing evidence levels would mislead."""
    if not path.exists():
        logger.info("no catalogue at %s; titles will be derived from the documents", path)
        return {}
    if not path.is_file():  # a named pipe would block the read forever
        raise KBError(f"catalogue {path} cannot be read: not a regular file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise KBError(f"catalogue {path} cannot be read: {e}") from e
    entries = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise KBError(f"catalogue {path} must hold a mapping 'documents: {{file name: fields}}'")
    out: dict[str, DocMeta] = {}
    for source, fields in entries.items():
        if not isinstance(fields, dict):
            raise KBError(f"catalogue {path}: entry {source!r} must be a mapping of fields")
        try:
            out[str(source)] = DocMeta.from_dict(fields)
        except (TypeError, ValueError) as e:
            raise KBError(f"catalogue {path}: entry {source!r} is invalid ({e})") from e
    return out


# Fields a user may correct, in the order the catalogue lists them.
EDITABLE_FIELDS = ("title", "authors", "year", "publisher", "journal", "doi", "pmid", "url", "doc_type",
                   "evidence_level", "flags")
_DOCUMENTS_RE = re.compile(r"^documents\s*:\s*(?:#.*)?$")
# An entry key at indent 2 with no inline value: plain, or quoted (a quoted key may hold '#').
_KEY_RE = re.compile(r"""^  (?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"](?:\S|[ \t]+(?!#))*?)\s*:\s*(?:#.*)?$""")


def read_entry(path: Path, source: str) -> dict[str, Any]:
    """The catalogue's own fields for `source` (not merged with the document): {} if none."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entry = (data.get("documents") or {}).get(source) if isinstance(data, dict) else None
    return dict(entry) if isinstance(entry, dict) else {}


def write_entry(path: Path, source: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Set `changes` in the catalogue entry of `source` (created if missing) and return the
    entry. Only that entry's lines are rewritten: the rest of the file, its comments included,
    stays as it was. The result is checked by reading it back, then written atomically."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise KBError(f"catalogue {path}: cannot set {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE_FIELDS)})")
    text = path.read_text(encoding="utf-8") if path.exists() else "documents:\n"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise KBError(f"catalogue {path} cannot be read: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("documents", {}), (dict, type(None))):
        raise KBError(f"catalogue {path} must hold a mapping 'documents: {{file name: fields}}'")
    entry = {**read_entry(path, source), **changes}
    entry = {k: _plain(v) for k, v in entry.items()}
    try:
        DocMeta.from_dict(entry)  # refuse what the reader would refuse (e.g. a year that is not a number)
    except (TypeError, ValueError) as e:
        raise KBError(f"catalogue {path}: entry {source!r} would be invalid ({e})") from e
    block = yaml.safe_dump({source: entry}, allow_unicode=True, sort_keys=False, width=100, default_flow_style=False)
    new_lines = ["  " + ln + "\n" for ln in block.splitlines()]

    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    doc_at = next((i for i, ln in enumerate(lines) if _DOCUMENTS_RE.match(ln.rstrip("\n"))), None)
    if doc_at is None:
        lines += ["documents:\n"]
        doc_at = len(lines) - 1
    elif lines[doc_at].rstrip("\n").split("#")[0].strip() != "documents:":
        raise KBError(f"catalogue {path}: 'documents:' must be followed by its entries on the next lines")
    end_of_docs = next((i for i in range(doc_at + 1, len(lines))
                        if lines[i][:1] not in (" ", "\t", "#", "\n", "")), len(lines))
    start = None
    for i in range(doc_at + 1, end_of_docs):
        m = _KEY_RE.match(lines[i].rstrip("\n"))
        if m and _key(m.group("key")) == source:
            start = i
            break
    if start is None:
        insert_at = end_of_docs
        while insert_at > doc_at + 1 and not lines[insert_at - 1].strip():
            insert_at -= 1
        gap = ["\n"] if insert_at > doc_at + 1 else []
        lines[insert_at:insert_at] = gap + new_lines
    else:
        end = start + 1
        while end < end_of_docs and not _KEY_RE.match(lines[end].rstrip("\n")):
            end += 1
        # Blank lines and comments just before the next entry belong to that entry.
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        lines[start:end] = new_lines
    new_text = "".join(lines)
    check = (yaml.safe_load(new_text) or {}).get("documents", {}).get(source)
    if check != entry:
        raise KBError(f"catalogue {path}: the corrected entry for {source!r} did not read back as written")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, path)
    logger.info("catalogue %s: entry %s updated (%s)", path, source, ", ".join(changes))
    return entry


def _key(raw: str) -> str:
    try:
        return str(yaml.safe_load(raw))
    except yaml.YAMLError:
        return raw


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
