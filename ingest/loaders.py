"""Turn one source file into plain text plus the metadata the file itself states.

One loader per format (plain text, Markdown, HTML, PDF, PubMed MEDLINE/XML). Every loader
returns `LoadedText` items whose `text` is what all later offsets (chunks, citations) refer
to, so nothing downstream may re-normalise it. Problems a user can fix are raised as
`SourceError` naming the file and the reason; unknown extensions as `UnsupportedFormatError`.
"""
from __future__ import annotations

import codecs
import logging
import os
import re
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from kb import evidence_types
from kb.errors import SourceError, UnsupportedFormatError
from kb.text_decoding import UTF16_BOMS, decode_text_bytes
from kb.types import DocMeta

logger = logging.getLogger(__name__)

__all__ = [
    "LoadedText",
    "SUPPORTED_SUFFIXES",
    "load_bytes",
    "load_file",
]


@dataclass(frozen=True)
class LoadedText:
    """One document extracted from a source file."""

    text: str  # the document text every offset will refer to
    fmt: str  # "txt" | "md" | "html" | "pdf" | "pubmed"
    meta: DocMeta = DocMeta()  # only what the file itself states
    page_starts: tuple[int, ...] = ()  # PDF: offset in `text` where each page begins
    part: str = ""  # "" for single-document files; "pmid-<PMID>" / "record-<n>" otherwise
    warnings: tuple[str, ...] = ()  # non-fatal notes for the user


_FORMAT_BY_SUFFIX: dict[str, str] = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".nbib": "pubmed",
    ".medline": "pubmed",
    ".xml": "pubmed",
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMAT_BY_SUFFIX)

PAGE_SEPARATOR = "\n\f\n"  # between PDF pages: a paragraph break the chunker respects

# ---------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def _check_suffix(name: str) -> str:
    """The format for `name`, or UnsupportedFormatError (checked before reading any byte)."""
    suffix = _suffix(name)
    fmt = _FORMAT_BY_SUFFIX.get(suffix)
    if fmt is None:
        shown = f"'{suffix}'" if suffix else "(no extension)"
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFormatError(name, f"unsupported file type {shown} (supported: {supported})")
    return fmt


def load_bytes(name: str, data: bytes) -> list[LoadedText]:
    """Extract the document(s) held in `data`; `name` gives the suffix and names the file in
    errors. Returns one item per document (several only for multi-record PubMed files)."""
    fmt = _check_suffix(name)
    if not data:
        raise SourceError(name, "empty file")
    if fmt in ("txt", "md"):
        items = [_load_plain(name, data, fmt)]
    elif fmt == "html":
        items = [_load_html(name, data)]
    elif fmt == "pdf":
        items = [_load_pdf(name, data)]
    else:
        items = _load_pubmed(name, data)
    logger.debug("loaded %s: %d document(s), fmt=%s", name, len(items), fmt)
    return items


