"""A chunk as a Chroma record: its metadata (scalars only, as Chroma takes them), the chunk read back
from a record, and search filters as a Chroma ``where`` on those fields.

Kept apart from ``index.store`` because the layout is a contract of its own: ``Filters.matches`` makes
the same test on a chunk in memory, and both must change together with ``chunk_metadata``.
"""

from __future__ import annotations

from typing import Any

from index.attribution import attributions_from_json, attributions_json
from index.chunk import Chunk
from index.filters import Filters, date_number, end_of


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    """Chroma metadata for a chunk. Chroma takes scalars only: topics become one flag each."""
    metadata: dict[str, Any] = {
        "source": chunk.source,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "heading": chunk.heading,
        "publisher": chunk.publisher,
        "date": chunk.date,
        "date_num": date_number(chunk.date),
        "url": chunk.url,
        "page": chunk.page if chunk.page is not None else -1,
        "start": chunk.start,
        "end": chunk.end,
        "topics": ",".join(chunk.topics),
        "content_hash": chunk.content_hash,
        "attributions": attributions_json(chunk.attributions),
    }
    for topic in chunk.topics:
        metadata[f"topic:{topic}"] = True
    return metadata


def chunk_from_record(chunk_id: str, text: str, metadata: dict[str, Any]) -> Chunk:
    page = int(metadata.get("page", -1))
    topics = tuple(t for t in str(metadata.get("topics", "")).split(",") if t)
    return Chunk(
        id=chunk_id,
        source=str(metadata["source"]),
        ordinal=int(metadata.get("ordinal", 0)),
        text=text,
        start=int(metadata.get("start", 0)),
        end=int(metadata.get("end", 0)),
        title=str(metadata.get("title", "")),
        heading=str(metadata.get("heading", "")),
        publisher=str(metadata.get("publisher", "")),
        date=str(metadata.get("date", "")),
        url=str(metadata.get("url", "")),
        page=page if page >= 0 else None,
        topics=topics,
        content_hash=str(metadata.get("content_hash", "")),
        attributions=attributions_from_json(str(metadata.get("attributions", ""))),
    )


def where_clause(filters: Filters) -> dict[str, Any] | None:
    """``filters`` as a Chroma ``where``: the same test as ``Filters.matches``, on ``chunk_metadata``'s fields."""
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        clauses.append({"source": {"$in": list(filters.sources)}})
    if filters.publishers:
        clauses.append({"publisher": {"$in": list(filters.publishers)}})
    if filters.topics:
        topic_clauses = [{f"topic:{t}": True} for t in filters.topics]
        clauses.append(topic_clauses[0] if len(topic_clauses) == 1 else {"$or": topic_clauses})
    if filters.date_from:
        clauses.append({"date_num": {"$gte": date_number(filters.date_from)}})
    if filters.date_to:
        clauses.append({"date_num": {"$lte": end_of(filters.date_to)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
