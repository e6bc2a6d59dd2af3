"""The vector store: one Chroma collection of chunks, embedded or on a Chroma server.

The collection's metadata records what built it (embedding model, dimension, chunker
signature, schema version). Opening it with anything else is refused, so vectors from two
models are never mixed in one index. It also carries the index generation the last indexing
run published, and the change log of the last runs (``index.change_log``): app instances sharing
one Chroma server compare the generation with their own BM25 index to notice that another
instance reindexed, and read in the log which sources to fetch again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError, NotFoundError

from index.change_log import Change, ChangeLog
from index.chunk import Chunk
from index.chunk_records import chunk_from_record, chunk_metadata, where_clause
from index.filters import Filters
from index.settings import Settings

SCHEMA_VERSION = "1"
_META_PREFIX = "chokepoint:"
_GENERATION_KEY = f"{_META_PREFIX}generation"
_CHANGE_LOG_KEY = f"{_META_PREFIX}changes"
_DEFAULT_LOG_KEEP: int = Settings.model_fields["lexical_log_keep"].default
_ADD_BATCH = 1000  # well under Chroma's max batch size
_T = TypeVar("_T")
log = logging.getLogger(__name__)


class IndexMismatchError(RuntimeError):
    """The stored index was built with other settings than the ones in force."""


class StoreUnavailableError(RuntimeError):
    """The Chroma server or data folder cannot be reached or written."""


@dataclass(frozen=True)
class IndexIdentity:
    """What an index was built with; two indexes are compatible only when these are equal."""

    embedding_model: str
    dimension: int
    chunker: str
    schema: str = SCHEMA_VERSION

    def as_metadata(self) -> dict[str, Any]:
        return {
            f"{_META_PREFIX}embedding_model": self.embedding_model,
            f"{_META_PREFIX}dimension": self.dimension,
            f"{_META_PREFIX}chunker": self.chunker,
            f"{_META_PREFIX}schema": self.schema,
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> IndexIdentity | None:
        metadata = metadata or {}
        if f"{_META_PREFIX}embedding_model" not in metadata:
            return None
        return cls(
            embedding_model=str(metadata[f"{_META_PREFIX}embedding_model"]),
            dimension=int(metadata[f"{_META_PREFIX}dimension"]),
            chunker=str(metadata[f"{_META_PREFIX}chunker"]),
            schema=str(metadata.get(f"{_META_PREFIX}schema", "")),
        )


def make_client(settings: Settings) -> Any:
    """A Chroma client: HTTP when ``chroma_url`` is set, else embedded under the data dir."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        headers = {}
        if settings.chroma_token is not None:
            headers["Authorization"] = f"Bearer {settings.chroma_token.get_secret_value()}"
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1", port=url.port or 8000, ssl=url.scheme == "https",
                headers=headers, settings=chroma_settings,
            )
        except Exception as exc:
            raise StoreUnavailableError(
                f"Cannot reach the Chroma server at {settings.chroma_url} ({exc}). "
                "Start it (`chroma run --path DIR`) or unset CHOKEPOINT_CHROMA_URL."
            ) from exc
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


_DAMAGED_WORDS = ("error deserializing pickle", "error loading hnsw", "hnsw segment reader", "cannot open header file")


def is_damaged_vector_index(exc: BaseException) -> bool:
    """Whether Chroma failed because its HNSW files on disk are damaged (a kill during its own flush).

    Embedded Chroma reports this only as text inside an ``InternalError``; the SQLite side (ids,
    texts, metadata) is intact, but the collection can be neither read nor written.
    """
    text = str(exc).lower()
    return any(words in text for words in _DAMAGED_WORDS)


_READ_ATTEMPTS = 3


def is_transient_read_error(exc: BaseException) -> bool:
    """Whether Chroma failed a read only because a concurrent write removed what it was reading."""
    return "error finding id" in str(exc).lower()


