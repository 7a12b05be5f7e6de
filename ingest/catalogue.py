"""Reads corpus/catalogue.yaml: the metadata of each source, keyed by its path under corpus/."""
from __future__ import annotations

import logging
from pathlib import Path

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
