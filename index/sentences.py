"""Sentence spans of a chunk's text: what the answerers quote and the verifier checks, one at a time.

In ``index`` because the indexer embeds each chunk's sentences too (``Settings.sentence_vectors``), and
a vector is found again at question time only if both sides cut the text the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A sentence keeps its closing quotes and any citation markers after its full stop ("... 2020. [3]").
# Not after an initial ("M. Ward", "J. R. R.") or a title ("Dr. Smith"): those full stops end no sentence.
_SENTENCE = re.compile(
    r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bJr\.)(?<!\bSr\.)(?<!\bMrs\.)"
    r"(?<!\bvs\.)(?<!\bNo\.)(?P<keep>[\"'”’)\]]*(?:[ \t]*\[\d+(?:\s*[,;]\s*\d+)*\])*)\s+(?!\[\d)(?=[\"'“‘(\[A-Z0-9*])"
    r"|\n\s*\n|\n(?=\s*[-*•] |\s*\d+\. )"
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


def sentences(text: str) -> Iterator[Span]:
    """Sentence spans of ``text`` (stripped, offsets into ``text``); Markdown headings are skipped."""
    position = 0
    for match in [*_SENTENCE.finditer(text), None]:
        if match is None:
            end = len(text)
        elif match.group("keep") is not None:
            end = match.end("keep")
        else:
            end = match.start()
        start = position
        while start < end and text[start].isspace():
            start += 1
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        piece = text[start:stop]
        if piece and not piece.startswith("#") and re.search(r"[A-Za-z]{2}", piece):
            yield Span(start, stop, piece)
        if match:
            position = match.end()