class ChunkStore:
    """Chunks and their vectors in one Chroma collection.

    Writes and reads go through the Chroma collection with vectors we computed (so the embedder
    sees each chunk's heading context; a search asks for ids only).
    """

    def __init__(self, client: Any, name: str, identity: IndexIdentity) -> None:
        self.client = client
        self.name = name
        self.identity = identity
        self._attach()

    def _attach(self) -> None:
        """Open (or create) the collection by name and check what built it."""
        # No embedding function: Chroma would otherwise load (and download) its default model.
        collection = self.client.get_or_create_collection(
            name=self.name, embedding_function=None, metadata=self.identity.as_metadata())
        self._check_identity(collection)
        # Swapped in only once checked: threads still querying keep a usable handle meanwhile.
        self.collection = collection

    def _check_identity(self, collection: Any) -> None:
        found = IndexIdentity.from_metadata(collection.metadata)
        if found is None:
            if collection.count() > 0:
                raise IndexMismatchError(
                    f"Collection {self.name!r} has chunks but no record of how they were built. "
                    "Run `chokepoint index --rebuild`."
                )
            collection.modify(metadata={**(collection.metadata or {}), **self.identity.as_metadata()})
            return
        if found != self.identity:
            differences = [
                f"{field}: index has {getattr(found, field)!r}, settings ask for {getattr(self.identity, field)!r}"
                for field in ("embedding_model", "dimension", "chunker", "schema")
                if getattr(found, field) != getattr(self.identity, field)
            ]
            raise IndexMismatchError(
                "The index was built with different settings ("
                + "; ".join(differences)
                + "). Run `chokepoint index --rebuild` to rebuild it with the current ones."
            )

    @classmethod
    def reset(cls, client: Any, name: str, identity: IndexIdentity) -> ChunkStore:
        """Drop the collection and start an empty one (``index --rebuild``)."""
        with contextlib.suppress(Exception):  # absent already, which is what we want
            client.delete_collection(name)
        return cls(client, name, identity)

    def published_generation(self) -> int | None:
        """The index generation the last indexing run published, read fresh (one round trip).

        ``None`` for an index built before generations were published, or while another
        instance is rebuilding the collection. When another instance has rebuilt it, this
        store switches to the new collection (after the same identity check as at start).
        """
        try:
            found = self.client.get_collection(self.name, embedding_function=None)
        except NotFoundError:
            return None
        if found.id != self.collection.id:
            self._attach()
        return _generation_in(found.metadata or {})

    def change_log(self) -> ChangeLog:
        """The change log of the last indexing runs, read fresh (one round trip)."""
        return ChangeLog.from_json(self._metadata().get(_CHANGE_LOG_KEY))

    def publish_generation(self, generation: int, changed: Iterable[str] = (), removed: Iterable[str] = (), *,
                           everything: bool = False, log_keep: int = _DEFAULT_LOG_KEEP) -> None:
        """Record that the chunks now stored are index generation ``generation``, and what its run touched.

        ``changed``: sources added or edited since the generation published before; ``removed``: sources
        whose chunks are gone. ``everything``: too much to list (a rebuild), so followers rebuild.
        """
        current = self._metadata()
        run = Change.of(generation, _generation_in(current), changed, removed, everything)
        self._publish(current, run, log_keep)
        # Chroma has no compare-and-set: another data dir publishing at the same moment may have
        # written over this run's entry, and followers would then miss its sources. Checked, and
        # if so, a run that changed everything goes on top, so that every follower rebuilds.
        after = self._metadata()
        if not ChangeLog.from_json(after.get(_CHANGE_LOG_KEY)).has(generation):
            newest = max(generation, _generation_in(after) or 0) + 1
            log.warning("Another indexing run published at the same time as generation %d; publishing "
                        "generation %d so that every instance rebuilds its BM25 index.", generation, newest)
            self._publish(after, Change.of(newest, _generation_in(after), (), (), everything=True), log_keep)

    def _metadata(self) -> dict[str, Any]:
        return dict(self.client.get_collection(self.name, embedding_function=None).metadata or {})

    def _publish(self, current: dict[str, Any], run: Change, log_keep: int) -> None:
        changes = ChangeLog.from_json(current.get(_CHANGE_LOG_KEY)).with_run(run, log_keep)
        # Chroma replaces the whole metadata on modify: keep the identity keys.
        self.collection.modify(metadata={**current, _GENERATION_KEY: int(run.generation),
                                         _CHANGE_LOG_KEY: changes.to_json()})

    def _read(self, operation: Callable[[Any], _T]) -> _T:
        """Run a read on the collection: again if a concurrent write tripped it, anew if it was rebuilt."""
        attempts = 0
        while True:
            try:
                return operation(self.collection)
            except NotFoundError:
                # Another instance ran `index --rebuild` on the shared server: the collection this
                # handle names is gone and a new one with the same name replaced it.
                self._attach()
                return operation(self.collection)
            except InternalError as exc:
                # A query that meets a delete in flight can find an id in the vector index whose
                # record is already gone (seen once in about 700 queries asked during reindexing
                # on a server). Another attempt a moment later sees the settled state.
                attempts += 1
                if not is_transient_read_error(exc) or attempts >= _READ_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempts)

    def count(self) -> int:
        return self._read(lambda collection: collection.count())

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        for start in range(0, len(chunks), _ADD_BATCH):
            batch = chunks[start : start + _ADD_BATCH]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=vectors[start : start + _ADD_BATCH],
                documents=[c.text for c in batch],
                metadatas=[chunk_metadata(c) for c in batch],
            )

    def delete_sources(self, sources: Iterable[str]) -> None:
        sources = list(sources)
        for start in range(0, len(sources), 100):
            batch = sources[start : start + 100]
            where = {"source": batch[0]} if len(batch) == 1 else {"source": {"$in": batch}}
            self.collection.delete(where=where)

    def ids_for_source(self, source: str) -> list[str]:
        return list(self._read(lambda collection: collection.get(where={"source": source}, include=[]))["ids"])

    def chunks_of(self, sources: Iterable[str], batch: int = 5000) -> Iterator[Chunk]:
        """The stored chunks of ``sources``: a hundred sources per request, ``batch`` chunks per page."""
        sources = sorted(set(sources))
        for start in range(0, len(sources), 100):
            names = sources[start : start + 100]
            where = {"source": names[0]} if len(names) == 1 else {"source": {"$in": names}}
            offset = 0
            while True:
                page = self._read(lambda collection, offset=offset, where=where: collection.get(
                    where=where, include=["documents", "metadatas"], limit=batch, offset=offset))
                if not page["ids"]:
                    break
                for i, d, m in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
                    yield chunk_from_record(i, d or "", m or {})
                offset += len(page["ids"])

    def all_chunks(self, batch: int = 5000) -> Iterator[Chunk]:
        """Every stored chunk: the ids listed once, then fetched ``batch`` at a time by id.

        Paging with ``offset`` costs a scan per page: 5-7 s a page of 5,000 at a million chunks on
        a Chroma server (780 s in all), against 10 s to list the ids and under 1 s a page by id.
        A chunk removed between the listing and its page is left out, as it would be a moment later.
        """
        ids = self._read(lambda collection: collection.get(include=[]))["ids"]
        for start in range(0, len(ids), batch):
            page = self._read(lambda collection, part=ids[start : start + batch]: collection.get(
                ids=part, include=["documents", "metadatas"]))
            for i, d, m in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
                yield chunk_from_record(i, d or "", m or {})

    def sources(self) -> dict[str, int]:
        """Chunk count per source, read from the store itself."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = self._read(lambda collection, offset=offset: collection.get(
                include=["metadatas"], limit=5000, offset=offset))
            if not page["ids"]:
                return counts
            for metadata in page["metadatas"]:
                source = str((metadata or {}).get("source", ""))
                counts[source] = counts.get(source, 0) + 1
            offset += len(page["ids"])

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Ids of the ``k`` nearest chunks to a unit query vector that pass ``filters``, with cosine similarity.

        Ids only: texts and metadata are fetched for the few chunks that make the final cut
        (``records``), and the collection is not counted first (a full table count, 12 ms at
        100k chunks; Chroma answers an empty collection with no ids).
        """
        where = where_clause(filters) if filters is not None else None
        result = self._read(lambda collection: collection.query(
            query_embeddings=[vector], n_results=k, where=where, include=["distances"],
        ))
        # Chroma's default space is squared L2; for unit vectors cos = 1 - d/2.
        return [(i, 1.0 - float(d) / 2.0) for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def records(self, ids: Sequence[str]) -> tuple[list[Chunk], np.ndarray]:
        """The chunks still stored among ``ids``, in the order asked, and their vectors: one round trip.

        An id found by a search a moment ago may be gone: a reindex deletes a changed file's
        chunks while queries run.
        """
        if not ids:
            return [], np.zeros((0, self.identity.dimension), dtype=np.float32)
        found = self._read(lambda collection: collection.get(
            ids=list(ids), include=["documents", "metadatas", "embeddings"]))
        by_id = {
            i: (chunk_from_record(i, d or "", m or {}), e)
            for i, d, m, e in zip(found["ids"], found["documents"], found["metadatas"], found["embeddings"],
                                  strict=True)
        }
        kept = [by_id[i] for i in ids if i in by_id]
        rows = np.asarray([e for _, e in kept], dtype=np.float32).reshape(len(kept), self.identity.dimension)
        return [chunk for chunk, _ in kept], rows


def _generation_in(metadata: dict[str, Any]) -> int | None:
    value = metadata.get(_GENERATION_KEY)
    return int(value) if value is not None else None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
