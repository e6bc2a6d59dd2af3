"""Bringing a data dir's BM25 index to the generation the store published.

When the data dir holds that generation already, it is loaded. Otherwise, when the store's change
log (``index.change_log``) says which sources the runs in between changed or removed, only those
sources' chunks are fetched, and their rows replace the old ones (``LexicalIndex.replaced``, the
same in-place segment update the indexer makes). Else the index is rebuilt from every chunk in the
store: no index yet, more runs missed than the log keeps, a run that changed everything (a
rebuild), or a generation that does not descend from this one (the collection was replaced).

Either way the result is labelled with the generation read before its chunks were: a run that
lands meanwhile publishes a newer one, and the next check follows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.change_log import ChangeLogGapError
from index.chunk import Chunk
from index.lexical import LexicalIndex, lexical_row
from index.store import ChunkStore

log = logging.getLogger(__name__)


def follow(store: ChunkStore, root: Path, held: LexicalIndex | None,
           generation: int) -> tuple[LexicalIndex, Follow]:
    """The BM25 index for ``generation``: loaded from ``root``, updated from ``held`` (or the one saved
    under ``root``) with the sources the change log names, or rebuilt. Saving it is the caller's part."""
    started = time.perf_counter()
    held_generation = held.generation if held is not None else None
    if LexicalIndex.saved_generation(root) == generation:
        loaded = LexicalIndex.load(root, reuse=held)  # segments held already are not read again
        if loaded is not None and loaded.generation == generation:
            done = Follow(held_generation, generation, "loaded", 0, time.perf_counter() - started)
            log.info("BM25 index of generation %d loaded from %s (%.2f s)", generation, root, done.seconds)
            return loaded, done
    base = held if held is not None else LexicalIndex.load(root)
    if base is None:
        return rebuild(store, generation, "this data dir has no BM25 index yet")
    try:
        touched = store.change_log().touched_between(base.generation, generation)
    except ChangeLogGapError as gap:
        return rebuild(store, generation, str(gap), base.generation)
    chunks = _unique(store.chunks_of(touched))
    updated = base.replaced(touched, (lexical_row(chunks[i]) for i in sorted(chunks)), generation)
    done = Follow(base.generation, generation, "incremental", len(chunks), time.perf_counter() - started)
    log.info("BM25 index followed generation %d to %d incrementally: %d sources changed or removed, "
             "%d chunks fetched, %.2f s", base.generation, generation, len(touched), len(chunks), done.seconds)
    return updated, done


def rebuild(store: ChunkStore, generation: int, reason: str,
            from_generation: int | None = None) -> tuple[LexicalIndex, Follow]:
    """The BM25 index for ``generation`` built from every chunk in the store (``reason``: why, for the log)."""
    started = time.perf_counter()
    rebuilt = LexicalIndex.from_chunks(store.all_chunks(), generation)
    done = Follow(from_generation, generation, "rebuilt", len(rebuilt), time.perf_counter() - started, reason)
    log.info("BM25 index rebuilt from the store's %d chunks for generation %d (%.1f s): %s",
             len(rebuilt), generation, done.seconds, reason)
    return rebuilt, done


def _unique(chunks: Iterable[Chunk]) -> dict[str, Chunk]:
    # Paging through a collection that another process is writing can return a chunk twice;
    # a duplicate row would count twice in rank fusion.
    return {chunk.id: chunk for chunk in chunks}


@dataclass(frozen=True)
class Follow:
    """How a BM25 index reached a generation, for logs, tests and benchmarks."""

    from_generation: int | None
    """The generation of the index it started from; None when there was none."""
    to_generation: int
    mode: Literal["loaded", "incremental", "rebuilt"]
    chunks_fetched: int
    """Distinct chunks read from the store: the changed sources' (incremental) or all of them (rebuilt)."""
    seconds: float
    reason: str = ""
    """Why it was rebuilt: what kept the change log from being used."""
