"""Untrusted text (source passages, model output) as safe Streamlit Markdown.

The rule: source text and model output never reach ``unsafe_allow_html``. They are shown with
plain ``st.markdown`` after every ASCII punctuation character is backslash-escaped, so
``<script>``, ``[x](javascript:...)``, ``**``, ``#``, ``$`` and Streamlit's ``:color[...]``
directives all show as the characters they are. Highlighting uses Streamlit's own Markdown
directive ``:orange-background[...]`` around escaped text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from assistant.answer import Answer, AnswerSentence, Citation
from assistant.passage import Passage

# All ASCII punctuation may be backslash-escaped in CommonMark; escaping all of it is simplest
# and leaves nothing for Markdown, GFM or Streamlit's extensions to interpret.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADING = re.compile(r"#{1,6}[ \t]+(?=\S)")
_MARKERS = re.compile(r"\s*\[(?:\d+|unsupported)\](?:\[\d+\])*")

HIGHLIGHT = "orange"
CONTEXT = "gray"
UNSUPPORTED = "red"

Mark = tuple[int, int, str]
"""(start, end, colour) of a highlighted range of a text; ranges must not overlap."""


def escape(text: str) -> str:
    """``text`` escaped for Markdown, line breaks kept as they are (use ``inline`` or ``block``)."""
    return _PUNCTUATION.sub(r"\\\1", _INVISIBLE.sub("", text))


def inline(text: str) -> str:
    """One line of escaped Markdown: whitespace (newlines included) collapsed to single spaces."""
    return escape(re.sub(r"\s+", " ", text).strip())


def _wrap(piece: str, colour: str | None) -> str:
    """An escaped piece, inside a background directive when coloured (spaces kept outside)."""
    core = piece.strip()
    if not colour or not core:
        return escape(piece)
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    inner = f"**{escape(core)}**" if colour == HIGHLIGHT else escape(core)
    return f"{escape(lead)}:{colour}-background[{inner}]{escape(trail)}"


_BLOCK_LINE = re.compile(r"[ \t]*(?:[-*+•|>#]|\d+[.)][ \t])")
_NO_JOIN_AFTER = re.compile(r"[ \t]*[#|]")


def unwrap(text: str) -> str:
    """Hard-wrapped prose lines joined with a space (same length: offsets still hold).

    A line break stays before a list item, table row, quote or heading, after a heading or table
    row, and around blank lines.
    """
    lines = text.split("\n")
    out = []
    for line, following in itertools.pairwise(lines):
        join = (line.strip() and following.strip() and not _BLOCK_LINE.match(following)
                and not _NO_JOIN_AFTER.match(line))
        out.append(line + (" " if join else "\n"))
    out.append(lines[-1])
    return "".join(out)


def block(text: str, marks: Sequence[Mark] = ()) -> str:
    """Multi-line text as escaped Markdown, with ``marks`` highlighted in place.

    Hard-wrapped prose is joined up (``unwrap``); other line breaks are kept (hard breaks), blank
    lines separate paragraphs, leading indentation is
    dropped (it would otherwise start a code block). A highlight that spans lines is closed and
    reopened on each line, since a Markdown directive cannot cross a line.
    """
    text = unwrap(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    # Split the text into (piece, colour) runs at the mark boundaries.
    runs: list[tuple[str, str | None]] = []
    position = 0
    for start, end, colour in sorted((max(0, s), min(len(text), e), c) for s, e, c in marks):
        if end <= start or start < position:
            continue
        runs.append((text[position:start], None))
        runs.append((text[start:end], colour))
        position = end
    runs.append((text[position:], None))

    # Cut the runs into lines.
    lines: list[list[tuple[str, str | None]]] = [[]]
    for piece, colour in runs:
        for i, part in enumerate(piece.split("\n")):
            if i:
                lines.append([])
            if part:
                lines[-1].append((part, colour))

    paragraphs: list[list[str]] = [[]]
    for line in lines:
        rendered = _render_line(line)
        if rendered:
            paragraphs[-1].append(rendered)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("  \n".join(p) for p in paragraphs if p)


def _render_line(line: list[tuple[str, str | None]]) -> str:
    # Strip the line's outer whitespace, across its pieces.
    pieces = list(line)
    while pieces and not pieces[0][0].strip():
        pieces.pop(0)
    while pieces and not pieces[-1][0].strip():
        pieces.pop()
    if not pieces:
        return ""
    pieces[0] = (pieces[0][0].lstrip(), pieces[0][1])
    pieces[-1] = (pieces[-1][0].rstrip(), pieces[-1][1])
    heading = _HEADING.match(pieces[0][0])
    if heading:  # a Markdown heading of the source: shown bold, without its hashes
        pieces[0] = (pieces[0][0][heading.end() :], pieces[0][1])
        text = "".join(_wrap(piece, colour) for piece, colour in pieces)
        return text if any(colour == HIGHLIGHT for _, colour in pieces) else f"**{text}**"
    return "".join(_wrap(piece, colour) for piece, colour in pieces)


def strip_markers(text: str) -> str:
    """The answer's text without its ``[n]`` / ``[unsupported]`` markers."""
    return re.sub(r"\s+([.!?,;:])", r"\1", _MARKERS.sub("", text)).strip()


