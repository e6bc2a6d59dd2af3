"""Split a ``SourceDocument`` into ``Chunk``s that the embedder can read whole.

Token-aware (tiktoken cl100k_base). Boundaries are chosen from coarse to fine: a chunk never
crosses a heading; inside a section it prefers paragraph ends, then sentence ends; a sentence
longer than a chunk is cut by words. Consecutive chunks of a section overlap by whole
sentences. Every chunk's text is exactly ``document.text[start:end]``, so the UI can highlight
the span in the source.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from index.chunk import Chunk
from index.loaders import SourceDocument
from index.tokens import cl100k

CHUNKER_VERSION = "2"


@dataclass(frozen=True)
class ChunkerConfig:
    max_tokens: int = 150
    overlap_tokens: int = 30

    def signature(self) -> str:
        """Recorded with the index: a different signature means the index must be rebuilt."""
        return f"v{CHUNKER_VERSION}:cl100k_base:{self.max_tokens}:{self.overlap_tokens}"


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph_end: bool


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by space and a
# capital, digit, quote or bracket. "U.S. Navy" style abbreviations are rare in this corpus;
# a wrong split costs a little context, never text.
# A sentence ends at its full stop, or where the next list item or table row starts: a list is one
# paragraph, and its items, read as one over-long sentence, were cut by words mid-item.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[A-Z0-9])"
                           r"|\n(?=[ \t]*(?:(?:[-*+]|\d{1,3}[.)])[ \t]|\|))")


def _sections(text: str) -> Iterator[tuple[str, int, int]]:
    """(heading path, start, end) for each run of text under one heading."""
    path: list[tuple[int, str]] = []
    position = 0
    current = ""
    for match in _HEADING.finditer(text):
        if match.start() > position:
            yield current, position, match.start()
        level = len(match.group(1))
        path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match.group(2).strip())]
        # The document title (a lone level-1 heading) is already in every chunk's title.
        current = " > ".join(name for lvl, name in path if lvl > 1 or len(path) == 1)
        position = match.start()
    if position < len(text):
        yield current, position, len(text)


def _spans(text: str, start: int, end: int, separator: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    position = start
    for match in separator.finditer(text, start, end):
        yield position, match.start()
        position = match.end()
    yield position, end


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _word_pieces(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int]]:
    """Cut an over-long sentence at word boundaries into pieces of at most ``max_tokens``."""
    encoding = cl100k()
    piece_start = start
    tokens = 0
    for match in re.finditer(r"\S+\s*", text[start:end]):
        word_tokens = len(encoding.encode(match.group(0), disallowed_special=()))
        if tokens and tokens + word_tokens > max_tokens:
            yield piece_start, start + match.start()
            piece_start, tokens = start + match.start(), 0
        tokens += word_tokens
    yield piece_start, end


def _units(text: str, start: int, end: int, max_tokens: int) -> list[_Unit]:
    encoding = cl100k()
    units: list[_Unit] = []
    for para in _spans(text, start, end, _PARAGRAPH_BREAK):
        para = _stripped(text, *para)
        if para is None:
            continue
        sentences = [s for s in (_stripped(text, *span) for span in _spans(text, *para, _SENTENCE_END)) if s]
        for index, (s_start, s_end) in enumerate(sentences):
            n = len(encoding.encode(text[s_start:s_end], disallowed_special=()))
            last = index == len(sentences) - 1
            if n <= max_tokens:
                units.append(_Unit(s_start, s_end, n, last))
                continue
            cut = (_stripped(text, *piece) for piece in _word_pieces(text, s_start, s_end, max_tokens))
            pieces = [p for p in cut if p]
            for p_index, (p_start, p_end) in enumerate(pieces):
                p_tokens = len(encoding.encode(text[p_start:p_end], disallowed_special=()))
                units.append(_Unit(p_start, p_end, p_tokens, last and p_index == len(pieces) - 1))
    return units


def _pack(units: list[_Unit], config: ChunkerConfig) -> Iterator[list[_Unit]]:
    """Group units into chunks; prefer to close a chunk at a paragraph end."""
    current: list[_Unit] = []
    tokens = 0
    for index, unit in enumerate(units):
        if current and tokens + unit.tokens > config.max_tokens:
            yield current
            overlap: list[_Unit] = []
            budget = config.overlap_tokens
            # No overlap across a paragraph end: the next chunk starts a fresh thought.
            for previous in reversed(current):
                if previous.paragraph_end or previous.tokens > budget:
                    break
                overlap.insert(0, previous)
                budget -= previous.tokens
            if overlap and sum(u.tokens for u in overlap) + unit.tokens > config.max_tokens:
                overlap = []
            current, tokens = overlap, sum(u.tokens for u in overlap)
        current.append(unit)
        tokens += unit.tokens
        upcoming = units[index + 1 : index + 1 + 64]
        if unit.paragraph_end and tokens >= 0.6 * config.max_tokens and upcoming:
            # Close here if the next paragraph would not fit whole anyway.
            next_paragraph = 0
            for candidate in upcoming:
                next_paragraph += candidate.tokens
                if candidate.paragraph_end:
                    break
            if tokens + next_paragraph > config.max_tokens:
                yield current
                current, tokens = [], 0
    if current:
        yield current


def chunk_id(source: str, ordinal: int, content_hash: str) -> str:
    """Stable id: the same file content always yields the same ids."""
    return hashlib.sha256(f"{source}\x00{ordinal}\x00{content_hash}".encode()).hexdigest()[:32]


def chunk_document(
    document: SourceDocument,
    config: ChunkerConfig = ChunkerConfig(),
    fits: Callable[[str], bool] | None = None,
) -> list[Chunk]:
    """Split a document into chunks.

    ``fits`` is the embedder's own check (its tokenizer counts differently from tiktoken): a
    chunk whose embedding text fails it is split again at half the size until it fits.
    """
    text = document.text
    spans: list[tuple[str, int, int]] = []
    for heading, s_start, s_end in _sections(text):
        spans.extend(_fitting_spans(document, heading, s_start, s_end, config, fits))
    chunks = []
    for ordinal, (heading, start, end) in enumerate(spans):
        body = text[start:end]
        content_hash = hashlib.sha256(body.encode()).hexdigest()[:16]
        chunks.append(Chunk(
            id=chunk_id(document.path, ordinal, content_hash),
            source=document.path,
            ordinal=ordinal,
            text=body,
            start=start,
            end=end,
            title=document.title,
            heading=heading,
            publisher=document.publisher,
            date=document.date,
            url=document.url,
            page=document.page_at(start),
            topics=document.topics,
            content_hash=content_hash,
            attributions=tuple(a for a in document.attributions if a.start < end and start < a.end),
        ))
    return chunks


def _fitting_spans(document: SourceDocument, heading: str, start: int, end: int,
                   config: ChunkerConfig, fits: Callable[[str], bool] | None) -> list[tuple[str, int, int]]:
    text = document.text
    out: list[tuple[str, int, int]] = []
    for group in _pack(_units(text, start, end, config.max_tokens), config):
        g_start, g_end = group[0].start, group[-1].end
        if _HEADING.fullmatch(text[g_start:g_end].strip()):
            continue  # a heading with no text under it says nothing on its own
        probe = Chunk("", document.path, 0, text[g_start:g_end], g_start, g_end, document.title, heading)
        if fits is not None and not fits(probe.embedding_text) and config.max_tokens > 16:
            smaller = ChunkerConfig(config.max_tokens // 2, config.overlap_tokens // 2)
            out.extend(_fitting_spans(document, heading, g_start, g_end, smaller, fits))
        else:
            out.append((heading, g_start, g_end))
    return out
