"""The ``Chunk`` record: what chunking makes, the stores keep and answers cite."""

from __future__ import annotations

from dataclasses import dataclass

from index.attribution import Attribution, Report


@dataclass(frozen=True)
class Chunk:
    """One passage of a source, with everything a citation needs."""

    id: str
    source: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str
    heading: str
    publisher: str = ""
    date: str = ""
    url: str = ""
    page: int | None = None
    topics: tuple[str, ...] = ()
    content_hash: str = ""
    attributions: tuple[Attribution, ...] = ()
    """The reports the blocks of the passage cite, where the note says (see ``index.attribution``)."""

    def reports_at(self, start: int, end: int) -> tuple[Report, ...]:
        """The reports the blocks overlapping file offsets ``start``..``end`` cite; empty when the note
        does not say, and the note's own publisher stands for the source."""
        found = [r for a in self.attributions if a.start < end and start < a.end for r in a.reports]
        return tuple(dict.fromkeys(found))

    @property
    def embedding_text(self) -> str:
        """What the embedder reads: where the passage sits, then the passage."""
        context = " > ".join(part for part in (self.title, self.heading) if part)
        return f"{context}\n{self.text}" if context else self.text
