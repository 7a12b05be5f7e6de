"""eval/report.py: the shared writer of generated doc sections."""
from __future__ import annotations

from pathlib import Path

from eval.report import replace_marked


def test_generated_section_replaces_only_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "AUDIT.md"
    replace_marked(page, "<!-- s -->", "<!-- e -->", "first", "Draft audit")
    assert page.read_text() == "# Draft audit\n\n<!-- s -->\nfirst\n<!-- e -->\n"
    page.write_text("# Draft audit\n\nprose\n\n<!-- s -->\nold\n<!-- e -->\n\nmore prose\n")
    replace_marked(page, "<!-- s -->", "<!-- e -->", "new", "Draft audit")
    assert page.read_text() == "# Draft audit\n\nprose\n\n<!-- s -->\nnew\n<!-- e -->\n\nmore prose\n"
