"""Metadata filters that both retrievers apply the same way, inside their search."""

from __future__ import annotations

import re
from dataclasses import dataclass


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

    def matches(self, source: str, publisher: str, topics: set[str] | frozenset[str], date: int) -> bool:
        """The same test as the Chroma ``where`` clause (``index.chunk_records``), for one chunk's fields."""
        if self.sources and source not in self.sources:
            return False
        if self.publishers and publisher not in self.publishers:
            return False
        if self.topics and not topics.intersection(self.topics):
            return False
        if self.date_from and date < date_number(self.date_from):
            return False
        return not (self.date_to and date > end_of(self.date_to))


def date_number(value: str) -> int:
    """'2021-06-28' -> 20210628; '2022-05' -> 20220500; unknown -> 0. Lets Chroma filter ranges."""
    match = re.match(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?", value or "")
    if not match:
        return 0
    year, month, day = match.group(1), match.group(2) or "0", match.group(3) or "0"
    return int(year) * 10000 + int(month) * 100 + int(day)


def end_of(value: str) -> int:
    """'2021' -> 20219999 so a year or month bound includes its whole span."""
    number = date_number(value)
    if number % 10000 == 0:
        return number + 9999
    if number % 100 == 0:
        return number + 99
    return number
