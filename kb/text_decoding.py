"""How a text file's bytes become text. One rule, used where a source is loaded
(ingest/loaders.py) and where an indexed document is compared with its file again
(kb/source_check.py): both must decode a file the same way."""
from __future__ import annotations

import codecs

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text_bytes(data: bytes) -> tuple[str, str, int | None]:
    """(text, codec, offset of the first byte that is not UTF-8, or None). UTF-16 when a UTF-16
    byte order mark opens the data (UnicodeDecodeError when it is not valid UTF-16); else UTF-8
    with a BOM stripped; else cp1252; else latin-1, which never fails."""
    if data.startswith(UTF16_BOMS):
        return data.decode("utf-16"), "utf-16", None
    try:
        return data.decode("utf-8-sig"), "utf-8", None
    except UnicodeDecodeError as exc:
        bad = exc.start
    try:
        return data.decode("cp1252"), "cp1252", bad
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1", bad
