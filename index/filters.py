"""Metadata filters that both retrievers apply the same way, inside their search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from index.store import date_number


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some sources, publishers, topics or a date range (inclusive).

    Within a field any value may match; across fields all must match.
    """

    sources: tuple[str, ...] = ()
    publishers: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""

    def is_empty(self) -> bool:
        return not (self.sources or self.publishers or self.topics or self.date_from or self.date_to)

    def chroma_where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.sources:
            clauses.append({"source": {"$in": list(self.sources)}})
        if self.publishers:
            clauses.append({"publisher": {"$in": list(self.publishers)}})
        if self.topics:
            topic_clauses = [{f"topic:{t}": True} for t in self.topics]
            clauses.append(topic_clauses[0] if len(topic_clauses) == 1 else {"$or": topic_clauses})
        if self.date_from:
            clauses.append({"date_num": {"$gte": date_number(self.date_from)}})
        if self.date_to:
            clauses.append({"date_num": {"$lte": _end_of(self.date_to)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, source: str, publisher: str, topics: set[str] | frozenset[str], date: int) -> bool:
        """The same test as ``chroma_where``, for one chunk's fields."""
        if self.sources and source not in self.sources:
            return False
        if self.publishers and publisher not in self.publishers:
            return False
        if self.topics and not topics.intersection(self.topics):
            return False
        if self.date_from and date < date_number(self.date_from):
            return False
        return not (self.date_to and date > _end_of(self.date_to))


def _end_of(value: str) -> int:
    """'2021' -> 20219999 so a year or month bound includes its whole span."""
    number = date_number(value)
    if number % 10000 == 0:
        return number + 9999
    if number % 100 == 0:
        return number + 99
    return number
