"""A passage's text as the direct answer reads it: plain lines that map back to the passage's own
characters, statements within them, and where a quoted sentence stands in the passage."""

from __future__ import annotations

import re

from spacy.tokens import Doc, Span


def statements(doc: Doc) -> list[Span]:
    """``doc``'s sentences, a lead that ends in a colon joined to what it introduces ("26 September
    2014: Phase I set up" is one statement)."""
    out: list[Span] = []
    start = None
    for sent in doc.sents:
        if not sent.text.strip():
            continue
        start = sent.start if start is None else start
        if sent.text.rstrip().endswith(":") and sent.end < len(doc):
            continue
        out.append(doc[start: sent.end])
        start = None
    return out


def plain_lines(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """The passage's lines as plain text, each with the offset in the passage of each of its characters.

    A list item or a table row is a unit of its own, and Markdown's marks are dropped ("**26 September
    2014**" is read as a date; a table's cells are kept apart by a ";"), while every value still maps back
    to the passage's own characters."""
    out: list[tuple[str, tuple[int, ...]]] = []
    at = 0
    for line in text.split("\n"):
        chars: list[str] = []
        positions: list[int] = []
        lead = _LINE_MARK.match(line)
        i = lead.end() if lead else 0
        while i < len(line):
            mark = _INLINE_MARK.match(line, i)
            if mark:
                if mark.group(0).strip() in _SEPARATORS and chars:  # "date - event", "cell | cell"
                    chars.append(_SEPARATORS[mark.group(0).strip()])
                    positions.append(at + mark.start() + mark.group(0).index(mark.group(0).strip()))
                i = mark.end()
                continue
            chars.append(line[i])
            positions.append(at + i)
            i += 1
        plain = "".join(chars)
        if plain.strip():
            out.append((plain, tuple(positions)))
        at += len(line) + 1
    return out


_LINE_MARK = re.compile(r"[ \t]*(?:#+[ \t]*|[-*+>][ \t]+|\d+\.[ \t]+)?")
_INLINE_MARK = re.compile(r"\*+|`+|\||(?<= )[-\u2013\u2014](?= )")
_SEPARATORS = {"|": ";", "-": ":", "\u2013": ":", "\u2014": ":"}


def locate(sentence: str, text: str) -> tuple[int, int] | None:
    """Where ``sentence`` stands in ``text`` (whitespace may differ), as (start, end)."""
    at = text.find(sentence)
    if at >= 0:
        return at, at + len(sentence)
    words = re.findall(r"\S+", sentence)
    if not words:
        return None
    match = re.search(r"\s+".join(map(re.escape, words)), text)
    return (match.start(), match.end()) if match else None