def _markers(numbers: Sequence[int]) -> str:
    return "".join(f"**\\[{n}\\]**" for n in numbers)


def sentence_markdown(sentence: AnswerSentence) -> str:
    """One answer sentence with its [n] markers; an unsupported one is marked in red."""
    text = re.sub(r"\s+", " ", sentence.text).strip()
    end = text[-1] if text and text[-1] in ".!?" else ""
    body = text[:-1] if end else text
    if sentence.status == "unsupported":
        return f":{UNSUPPORTED}-background[{inline(body)}] **\\[unsupported\\]**{escape(end)}"
    markers = _markers(sentence.citations)
    return f"{inline(body)} {markers}{escape(end)}" if markers else f"{inline(body)}{escape(end)}"


def answer_markdown(answer: Answer) -> str:
    """The verified answer as Markdown: the direct answer in bold, then the escaped sentences, with bold
    inline [n] markers."""
    if answer.sentences:
        quoted = " ".join(sentence_markdown(s) for s in answer.sentences)
        if answer.direct_answer is None:
            return quoted
        return f"{direct_markdown(answer.direct_answer.text)}\n\n{quoted}"
    return inline(answer.text)


def direct_markdown(text: str) -> str:
    """The direct answer's sentence, bold, [n] markers and all."""
    return f"**{inline(text)}**"


def draft_markdown(draft: str) -> str:
    """The answer as it streams (before verification), escaped."""
    return block(draft)


def citation_label(citation: Citation) -> str:
    """The citation card's heading: ``[n] Title — Publisher, date, p. N`` (escaped), naming the report
    the quoted block draws on (each of them, when the spans draw on several)."""
    chunk = citation.chunk
    bits = ["; ".join(", ".join(b for b in (r.publisher, r.date) if b) for r in citation.reports)]
    bits = [b for b in bits if b]
    if chunk.page:
        bits.append(f"p. {chunk.page}")
    title = chunk.title or chunk.source
    label = f"[{citation.n}] {title}" + (f" — {', '.join(bits)}" if bits else "")
    return inline(label)


def passage_label(n: int, passage: Passage) -> str:
    chunk = passage.chunk
    return inline(f"{n}. {chunk.title or chunk.source} — {chunk.source} (similarity {passage.relevance:.2f})")


def metadata_markdown(citation_or_passage: Citation | Passage) -> str:
    """Publisher, date, page, file and heading of a passage, one escaped line; for a citation, the
    publisher and date of the report its quoted block draws on."""
    chunk = citation_or_passage.chunk
    publisher, date = chunk.publisher, chunk.date
    if isinstance(citation_or_passage, Citation):
        reports = citation_or_passage.reports
        publisher = "; ".join(r.publisher for r in reports if r.publisher)
        date = "; ".join(dict.fromkeys(r.date for r in reports if r.date))
    fields = [
        ("Publisher", publisher), ("Date", date),
        ("Page", str(chunk.page) if chunk.page else ""), ("File", chunk.source), ("Section", chunk.heading),
    ]
    return " · ".join(f"**{name}:** {inline(value)}" for name, value in fields if value)


def safe_url(url: str) -> str | None:
    """``url`` ready for a Markdown link when it is a plain http(s) address, else None."""
    url = (url or "").strip()
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url) or len(url) > 2000:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # Percent-encode what could end the Markdown link early or open HTML.
    return quote(url, safe=";/?:@&=+$,-_.!~*'#%")


def link_markdown(url: str) -> str:
    """A Markdown link to ``url`` (http/https only); any other URL is shown as escaped text."""
    target = safe_url(url)
    if target is None:
        return inline(url) + " (not a web link)" if url else ""
    shown = url if len(url) <= 80 else url[:77] + "..."
    return f"[{inline(shown)}]({target})"


def passage_markdown(citation: Citation) -> str:
    """The cited passage with its supporting span highlighted."""
    chunk = citation.chunk
    return block(chunk.text, [(start - chunk.start, end - chunk.start, HIGHLIGHT) for start, end in _merged(citation)])


def _merged(citation: Citation) -> list[tuple[int, int]]:
    """The citation's spans in order, overlapping ones joined (highlights must not overlap)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(citation.supports):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def source_markdown(text: str, citation: Citation, window: int | None = None) -> str:
    """A whole source with the passage shaded and its supporting span highlighted in place.

    ``window`` limits a very long source to that many characters either side of the passage.
    """
    chunk = citation.chunk
    marks: list[Mark] = []
    at = chunk.start
    for start, end in _merged(citation):
        marks += [(at, start, CONTEXT), (start, end, HIGHLIGHT)]
        at = end
    marks.append((at, chunk.end, CONTEXT))
    if window is None or len(text) <= chunk.end - chunk.start + 2 * window:
        return block(text, marks)
    lo = max(0, chunk.start - window)
    hi = min(len(text), chunk.end + window)
    # Start and end the excerpt on line boundaries.
    lo = text.rfind("\n", 0, lo) + 1 if lo else 0
    nl = text.find("\n", hi)
    hi = len(text) if nl < 0 else nl
    shifted = [(s - lo, e - lo, c) for s, e, c in marks]
    body = block(text[lo:hi], shifted)
    before = "*… (earlier text left out) …*\n\n" if lo else ""
    after = "\n\n*… (later text left out) …*" if hi < len(text) else ""
    return before + body + after
