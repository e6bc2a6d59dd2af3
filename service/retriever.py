"""Chokepoint's hybrid retrieval as a LangChain retriever, for LCEL chains.

    from index.filters import Filters
    from service.retriever import ChokepointRetriever, format_passages

    retriever = ChokepointRetriever.from_settings(Settings(), k=4, filters=Filters(topics=("semiconductors",)))
    chain = {"context": retriever | format_passages, "question": RunnablePassthrough()} | prompt | ChatOpenAI()

Each ``Document`` is one chunk: its text, and in its metadata the chunk's source, title, page, URL
and character span in the source file, so whatever the chain writes can still be cited back to it.
The retriever returns passages only; it does not verify what a model makes of them (the chat API does).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from assistant.engine import Engine
from assistant.passage import Passage
from assistant.retrieval import Retriever
from index.filters import Filters
from index.settings import Settings


class ChokepointRetriever(BaseRetriever):
    """Hybrid (dense + BM25) retrieval over a Chokepoint index, with the CLI's filters."""

    retriever: Retriever
    k: int | None = Field(None, description="Passages per query; the settings' top_k when None.")
    filters: Filters = Field(default_factory=Filters)
    max_passages: int = 20
    max_query_chars: int = 2000

    @classmethod
    def from_engine(cls, engine: Any, **fields: Any) -> ChokepointRetriever:
        """Over an ``assistant.engine.Engine`` already loaded (shares its model and index)."""
        settings = engine.settings
        return cls(retriever=engine.retriever, max_passages=settings.max_passages,
                   max_query_chars=settings.max_question_chars, **fields)

    @classmethod
    def from_settings(cls, settings: Settings, **fields: Any) -> ChokepointRetriever:
        """Loads the embedding model and opens the index that ``settings`` names."""
        return cls.from_engine(Engine(settings), **fields)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        query = query.strip()
        if not query:
            raise ValueError("The query is empty.")
        if len(query) > self.max_query_chars:
            raise ValueError(f"The query is {len(query)} characters long; the limit is {self.max_query_chars} "
                             "(CHOKEPOINT_MAX_QUESTION_CHARS).")
        if self.k is not None and not 1 <= self.k <= self.max_passages:
            raise ValueError(f"k={self.k}: between 1 and {self.max_passages} passages are allowed "
                             "(CHOKEPOINT_MAX_PASSAGES).")
        result = self.retriever.retrieve(query, k=self.k, filters=self.filters)
        return [to_document(p, rank) for rank, p in enumerate(result.passages, start=1)]


def to_document(passage: Passage, rank: int) -> Document:
    chunk = passage.chunk
    return Document(
        id=chunk.id,
        page_content=chunk.text,
        metadata={
            "id": chunk.id, "rank": rank, "source": chunk.source, "title": chunk.title, "heading": chunk.heading,
            "publisher": chunk.publisher, "date": chunk.date, "url": chunk.url, "page": chunk.page,
            "topics": list(chunk.topics), "start": chunk.start, "end": chunk.end,
            "score": passage.score, "relevance": passage.relevance,
        },
    )


def format_passages(documents: list[Document]) -> str:
    """Numbered passages for a prompt, each under its title and source, so a model can cite [n]."""
    return "\n\n".join(
        f"[{n}] {d.metadata.get('title') or d.metadata['source']} ({d.metadata['source']})\n{d.page_content}"
        for n, d in enumerate(documents, start=1)
    )
