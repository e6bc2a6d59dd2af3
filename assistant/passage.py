"""The ``Passage`` record: a chunk that retrieval found, and how it was found."""

from __future__ import annotations

from dataclasses import dataclass

from index.chunk import Chunk


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with how it was found."""

    chunk: Chunk
    score: float
    """Fused score (RRF, or the reranker's when one is set); higher is better."""
    relevance: float
    """Cosine similarity of the passage to the query, in [-1, 1]: comparable across queries."""
    dense_rank: int | None = None
    lexical_rank: int | None = None

    @property
    def id(self) -> str:
        return self.chunk.id