def load_file(path: Path, max_bytes: int) -> list[LoadedText]:
    """Read `path` (refusing it, unread, when larger than `max_bytes`) and load it."""
    path = Path(path)
    name = str(path)
    _check_suffix(name)  # no point reading a file no loader handles
    # Open first, then look at what was opened: a file swapped for a FIFO after the corpus
    # scan cannot block the read (O_NONBLOCK), and the checks below are of the open file.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SourceError(name, "cannot read file: file not found") from None
    except PermissionError:
        raise SourceError(name, "cannot read file: permission denied") from None
    except OSError as exc:
        raise SourceError(name, f"cannot read file: {_os_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(name, "cannot read file: it is a directory")
        if not stat.S_ISREG(st.st_mode):
            # FIFOs and devices could block or never end.
            raise SourceError(name, "cannot read file: not a regular file")
        if st.st_size > max_bytes:
            raise SourceError(
                name, f"file is {human_size(st.st_size)}, above the {human_size(max_bytes)} limit"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            # Read one byte past the limit: the file may have grown since fstat().
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise SourceError(name, f"cannot read file: {_os_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SourceError(name, f"file is larger than the {human_size(max_bytes)} limit")
    return load_bytes(name, data)


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    mb = n / (1024 * 1024)
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:.0f} MB"


# ---------------------------------------------------------------------------------------
# decoding shared by the text-based formats
# ---------------------------------------------------------------------------------------

# Signatures of common binary formats, so a misnamed file gets a helpful message.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF file"),
    (b"PK\x03\x04", "a ZIP or Office file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0", "an old-style Office file"),
    (b"\x1f\x8b", "a gzip archive"),
)
_CONTROL_SHARE_LIMIT = 0.10  # above this share of control characters, it is not text
_CONTROL_SAMPLE_CHARS = 1 << 20
# C0 controls other than whitespace, DEL and C1 controls (these come only from binary bytes).
_DELETE_CONTROLS = {
    c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r\f\v"
}


def _decode_text(name: str, data: bytes, *, check_magic: bool = True) -> tuple[str, list[str]]:
    """Decode a text file without losing it (kb/text_decoding.py: UTF-16 with its BOM, else
    UTF-8, else cp1252, else latin-1), with a warning when not UTF-8. Refuses binary content."""
    if not data.startswith(UTF16_BOMS):  # UTF-16 text is full of NUL bytes: its BOM goes first
        if check_magic:
            for magic, what in _MAGIC:
                if data.startswith(magic):
                    raise SourceError(name, f"binary content in a text file (looks like {what})")
        if b"\x00" in data:
            raise SourceError(name, "binary content in a text file (NUL bytes)")
    try:
        text, codec, bad = decode_text_bytes(data)
    except UnicodeDecodeError:
        raise SourceError(name, "invalid UTF-16 text (has a UTF-16 byte order mark)") from None
    warnings: list[str] = []
    if codec == "utf-16":
        warnings.append("decoded as UTF-16 (byte order mark)")
    elif bad is not None:
        warnings.append(f"not valid UTF-8 (first bad byte {bad}); decoded as {codec}")
    if text:
        # A sample decides (binary junk shows at once); translate() keeps it fast in C.
        sample = text[:_CONTROL_SAMPLE_CHARS]
        controls = len(sample) - len(sample.translate(_DELETE_CONTROLS))
        if controls / len(sample) > _CONTROL_SHARE_LIMIT:
            raise SourceError(name, "binary content in a text file (many control characters)")
    if not text.strip():
        raise SourceError(name, "empty file" if not text else "empty file (whitespace only)")
    return text, warnings


# ---------------------------------------------------------------------------------------
# plain text and Markdown
# ---------------------------------------------------------------------------------------

_FENCE_RE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX_H1_RE = re.compile(r"^\s{0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1_RE = re.compile(r"^\s{0,3}=+[ \t]*$")
_FRONT_TITLE_RE = re.compile(r"""^title:\s*(?P<q>["']?)(?P<t>.*?)(?P=q)\s*$""")


def _load_plain(name: str, data: bytes, fmt: str) -> LoadedText:
    text, warnings = _decode_text(name, data)
    meta = DocMeta(title=_markdown_title(text)) if fmt == "md" else DocMeta()
    return LoadedText(text=text, fmt=fmt, meta=meta, warnings=tuple(warnings))


def _markdown_title(text: str) -> str:
    """Front-matter `title:`, else the first level-1 heading ('# X' or 'X' over '===')."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                for line in lines[1:i]:
                    m = _FRONT_TITLE_RE.match(line.strip())
                    if m and m.group("t").strip():
                        return m.group("t").strip()
                start = i + 1
                break
    in_fence = False
    prev = ""
    for line in lines[start:]:
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            prev = ""
            continue
        if in_fence:
            continue
        m = _ATX_H1_RE.match(line)
        if m:
            return m.group(1).strip()
        if prev.strip() and _SETEXT_H1_RE.match(line):
            return prev.strip()
        prev = line
    return ""


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------

# Page furniture and non-text content: never part of the document text.
_HTML_DROP = frozenset(
    {
        "script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe",
        "svg", "head", "title", "template", "object", "embed", "canvas", "button", "select",
        "textarea", "input", "audio", "video", "map", "dialog",
    }
)
_HTML_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# Blocks separated by a blank line (paragraph level) ...
_HTML_PARA = frozenset(
    {
        "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul",
        "ol", "dl", "figure", "hr", "section", "article", "main", "header", "address",
        "details", "fieldset", "center",
    }
)
# ... and blocks that only start a new line (items of a list or table).
_HTML_LINE = frozenset({"li", "tr", "dt", "dd", "figcaption", "caption", "summary", "legend"})
_HTML_CELLS = frozenset({"td", "th"})
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _load_html(name: str, data: bytes) -> LoadedText:
    from bs4 import BeautifulSoup  # imported here: the other formats do not need it

    html, warnings = _decode_html(name, data)
    soup = BeautifulSoup(html, "html.parser")
    meta = _html_meta(soup)
    text = _html_text(soup)
    if not text:
        raise SourceError(name, "no readable text in the HTML page")
    return LoadedText(text=text, fmt="html", meta=meta, warnings=tuple(warnings))


def _decode_html(name: str, data: bytes) -> tuple[str, list[str]]:
    """Honour a BOM or a <meta charset> declaration; else the plain-text fallback chain."""
    if data.startswith((codecs.BOM_UTF8, *UTF16_BOMS)):
        return _decode_text(name, data, check_magic=False)
    m = _META_CHARSET_RE.search(data[:4096])
    if m:
        declared = m.group(1).decode("ascii", "replace")
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            codec = ""
        if codec in ("latin-1", "iso8859-1", "ascii"):
            codec = "cp1252"  # what browsers do (WHATWG Encoding): these labels mean cp1252
        # A declared UTF-8 page goes through the usual chain (it handles mislabelled pages).
        if codec and codec not in ("utf-8", "utf-16", "utf-16-le", "utf-16-be"):
            if b"\x00" in data:
                raise SourceError(name, "binary content in a text file (NUL bytes)")
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                pass  # the declaration lies; fall back to the detection chain
            else:
                if not text.strip():
                    raise SourceError(name, "empty file (whitespace only)")
                return text, []
    return _decode_text(name, data, check_magic=False)


def _is_furniture_role(tag: object) -> bool:
    """<div role="navigation"> etc. are nav/header/footer/aside by another name.

    Hidden elements (hidden, aria-hidden, display:none) are deliberately kept: on medical
    sites they are mostly collapsed accordion panels (FAQ answers), i.e. real content."""
    attrs = getattr(tag, "attrs", None) or {}
    return str(attrs.get("role", "")).lower() in _HTML_DROP_ROLES


class _TextWriter:
    """Collects text with pending breaks: a block only *asks* for a line (1) or paragraph (2)
    break, which is written before the next text. So adjacent blocks never pile up blank
    lines, and empty blocks leave nothing behind."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # 0 none, 1 newline, 2 blank line
        self.bullet = False  # a list item started and has not shown its "- " yet
        self.separator = ""  # between table cells of one row

    def brk(self, level: int) -> None:
        self.pending = max(self.pending, level)

    def line_break(self) -> None:  # <br>: two in a row make a paragraph break
        self.pending = min(self.pending + 1, 2)

    def text(self, s: str) -> None:
        if not s.strip():
            if self.parts and not self.pending:
                self.parts.append(s)  # inter-word whitespace between inline elements
            return
        if self.parts and self.pending:
            self.parts.append("\n" * self.pending)
            self.separator = ""
        elif self.parts and self.separator:
            self.parts.append(self.separator)
        self.pending = 0
        self.separator = ""
        if self.bullet:
            self.parts.append("- ")
            self.bullet = False
            s = s.lstrip()
        self.parts.append(s)

    def result(self) -> str:
        lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_END_ITEM = object()  # stack marker: a list item's element has been fully visited


def _html_text(soup: object) -> str:
    """Readable text: furniture dropped, one block per line, blank line between paragraphs,
    list items as "- item", table cells joined by " | ".

    Walks the tree iteratively (deeply nested pages must not hit the recursion limit)."""
    from bs4.element import NavigableString, PreformattedString, Script, Stylesheet, Tag
    from bs4.element import TemplateString

    skip_strings = (PreformattedString, Script, Stylesheet, TemplateString)
    out = _TextWriter()
    # Stack items: (node, inside <pre>), a break level to request after a block, or _END_ITEM.
    stack: list[object] = [(soup, False)]
    while stack:
        item = stack.pop()
        if item is _END_ITEM:
            out.bullet = False  # an empty list item shows nothing
            continue
        if isinstance(item, int):
            out.brk(item)
            continue
        node, in_pre = item  # type: ignore[misc]
        if isinstance(node, NavigableString):
            if not isinstance(node, skip_strings):
                s = str(node)
                if in_pre:
                    # Keep the line structure of preformatted text.
                    for k, piece in enumerate(s.split("\n")):
                        if k:
                            out.line_break()
                        out.text(piece)
                else:
                    out.text(re.sub(r"\s+", " ", s))
            continue
        if not isinstance(node, Tag):
            continue
        tag_name = (node.name or "").lower()
        if node is not soup:
            if tag_name in _HTML_DROP and not _kept_header(node, tag_name):
                continue
            if _is_furniture_role(node):
                continue
        if tag_name == "br":
            out.line_break()
            continue
        if tag_name in _HTML_PARA:
            out.brk(2)
            stack.append(2)
        elif tag_name in _HTML_LINE:
            out.brk(1)
            stack.append(1)
        if tag_name == "li":
            out.bullet = True
            stack.append(_END_ITEM)
        elif tag_name in _HTML_CELLS and node.find_previous_sibling(list(_HTML_CELLS)):
            out.separator = " | "
        child_pre = in_pre or tag_name == "pre"
        for child in reversed(list(node.children)):
            stack.append((child, child_pre))
    return out.result()


def _kept_header(node: object, tag_name: str) -> bool:
    """A <header> inside <article>/<main> holds the article's own title and byline: keep it.
    Only the page-level header (site banner) is furniture."""
    if tag_name != "header":
        return False
    find_parent = getattr(node, "find_parent", None)
    return bool(find_parent and find_parent(["article", "main"]))


def _meta_values(soup: object, *keys: str) -> list[str]:
    """Contents of <meta name=KEY> / <meta property=KEY> tags, in document order."""
    wanted = {k.lower() for k in keys}
    values: list[str] = []
    for tag in soup.find_all("meta"):  # type: ignore[attr-defined]
        key = str(tag.get("name") or tag.get("property") or "").strip().lower()
        content = _clean(str(tag.get("content") or ""))
        if key in wanted and content:
            values.append(content)
    return values


def _html_meta(soup: object) -> DocMeta:
    """What the page states about itself: <title>/<h1>, plus scholarly citation_* tags."""
    title = ""
    citation_title = _meta_values(soup, "citation_title", "dc.title")
    if citation_title:
        title = citation_title[0]  # more precise than <title>, which often carries the site name
    if not title:
        head = getattr(soup, "head", None)
        t = head.find("title") if head else None
        if t is None:
            t = next(
                (x for x in soup.find_all("title") if not x.find_parent("svg")), None  # type: ignore[attr-defined]
            )
        if t is not None:
            title = _clean(t.get_text(" "))
    if not title:
        # Not a site logo in the page banner: the first h1 that is part of the text.
        for h1 in soup.find_all("h1"):  # type: ignore[attr-defined]
            if not any(
                (p.name in _HTML_DROP and not _kept_header(p, p.name)) or _is_furniture_role(p)
                for p in h1.parents
                if p.name
            ):
                title = _clean(h1.get_text(" "))
                if title:
                    break
    authors = tuple(dict.fromkeys(_meta_values(soup, "citation_author", "dc.creator")))
    year = None
    for value in _meta_values(
        soup, "citation_publication_date", "citation_date", "citation_year",
        "citation_online_date", "dc.date", "article:published_time",
    ):
        year = _year(value)
        if year:
            break
    publisher = next(
        iter(
            _meta_values(soup, "citation_journal_title")
            + _meta_values(soup, "citation_publisher", "dc.publisher")
            + _meta_values(soup, "og:site_name")
        ),
        "",
    )
    doi = next(iter(_meta_values(soup, "citation_doi", "dc.identifier")), "")
    doi = _normalise_doi(doi)
    pmid = next(iter(_meta_values(soup, "citation_pmid")), "")
    url = ""
    canonical = soup.find("link", rel="canonical")  # type: ignore[attr-defined]
    if canonical is not None and canonical.get("href"):
        url = str(canonical["href"]).strip()
    elif _meta_values(soup, "og:url"):
        url = _meta_values(soup, "og:url")[0]
    if not url.startswith(("http://", "https://")):
        url = ""  # a relative canonical link says nothing without the page's address
    journal = next(iter(_meta_values(soup, "citation_journal_title", "prism.publicationName")), "")
    return DocMeta(
        title=title, authors=authors, year=year, publisher=publisher, doi=doi,
        pmid=pmid if pmid.isdigit() else "", url=url, journal=journal,
    )


# ---------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------

_JUNK_PDF_TITLE_RE = re.compile(
    r"(^untitled$|^microsoft (word|powerpoint) - |\.(docx?|pdf|tex|dvi|indd|qxd|rtf|odt)$)", re.I
)


def _load_pdf(name: str, data: bytes) -> LoadedText:
    from pypdf import PdfReader  # imported here: only PDFs need it

    head = data[:1024]
    if b"%PDF-" not in head:
        what = " (looks like HTML)" if head.lstrip()[:1] == b"<" else ""
        raise SourceError(name, f"not a PDF file: no '%PDF-' header{what}")
    warnings: list[str] = []
    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # noqa: BLE001 - missing crypto backend, odd handlers
                raise SourceError(name, f"encrypted PDF; cannot decrypt it ({_brief(exc)})") from None
            if not ok:
                raise SourceError(name, "encrypted PDF; a password is required")
        pages = list(reader.pages)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on damaged files
        raise SourceError(name, f"corrupt or truncated PDF (pypdf: {_brief(exc)})") from None
    if not pages:
        raise SourceError(name, "PDF has no pages")

    page_texts: list[str] = []
    failed: list[int] = []
    first_error = ""
    for i, page in enumerate(pages, 1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
            failed.append(i)
            first_error = first_error or _brief(exc)
            page_text = ""
        # NUL and form feed would confuse the page separator and downstream text handling.
        page_texts.append(page_text.replace("\x00", "").replace("\f", "\n").strip())

    if not any(page_texts):
        if failed:
            raise SourceError(name, f"corrupt or truncated PDF (pypdf: {first_error})")
        raise SourceError(name, "PDF has no text layer (scanned image?); OCR is not supported")
    if failed:
        warnings.append(f"text of page(s) {_page_list(failed)} could not be extracted ({first_error})")
    empty = [i for i, t in enumerate(page_texts, 1) if not t and i not in failed]
    if empty:
        warnings.append(f"page(s) {_page_list(empty)} have no text layer (scanned images?)")
    if b"%%EOF" not in data[-2048:]:
        warnings.append("no %%EOF marker at the end; the file may be truncated")

    page_starts: list[int] = []
    offset = 0
    for t in page_texts:
        page_starts.append(offset)
        offset += len(t) + len(PAGE_SEPARATOR)
    text = PAGE_SEPARATOR.join(page_texts)
    return LoadedText(
        text=text,
        fmt="pdf",
        meta=DocMeta(title=_pdf_title(reader), authors=_pdf_authors(reader)),
        page_starts=tuple(page_starts),
        warnings=tuple(warnings),
    )


def _pdf_title(reader: object) -> str:
    try:
        info = reader.metadata  # type: ignore[attr-defined]
        title = _clean(str(info.title)) if info is not None and info.title else ""
    except Exception:  # noqa: BLE001 - a damaged Info dictionary only costs the title
        return ""
    # Authoring tools often store the file name as the title: that is not a title.
    return "" if _JUNK_PDF_TITLE_RE.search(title) else title


_PDF_NAME_RE = re.compile(r"^[A-Z][A-Za-z'\-]+(?:\s+(?:[A-Z]\.?|[A-Z][A-Za-z'\-]+)){1,3}$")


def _pdf_authors(reader: object) -> tuple[str, ...]:
    """The Info dictionary's /Author, only when every item reads as a person's name (tools
    often store a user account or a company there)."""
    try:
        info = reader.metadata  # type: ignore[attr-defined]
        raw = _clean(str(info.author)) if info is not None and info.author else ""
    except Exception:  # noqa: BLE001 - a damaged Info dictionary only costs the authors
        return ()
    parts = [p.strip() for p in re.split(r";|,| and ", raw) if p.strip()]
    return tuple(parts) if parts and all(_PDF_NAME_RE.match(p) for p in parts) else ()


def _page_list(pages: list[int]) -> str:
    shown = ", ".join(str(p) for p in pages[:10])
    return shown + (f" and {len(pages) - 10} more" if len(pages) > 10 else "")


def _brief(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."


# ---------------------------------------------------------------------------------------
# PubMed: MEDLINE tagged text (.nbib/.medline) and PubMed XML
# ---------------------------------------------------------------------------------------

_NO_RECORD = "no PubMed record found (expected MEDLINE tags such as 'PMID- ' or <PubmedArticle>)"
_MEDLINE_TAG_RE = re.compile(r"^([A-Z][A-Z0-9]{0,3}) {0,3}-(?: (.*))?$")
_LABEL = r"[A-Z][A-Z0-9]+(?:[ ,&/-]+[A-Z0-9]+)*"
_STRUCTURED_START_RE = re.compile(rf"^{_LABEL}:\s")
_LABEL_SPLIT_RE = re.compile(rf"(?<=[.!?)\]])\s+(?={_LABEL}:\s)")


@dataclass
class _Record:
    """One PubMed record, format-independent, before it becomes a LoadedText."""

    pmid: str = ""
    title: str = ""
    paragraphs: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    journal: str = ""
    year: int | None = None
    doi: str = ""
    pub_types: tuple[str, ...] = ()
    retracted: bool = False
    mesh: tuple[str, ...] = ()
    corrections: tuple[str, ...] = ()  # CommentsCorrections RefTypes / MEDLINE tags (RetractionIn, EIN, ...)


def _load_pubmed(name: str, data: bytes) -> list[LoadedText]:
    # Sniff the content too: an XML export saved as .nbib is still PubMed.
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    decode_warnings: list[str] = []
    if _suffix(name) == ".xml" or stripped.startswith(b"<"):
        records = _parse_pubmed_xml(name, data)
    else:
        text, decode_warnings = _decode_text(name, data)
        records = _parse_medline(text)
        if not records:
            raise SourceError(name, _NO_RECORD)
    return _records_to_loaded(name, records, decode_warnings)


def _records_to_loaded(
    name: str, records: list[_Record], file_warnings: list[str]
) -> list[LoadedText]:
    seen: set[str] = set()
    usable: list[_Record] = []
    for n, rec in enumerate(records, 1):
        if not rec.title and not rec.paragraphs:
            logger.warning("%s: PubMed record %s has neither title nor abstract; skipped",
                           name, rec.pmid or f"#{n}")
            continue
        if rec.pmid and rec.pmid in seen:
            logger.warning("%s: PMID %s appears twice; the repeat is skipped", name, rec.pmid)
            continue
        seen.add(rec.pmid)
        usable.append(rec)
    if not usable:
        raise SourceError(name, "PubMed record(s) found, but none has a title or abstract")
    multi = len(usable) > 1
    out: list[LoadedText] = []
    for n, rec in enumerate(usable, 1):
        warnings = list(file_warnings)
        if not rec.paragraphs:
            warnings.append("PubMed record has no abstract; only the title is indexed")
        if rec.retracted:
            warnings.append("PubMed marks this article as retracted")
        title = rec.title
        text = "\n\n".join(([title] if title else []) + list(rec.paragraphs))
        meta = pubmed_meta(rec)
        # The part becomes part of a document id: only a well-formed PMID goes into it.
        part = (f"pmid-{rec.pmid}" if rec.pmid.isdigit() else f"record-{n}") if multi else ""
        out.append(LoadedText(text=text, fmt="pubmed", meta=meta, part=part, warnings=tuple(warnings)))
    return out


def pubmed_meta(rec: _Record) -> DocMeta:
    """Metadata from the record itself; document type and evidence level from the one table
    in kb/evidence_types.py; every filled field marked as coming from the PubMed record."""
    kind = evidence_types.from_publication_types(rec.pub_types)
    flags = evidence_types.flags_for(rec.pub_types, rec.corrections)
    if rec.retracted and evidence_types.RETRACTED not in flags:
        flags = (evidence_types.RETRACTED, *flags)
    meta = DocMeta(
        title=rec.title,
        authors=rec.authors,
        year=rec.year,
        publisher=rec.journal,
        journal=rec.journal,
        doi=rec.doi,
        pmid=rec.pmid,
        doc_type=kind.doc_type if kind else "",
        evidence_level=kind.evidence_level if kind else "",
        mesh=rec.mesh,
        publication_types=rec.pub_types,
        flags=flags,
    )
    filled = tuple((name, "pubmed") for name, value in meta.to_dict().items()
                   if name not in ("provenance", "flags") and value not in ("", None, [], ()))
    return DocMeta(**{**meta.__dict__, "provenance": filled})


def _split_structured(abstract: str) -> tuple[str, ...]:
    """MEDLINE puts a structured abstract on one line ("BACKGROUND: ... METHODS: ...");
    give each labelled section its own paragraph, as the XML form does."""
    abstract = _clean(abstract)
    if not abstract:
        return ()
    if not _STRUCTURED_START_RE.match(abstract):
        return (abstract,)
    return tuple(p.strip() for p in _LABEL_SPLIT_RE.split(abstract) if p.strip())


def _parse_medline(text: str) -> list[_Record]:
    """Records of MEDLINE tagged text; a record starts at 'PMID- ' or after a blank line."""
    raw_records: list[list[list[str]]] = []  # record -> [tag, value] pairs
    current: list[list[str]] = []
    after_blank = False
    for line in text.splitlines():
        if not line.strip():
            after_blank = True
            continue
        m = _MEDLINE_TAG_RE.match(line)
        if m:
            tag, value = m.group(1), (m.group(2) or "").strip()
            if current and (tag == "PMID" or after_blank):
                raw_records.append(current)
                current = []
            current.append([tag, value])
        elif current and line[:1].isspace():
            current[-1][1] = (current[-1][1] + " " + line.strip()).strip()
        elif current:
            # Not a tag and not indented: a re-wrapped continuation line.
            current[-1][1] = (current[-1][1] + " " + line.strip()).strip()
        after_blank = False
    if current:
        raw_records.append(current)

    records: list[_Record] = []
    for fields in raw_records:
        tags = {t for t, _ in fields}
        if not tags & {"PMID", "TI", "BTI"}:
            continue  # not a PubMed record (e.g. stray text that happened to match)
        records.append(_medline_record(fields))
    return records


def _medline_record(fields: list[list[str]]) -> _Record:
    def values(tag: str) -> list[str]:
        return [_clean(v) for t, v in fields if t == tag and _clean(v)]

    def first(*tags: str) -> str:
        for tag in tags:
            vals = values(tag)
            if vals:
                return vals[0]
        return ""

    authors = values("FAU")
    if authors:
        authors = [_given_first(a) for a in authors]
    else:
        authors = values("AU")
    authors += [a for a in values("CN") if a not in authors]  # collective (group) authors
    doi = ""
    for v in values("LID") + values("AID"):
        if v.lower().endswith("[doi]"):
            doi = _normalise_doi(v[: -len("[doi]")])
            break
    pub_types = tuple(values("PT"))
    year = _year(first("DP", "DEP", "EDAT"))
    return _Record(
        pmid=first("PMID"),
        title=first("TI", "BTI"),
        paragraphs=_split_structured(" ".join(values("AB"))),
        authors=tuple(dict.fromkeys(authors)),
        journal=first("JT", "TA", "PB"),
        year=year,
        doi=doi,
        pub_types=pub_types,
        retracted="retracted publication" in {p.lower() for p in pub_types} or bool(values("RIN")),
        mesh=tuple(dict.fromkeys(v.split("/")[0].lstrip("*") for v in values("MH"))),
        corrections=tuple(t for t in ("RIN", "EIN", "ECI") if values(t)),
    )


def _given_first(full_name: str) -> str:
    """'Smith, John A' -> 'John A Smith' (the order used across the catalogue)."""
    last, sep, given = full_name.partition(",")
    if not sep or not given.strip():
        return full_name.strip()
    return f"{given.strip()} {last.strip()}"


# XML --------------------------------------------------------------------------------------

_DTD_SUBSET_RE = re.compile(rb"<!DOCTYPE[^>\[]*\[", re.I)


def _parse_pubmed_xml(name: str, data: bytes) -> list[_Record]:
    # The stdlib parser expands internal entities: refuse any declaration of them (billion
    # laughs). A plain DOCTYPE naming the external PubMed DTD, as efetch writes it, is fine:
    # ElementTree never fetches external DTDs.
    if b"<!ENTITY" in data or _DTD_SUBSET_RE.search(data):
        raise SourceError(name, "XML with DTD entity declarations is refused (entity expansion risk)")
    if b"\x00" in data and not data.startswith(UTF16_BOMS):
        raise SourceError(name, "binary content in a text file (NUL bytes)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise SourceError(name, f"malformed XML (line {line}, column {col}: {_brief(exc)})") from None
    tag = _local(root.tag)
    if tag in ("PubmedArticle", "PubmedBookArticle"):
        articles = [root]
    elif tag == "PubmedArticleSet":
        articles = [el for el in root if _local(el.tag) in ("PubmedArticle", "PubmedBookArticle")]
    else:
        raise SourceError(
            name,
            f"XML is not a PubMed export (root element <{tag}>; "
            "expected <PubmedArticleSet> or <PubmedArticle>)",
        )
    if not articles:
        raise SourceError(name, _NO_RECORD)
    return [
        _xml_article(el) if _local(el.tag) == "PubmedArticle" else _xml_book(el) for el in articles
    ]


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _xml_text(el: ET.Element | None) -> str:
    """All text inside `el`, inline markup (<i>, <sup>, ...) flattened."""
    return _clean("".join(el.itertext())) if el is not None else ""


def _xml_abstract(abstract: ET.Element | None) -> tuple[str, ...]:
    if abstract is None:
        return ()
    paragraphs: list[str] = []
    for part in abstract.findall("AbstractText"):
        text = _xml_text(part)
        label = _clean(part.get("Label") or "")
        if label and text:
            paragraphs.append(f"{label}: {text}")
        elif text:
            paragraphs.append(text)
    return tuple(paragraphs)


def _xml_authors(author_list: ET.Element | None) -> tuple[str, ...]:
    if author_list is None:
        return ()
    names: list[str] = []
    for author in author_list.findall("Author"):
        if author.get("ValidYN", "Y") == "N":
            continue  # PubMed keeps corrected-away names, marked invalid
        collective = _xml_text(author.find("CollectiveName"))
        last = _xml_text(author.find("LastName"))
        fore = _xml_text(author.find("ForeName"))
        initials = _xml_text(author.find("Initials"))
        if last and fore:
            names.append(f"{fore} {last}")
        elif last and initials:
            names.append(f"{last} {initials}")
        elif last:
            names.append(last)
        elif collective:
            names.append(collective)
    return tuple(dict.fromkeys(names))


def _xml_year(*dates: ET.Element | None) -> int | None:
    for date in dates:
        if date is None:
            continue
        year = _year(_xml_text(date.find("Year")) or _xml_text(date.find("MedlineDate")))
        if year:
            return year
    return None


def _xml_pub_types(parent: ET.Element | None) -> tuple[str, ...]:
    if parent is None:
        return ()
    return tuple(_xml_text(p) for p in parent.findall("PublicationTypeList/PublicationType"))


def _xml_doi(article_ids: ET.Element | None, *elocations: ET.Element | None) -> str:
    # Only the article's own ID list: ReferenceList holds the DOIs of cited papers too.
    if article_ids is not None:
        for aid in article_ids.findall("ArticleId"):
            if (aid.get("IdType") or "").lower() == "doi" and _xml_text(aid):
                return _normalise_doi(_xml_text(aid))
    for loc in elocations:
        if loc is not None and (loc.get("EIdType") or "").lower() == "doi" and _xml_text(loc):
            return _normalise_doi(_xml_text(loc))
    return ""


def _xml_retracted(pub_types: tuple[str, ...], comments: ET.Element | None) -> bool:
    if "retracted publication" in {p.lower() for p in pub_types}:
        return True
    if comments is None:
        return False
    return any(c.get("RefType") == "RetractionIn" for c in comments.findall("CommentsCorrections"))


def _xml_article(el: ET.Element) -> _Record:
    citation = el.find("MedlineCitation")
    if citation is None:
        return _Record()
    article = citation.find("Article")
    journal = article.find("Journal") if article is not None else None
    pub_types = _xml_pub_types(article)
    locations = article.findall("ELocationID") if article is not None else []
    journal_title = _xml_text(journal.find("Title")) if journal is not None else ""
    if not journal_title:
        journal_title = _xml_text(citation.find("MedlineJournalInfo/MedlineTA"))
    return _Record(
        pmid=_xml_text(citation.find("PMID")),
        title=_xml_text(article.find("ArticleTitle")) if article is not None else "",
        paragraphs=_xml_abstract(article.find("Abstract") if article is not None else None),
        authors=_xml_authors(article.find("AuthorList") if article is not None else None),
        journal=journal_title,
        year=_xml_year(
            journal.find("JournalIssue/PubDate") if journal is not None else None,
            article.find("ArticleDate") if article is not None else None,
        ),
        doi=_xml_doi(el.find("PubmedData/ArticleIdList"), *locations),
        pub_types=pub_types,
        retracted=_xml_retracted(pub_types, citation.find("CommentsCorrectionsList")),
        mesh=tuple(dict.fromkeys(_xml_text(d) for d in citation.findall("MeshHeadingList/MeshHeading/DescriptorName")
                                 if _xml_text(d))),
        corrections=tuple(dict.fromkeys(c.get("RefType") or "" for c in
                                        citation.findall("CommentsCorrectionsList/CommentsCorrections"))),
    )


def _xml_book(el: ET.Element) -> _Record:
    """A PubMed Bookshelf record (e.g. a GeneReviews chapter)."""
    doc = el.find("BookDocument")
    if doc is None:
        return _Record()
    book = doc.find("Book")
    title = _xml_text(doc.find("ArticleTitle")) or (
        _xml_text(book.find("BookTitle")) if book is not None else ""
    )
    authors = _xml_authors(doc.find("AuthorList")) or (
        _xml_authors(book.find("AuthorList")) if book is not None else ()
    )
    pub_types = _xml_pub_types(doc)
    return _Record(
        pmid=_xml_text(doc.find("PMID")),
        title=title,
        paragraphs=_xml_abstract(doc.find("Abstract")),
        authors=authors,
        journal=_xml_text(book.find("Publisher/PublisherName")) if book is not None else "",
        year=_xml_year(book.find("PubDate") if book is not None else None),
        doi=_xml_doi(el.find("PubmedBookData/ArticleIdList"), *doc.findall("ELocationID")),
        pub_types=pub_types,
    )


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

_YEAR_RE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")


def _year(value: str) -> int | None:
    m = _YEAR_RE.search(value or "")
    return int(m.group(1)) if m else None


def _clean(value: str) -> str:
    """Collapse whitespace runs (wrapped lines, indentation) to single spaces."""
    return re.sub(r"\s+", " ", value).strip()


def _normalise_doi(value: str) -> str:
    doi = _clean(value)
    doi = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", doi, flags=re.I)
    return doi if doi.startswith("10.") else ""

