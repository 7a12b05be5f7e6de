"""Reading a draft to audit: pasted text, or a .txt / .md / .docx file."""
from __future__ import annotations

import io
from pathlib import Path

from kb.errors import DraftError

DRAFT_SUFFIXES = (".txt", ".md", ".docx")


def read_draft(name: str, data: bytes, max_chars: int) -> str:
    """The draft's text. A .docx gives one paragraph per line block; Word's automatic list
    numbers, which are not part of the paragraph text, are written out ("2. ...") so a numbered
    reference list keeps its numbers."""
    suffix = Path(name).suffix.lower()
    if suffix not in DRAFT_SUFFIXES:
        raise DraftError(f"{name}: cannot audit a {suffix or 'suffix-less'} file "
                         f"(use {', '.join(DRAFT_SUFFIXES)} or paste the text)")
    if suffix == ".docx":
        text = _docx_text(name, data)
    else:
        if b"\x00" in data[:4096]:
            raise DraftError(f"{name}: looks like a binary file, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError as e:
                raise DraftError(f"{name}: not readable as UTF-8 or Windows-1252 text ({e})") from None
    return check_draft(name, text, max_chars)


def check_draft(name: str, text: str, max_chars: int) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DraftError(f"{name or 'the pasted text'}: empty, nothing to audit")
    if len(text) > max_chars:
        raise DraftError(f"{name or 'the pasted text'}: {len(text):,} characters, more than the "
                         f"{max_chars:,} an audit takes; split it")
    return text


def _docx_text(name: str, data: bytes) -> str:
    try:
        import docx  # python-docx
        from docx.opc.exceptions import PackageNotFoundError
    except ImportError as e:  # pinned in requirements.txt; only a broken install lacks it
        raise DraftError(f"{name}: reading .docx needs python-docx ({e})") from None
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as e:
        raise DraftError(f"{name}: not a readable .docx file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile and lxml errors for corrupt files
        raise DraftError(f"{name}: not a readable .docx file ({type(e).__name__}: {e})") from None
    lines: list[str] = []
    counter = 0
    for p in document.paragraphs:
        text = p.text.strip()
        style = p.style.name if p.style is not None else ""
        numbered = (p._p.pPr is not None and p._p.pPr.numPr is not None) or "List Number" in style
        if not text:
            continue
        if numbered and "Bullet" not in style:
            counter += 1
            text = f"{counter}. {text}"
        else:
            counter = 0
        lines.append(text)
    return "\n\n".join(lines)
