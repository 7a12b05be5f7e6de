"""Structure-aware chunking: a chunk is a contiguous span of the document made of whole
blocks (a heading stays with its content, a list intro with its items), cut at sentence
boundaries only when one block is too long. Boilerplate, metadata and references are never
inside a chunk, so `chunk.text == document.text[chunk.start:chunk.end]` holds exactly."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ingest.sentences import sentence_spans
from ingest.structure import CONTENT_KINDS, HEADING, LIST_ITEM, LIST_MARKER, Block, classify
from kb.answer_text import refine_spans
from kb.config import ChunkSettings
from kb.instructions import flagged_spans
from kb.types import Chunk, Document, Span


@dataclass
class _Piece:
    """A unit the packer places whole: a block, or part of a long block."""

    start: int
    end: int
    kind: str
    section: str
    sentences: list[Span]
    contiguous_with_previous: bool  # False when dropped text lies between it and the last piece


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    h = hashlib.sha1(f"{source}\x00{start}\x00{end}\x00{text}".encode("utf-8")).hexdigest()
    return h[:16]


def _pieces(text: str, blocks: list[Block], settings: ChunkSettings) -> list[_Piece]:
    pieces: list[_Piece] = []
    section = ""
    contiguous = False
    for blk in blocks:
        if blk.kind not in CONTENT_KINDS:
            contiguous = False
            continue
        if blk.kind == HEADING:
            section = " ".join(text[blk.start:blk.end].lstrip("#").split())
            pieces.append(_Piece(blk.start, blk.end, HEADING, section, [], contiguous))
            contiguous = True
            continue
        content_start = blk.start
        if blk.kind == LIST_ITEM:
            marker = LIST_MARKER.match(text, blk.start)
            content_start = marker.end() if marker else blk.start  # "1." / "•" is not a sentence
        sents = sentence_spans(text, content_start, blk.end, settings.max_sentence_chars)
        if not sents:
            continue
        if blk.end - blk.start <= settings.max_chars:
            pieces.append(_Piece(blk.start, blk.end, blk.kind, section, sents, contiguous))
        else:
            # A long block becomes several pieces of whole sentences.
            group: list[Span] = []
            for s in sents:
                if group and s[1] - group[0][0] > settings.max_chars:
                    pieces.append(_Piece(group[0][0], group[-1][1], blk.kind, section, group, contiguous))
                    group = []
                group.append(s)
            if group:
                pieces.append(_Piece(group[0][0], group[-1][1], blk.kind, section, group, contiguous))
        contiguous = True
    return pieces


def _ends_with_intro(text: str, piece: _Piece) -> bool:
    return piece.kind == HEADING or text[piece.start:piece.end].rstrip().endswith(":")


def _merge_orphans(groups: list[list[_Piece]], settings: ChunkSettings) -> list[list[_Piece]]:
    """A short tail of a section ("- Fatigue") joins the group before it, even if that makes
    the chunk up to min_chars longer than max_chars: an orphan line is useless on its own."""
    out: list[list[_Piece]] = []
    for g in groups:
        prev = out[-1] if out else None
        if (
            prev is not None
            and g[0].kind != HEADING
            and g[0].contiguous_with_previous
            and g[0].section == prev[-1].section
            and g[-1].end - g[0].start < settings.min_chars
            and g[-1].end - prev[0].start <= settings.max_chars + settings.min_chars
        ):
            out[-1] = prev + g
        else:
            out.append(g)
    return out


def chunk_blocks(doc: Document, blocks: list[Block], settings: ChunkSettings) -> list[Chunk]:
    text = doc.text
    pieces = _pieces(text, blocks, settings)
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []

    def size(ps: list[_Piece]) -> int:
        return ps[-1].end - ps[0].start if ps else 0

    for p in pieces:
        if current:
            fits = p.end - current[0].start <= settings.max_chars
            heading_only = all(q.kind == HEADING for q in current)
            new_section = p.kind == HEADING and not heading_only
            if not p.contiguous_with_previous or not fits or new_section:
                # Keep headings and list intros ("Target trough levels:") with what follows.
                carry: list[_Piece] = []
                while current and _ends_with_intro(text, current[-1]) and p.contiguous_with_previous:
                    if p.end - current[-1].start > settings.max_chars and carry:
                        break
                    carry.insert(0, current.pop())
                if current:
                    groups.append(current)
                current = carry
        current.append(p)
    if current:
        groups.append(current)
    groups = _merge_orphans(groups, settings)

    chunks: list[Chunk] = []
    for g in groups:
        sentences = refine_spans(text, tuple(s for p in g for s in p.sentences), g[0].section)
        if not sentences:
            continue  # headings alone carry no content to cite
        start, end = g[0].start, g[-1].end
        chunk_text = text[start:end]
        chunks.append(
            Chunk(
                chunk_id=chunk_id(doc.source, start, end, chunk_text),
                doc_id=doc.doc_id,
                source=doc.source,
                text=chunk_text,
                start=start,
                end=end,
                section=g[0].section,
                page=doc.page_at(start),
                sentences=sentences,
                flagged=flagged_spans(text, sentences),  # planted instructions: never evidence
            )
        )
    return chunks


def chunk_document(doc: Document, settings: ChunkSettings) -> list[Chunk]:
    return chunk_blocks(doc, classify(doc.text), settings)


def embedding_text(doc: Document, chunk: Chunk) -> str:
    """What the embedding model and BM25 see: the chunk, prefixed by its document title and
    section when the chunk text does not already start with them (context for short list
    items such as "Drug X: 4-8 ng/ml")."""
    parts = []
    for label in (doc.title, chunk.section):
        if label and label not in parts and not chunk.text.startswith(label):
            parts.append(label)
    parts.append(chunk.text)
    return "\n".join(parts)


def sentence_embedding_texts(doc: Document, chunk: Chunk) -> list[str]:
    """What the embedding model sees for each citable sentence of `chunk` (in the order of
    `chunk.sentences`): the section heading, the spans it needs to be understood (list intro,
    the sentence a pronoun refers to) and the sentence itself, so a list item "5-10 ng/ml"
    under "Tacrolimus trough levels:" is embedded with what it is about."""
    from kb.answer_text import chunk_sentences

    out = []
    for s in chunk_sentences(doc.text, chunk):
        parts = [h for h in (s.heading or chunk.section,) if h]
        parts += [doc.text[a:b] for a, b in sorted(s.context)]
        parts.append(s.text)
        out.append(" ".join(" ".join(p.split()) for p in parts))
    return out
