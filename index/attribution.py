"""Which report each block of a note draws on: the Pandoc-style citations (``[@digitimes]``,
``[@digitimes; @bits-chips]``) that end a paragraph, a list item or a table row, resolved against the
``id`` of each entry of the note's ``sources`` front matter.

A note restates several reports, so the note's first source is not the source of every sentence in
it: a card that credits a Bits&Chips figure to DigiTimes misleads the reader who copies it. The
citations are blanked to spaces where they stand, so every offset into the text is still an offset
into the file, and a citation is never quoted, embedded or searched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_CITATION = re.compile(r"\[(@[\w-]+(?:\s*;\s*@[\w-]+)*)\]")
_KEY = re.compile(r"@([\w-]+)")
_BLOCK_START = re.compile(r"[ \t]*(?:[-*+][ \t]|\d+[.)][ \t]|\|)")


class AttributionError(ValueError):
    """A citation names a source the note does not list; ``str()`` says which and what to do."""


def attributed(text: str, sources: list[dict]) -> tuple[str, tuple[Attribution, ...]]:
    """``text`` with its citations blanked, and the block each citation ends with the reports it names.

    ``sources`` are the note's front-matter entries; an entry without an ``id`` cannot be cited.
    """
    reports = {str(s["id"]): Report.from_entry(s) for s in sources if isinstance(s, dict) and s.get("id")}
    blanked = list(text)
    attributions: list[Attribution] = []
    for match in _CITATION.finditer(text):
        keys = _KEY.findall(match.group(1))
        unknown = [k for k in keys if k not in reports]
        if unknown:
            listed = ", ".join(sorted(reports)) or "none"
            raise AttributionError(
                f"the citation [{match.group(1)}] names {', '.join('@' + k for k in unknown)}, which no entry of "
                f"the front matter's sources has as its id (ids: {listed}); add the id to that source or fix "
                "the citation"
            )
        blanked[match.start():match.end()] = " " * (match.end() - match.start())
        start = _block_start(text, match.start())
        attributions.append(Attribution(start, match.end(), tuple(reports[k] for k in dict.fromkeys(keys))))
    return "".join(blanked), tuple(attributions)


def _block_start(text: str, at: int) -> int:
    """Where the block holding offset ``at`` begins: its paragraph's first line, or its own line for a
    list item or a table row (with the lines it wraps onto)."""
    line_start = text.rfind("\n", 0, at) + 1
    while line_start > 0 and not _BLOCK_START.match(text, line_start):
        previous = text.rfind("\n", 0, line_start - 1) + 1
        line = text[previous:line_start - 1]
        if not line.strip() or line.lstrip().startswith("#"):
            break
        line_start = previous
    return line_start


@dataclass(frozen=True)
class Report:
    """A report a note draws on, as its front matter lists it."""

    publisher: str
    title: str = ""
    date: str = ""
    url: str = ""

    @classmethod
    def from_entry(cls, entry: dict) -> Report:
        return cls(*(str(entry.get(k) or "").strip() for k in ("publisher", "title", "date", "url")))


@dataclass(frozen=True)
class Attribution:
    """The reports one block of a note draws on; ``start`` and ``end`` are offsets into the file."""

    start: int
    end: int
    reports: tuple[Report, ...]


def attributions_json(attributions: tuple[Attribution, ...]) -> str:
    """``attributions`` as one string (a Chroma metadata value is a scalar)."""
    return json.dumps([[a.start, a.end, [[r.publisher, r.title, r.date, r.url] for r in a.reports]]
                       for a in attributions], ensure_ascii=False) if attributions else ""


def attributions_from_json(value: str) -> tuple[Attribution, ...]:
    if not value:
        return ()
    return tuple(Attribution(int(start), int(end), tuple(Report(*r) for r in reports))
                 for start, end, reports in json.loads(value))
