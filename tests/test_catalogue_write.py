"""Metadata corrections written back to corpus/catalogue.yaml (ingest.catalogue.write_entry)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingest.catalogue import read_catalogue, write_entry
from kb.errors import KBError

CATALOGUE = """# Catalogue: a comment that must survive.
documents:
  a.txt:
    title: "A"  # inline comment of a
    year: 2001

  # comment about b, kept with b
  b.txt:
    title: "B"
    doc_type: "review"
"""


def test_only_the_corrected_entry_changes(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    write_entry(path, "a.txt", {"year": 2002, "authors": ["Jane Roe"]})
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Catalogue: a comment that must survive.\ndocuments:\n")
    assert "  # comment about b, kept with b\n  b.txt:\n    title: \"B\"\n" in text
    cat = read_catalogue(path)
    assert (cat["a.txt"].title, cat["a.txt"].year, cat["a.txt"].authors) == ("A", 2002, ("Jane Roe",))
    assert cat["b.txt"].doc_type == "review"


def test_new_entries_are_appended_and_odd_keys_quoted(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    write_entry(path, "pubmed/90000001.xml", {"doc_type": "randomized controlled trial"})
    write_entry(path, "refs.nbib#pmid-1", {"title": "T: with a colon"})
    write_entry(path, "refs.nbib#pmid-1", {"year": 1999})  # the same entry again: updated, not duplicated
    text = path.read_text(encoding="utf-8")
    assert text.count("refs.nbib#pmid-1") == 1
    data = yaml.safe_load(text)["documents"]
    assert data["refs.nbib#pmid-1"] == {"title": "T: with a colon", "year": 1999}
    assert data["pubmed/90000001.xml"] == {"doc_type": "randomized controlled trial"}
    assert set(data) == {"a.txt", "b.txt", "pubmed/90000001.xml", "refs.nbib#pmid-1"}


def test_missing_catalogue_is_created_and_bad_values_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    write_entry(path, "x.pdf", {"title": "X"})
    assert read_catalogue(path)["x.pdf"].title == "X"
    with pytest.raises(KBError):
        write_entry(path, "x.pdf", {"colour": "red"})
    with pytest.raises(KBError, match="would be invalid"):
        write_entry(path, "x.pdf", {"year": "soon"})
    assert read_catalogue(path)["x.pdf"].year is None  # nothing half-written
