"""Every error the product raises on purpose. Messages are written for users: they name the
input and the reason. The CLI and UI turn them into messages; nothing else catches them."""
from __future__ import annotations


class KBError(Exception):
    """Base class: a problem the user can act on."""


class IndexMissingError(KBError):
    """No index at the given path (run `make ingest`)."""


class IndexFormatError(KBError):
    """The index folder is unusable: unknown format version, corrupted or missing file."""


class ModelMismatchError(KBError):
    """The index was built with another embedding model than the one asked for."""


class EmbeddingBackendError(ModelMismatchError):
    """The index's vectors come from an embedding backend whose vectors differ from the
    configured one's (e.g. int8 vs fp32): re-ingest, or select the index's backend."""


class SourceError(KBError):
    """One source file could not be ingested; the others still are."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnsupportedFormatError(SourceError):
    """A file whose extension no loader handles (skipped, not an error of the build)."""


class QuestionError(KBError):
    """An empty or unusable question."""


class QuestionTypeError(TypeError):
    """A question or query that is not a str (a caller's mistake, so not a KBError): the
    message names the type, and for bytes says to decode them."""


class LLMError(KBError):
    """The optional chat model failed or timed out (the extractive answer is used instead)."""


class NetworkError(KBError):
    """A networked step (the PubMed import) could not reach its server or got no usable answer.
    `offline` is True when the server could not be reached at all (no point in going on)."""

    def __init__(self, message: str, *, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


class DraftError(KBError):
    """A draft to audit that cannot be read: unsupported format, undecodable, empty, too long."""


class IndexLockedError(KBError):
    """Another process is writing the index (the message names it: PID, since when); raised
    after waiting the configured time, or at once when asked not to wait."""
