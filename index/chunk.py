"""The ``Chunk`` record: what chunking makes, the stores keep and answers cite."""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def embedding_text(self) -> str:
        """What the embedder reads: where the passage sits, then the passage."""
        context = " > ".join(part for part in (self.title, self.heading) if part)
        return f"{context}\n{self.text}" if context else self.text
