"""The sidebar's retrieval choices: what the filters offer (read from the index), and the options a
question is asked with (read from the widgets' values)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from assistant.pipeline import AskOptions
from index.chunk import Chunk
from index.filters import Filters


def filter_choices(chunks: Iterable[Chunk]) -> dict[str, list]:
    """The publishers, topics, source files and years the index holds, each sorted."""
    publishers: set[str] = set()
    topics: set[str] = set()
    sources: set[str] = set()
    years: set[int] = set()
    for chunk in chunks:
        sources.add(chunk.source)
        if chunk.publisher:
            publishers.add(chunk.publisher)
        topics.update(t for t in chunk.topics if t)
        if chunk.date[:4].isdigit():
            years.add(int(chunk.date[:4]))
    return {"publishers": sorted(publishers), "topics": sorted(topics), "sources": sorted(sources),
            "years": sorted(years)}


def ask_options(state: Mapping[str, Any], years: list[int]) -> AskOptions:
    """The options set in the sidebar (``state`` holds the widgets' values); a year range at its ends is no filter."""
    date_from = date_to = ""
    since, until = state.get("f_year_from"), state.get("f_year_to")
    if years and since in years and since != years[0]:
        date_from = str(since)
    if years and until in years and until != years[-1]:
        date_to = str(until)
    filters = Filters(
        sources=tuple(state["f_sources"]), publishers=tuple(state["f_publishers"]),
        topics=tuple(state["f_topics"]), date_from=date_from, date_to=date_to,
    )
    return AskOptions(k=int(state["top_k"]), filters=filters, use_mmr=bool(state["use_mmr"]))
