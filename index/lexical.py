"""BM25 over the same chunks as the vector store, kept in segments that are never rewritten.

An index is a list of immutable segments (the term frequencies of a batch of chunks, as numpy
arrays) and, per segment, which of its rows are deleted. IDF and average length are global, so
they are computed at query time from the live rows of every segment: a reindex that changes one
file marks its old rows deleted and adds one small segment, instead of rebuilding the index from
every chunk's tokens (5-7 s at 100k chunks). When segments or deleted rows pile up, they are
merged from their postings, a segment's worth at a time. Scores are the Lucene BM25 variant, the same as ``bm25s``
computes (k1 1.2, b 0.75), with ties broken by chunk id so that row order never changes a ranking.

Each saved index records the manifest generation it reflects, so a reader can tell when a newer
one exists. With a shared Chroma server the chunks themselves are the source of truth: an
instance that finds the server at another generation than its own BM25 index fetches the chunks
of the sources the server's change log names and applies them with ``replaced``, or, when the
log cannot say, rebuilds from all the server's chunks (``from_chunks``); see ``index.lexical_follow``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from index.chunk import Chunk
from index.filters import Filters, date_number
from index.manifest import LexicalRow
from index.segment import Segment
from index.words import tokenize


def chunk_filters(source: str, publisher: str, topics: Iterable[str], date_num: int) -> dict:
    return {"source": source, "publisher": publisher, "topics": sorted(topics), "date": date_num}


def lexical_row(chunk: Chunk) -> LexicalRow:
    """What BM25 keeps of a chunk: the tokens of what the embedder reads, and the filter fields."""
    return LexicalRow(
        chunk.id, chunk.source, tokenize(chunk.embedding_text),
        chunk_filters(chunk.source, chunk.publisher, chunk.topics, date_number(chunk.date)),
    )


K1 = 1.2
B = 0.75
SEGMENT_ROWS = 1 << 16
"""Rows per segment at most, when built or merged: bounds the memory a build or a merge needs.

One segment of a million chunks took 2.4 GiB to build and 2.1 GiB more to merge; at this size the
temporaries are tens of MiB, and a query looks a term up in sixteen segments instead of one.
"""
MAX_SMALL_SEGMENTS = 8
MAX_DELETED = 0.25
"""Merge when more than this many segments hold under ``SEGMENT_ROWS`` live rows (each update adds
one), or when this share of some segment's rows is deleted (it is rewritten with its live rows)."""
_WEIGHT_BLOCK = 1 << 18
"""Postings per block when working out term-frequency weights (2 MiB float64 temporaries)."""


class LexicalIndex:
    """BM25 over segments, plus per row the chunk id and the fields filters look at."""

    def __init__(self, segments: list[Segment], deleted: list[np.ndarray], generation: int) -> None:
        self.segments = segments
        self.deleted = deleted
        self.generation = generation
        self._starts = np.cumsum([0, *(len(s.ids) for s in segments)])
        self._ids = [i for s in segments for i in s.ids]
        self._live = np.concatenate([~d for d in deleted]) if segments else np.zeros(0, dtype=bool)
        self._count = int(self._live.sum())
        # Lengths are whole numbers: the float64 sum is exact, so every build order gives the same average.
        live_length = sum(float(s.lengths[~d].astype(np.float64).sum()) for s, d in zip(segments, deleted, strict=True))
        self._avg_length = live_length / max(self._count, 1)
        # Each posting's term-frequency part of the score depends only on global figures fixed for
        # this index's life, so it is worked out once here, not on every query.
        self._weights = [self._tf_weights(s) for s in segments]
        self._pruned = [bool(d.any()) for d in deleted]
        self._masks: dict[Filters, np.ndarray] = {}

    def _tf_weights(self, segment: Segment) -> np.ndarray:
        weights = np.empty(segment.tfs.size, dtype=np.float32)
        # In blocks: over a whole segment of a million chunks (31M postings) the float64
        # temporaries added 0.8 GiB to the peak of every load. Element-wise, so the result is the same.
        for start in range(0, weights.size, _WEIGHT_BLOCK):
            part = slice(start, start + _WEIGHT_BLOCK)
            tfs = segment.tfs[part].astype(np.float64)
            norm = K1 * ((1 - B) + B * segment.lengths[segment.rows[part]].astype(np.float64) / self._avg_length)
            weights[part] = tfs / (norm + tfs)
        return weights

    @classmethod
    def build(cls, rows: Iterable[LexicalRow], generation: int) -> LexicalIndex:
        segments = _segments(rows)
        return cls(segments, [np.zeros(len(s.ids), dtype=bool) for s in segments], generation)

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], generation: int) -> LexicalIndex:
        """Build from stored chunks, one at a time, in the order they come.

        Only their ids are held besides the index. Holding every chunk first, to sort them, raised
        the peak RSS of a build from 100k stored chunks from 897 to 1,317 MiB. Rankings do not depend
        on row order (the average length is an exact sum, and ties go by chunk id).
        """
        # Paging through a collection that another process is writing can return a chunk twice;
        # a duplicate row would count twice in rank fusion.
        seen: set[str] = set()

        def rows() -> Iterator[LexicalRow]:
            for chunk in chunks:
                if chunk.id not in seen:
                    seen.add(chunk.id)
                    yield lexical_row(chunk)

        return cls.build(rows(), generation)

    def replaced(self, sources: Iterable[str], rows: Iterable[LexicalRow], generation: int) -> LexicalIndex:
        """This index with every row of ``sources`` deleted and ``rows`` added as new segments."""
        sources = set(sources)
        deleted = [
            d | np.fromiter((f.source in sources for f in s.fields), dtype=bool, count=len(s.fields))[s.fields_of]
            for s, d in zip(self.segments, self.deleted, strict=True)
        ]
        segments = list(self.segments)
        for added in _segments(rows):
            segments.append(added)
            deleted.append(np.zeros(len(added.ids), dtype=bool))
        while chosen := _to_merge([len(s.ids) for s in segments], [int(d.sum()) for d in deleted]):
            merged = Segment.merged([(segments[i], ~deleted[i]) for i in chosen])
            segments = [s for i, s in enumerate(segments) if i not in chosen]
            deleted = [d for i, d in enumerate(deleted) if i not in chosen]
            if merged.ids:
                segments.append(merged)
                deleted.append(np.zeros(len(merged.ids), dtype=bool))
        return LexicalIndex(segments, deleted, generation)

    def __len__(self) -> int:
        return self._count

    @property
    def ids(self) -> list[str]:
        """The chunk ids in the index, sorted."""
        return sorted(i for i, live in zip(self._ids, self._live, strict=True) if live)

    def sources(self) -> set[str]:
        """The sources that have chunks in the index."""
        return {s.fields[code].source for s, d in zip(self.segments, self.deleted, strict=True)
                for code in np.unique(s.fields_of[~d]).tolist()}

    def knows(self, term: str) -> bool:
        """Whether a (tokenized) term occurs anywhere in the indexed chunks."""
        return self._postings(term)[0].size > 0

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows (numbered across segments) of the live chunks that contain ``term``, and their weights."""
        rows, weights = [], []
        for start, segment, deleted, pruned, weight in zip(self._starts, self.segments, self.deleted, self._pruned,
                                                           self._weights, strict=False):
            column = segment.vocab.get(term)
            if column is None:
                continue
            span = slice(segment.indptr[column], segment.indptr[column + 1])
            found, found_weight = segment.rows[span], weight[span]
            if pruned:
                live = ~deleted[found]
                found, found_weight = found[live], found_weight[live]
            rows.append(found + start)
            weights.append(found_weight)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return (rows[0], weights[0]) if len(rows) == 1 else (np.concatenate(rows), np.concatenate(weights))

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 score (only chunks passing ``filters``; zero scores dropped)."""
        if not self._count:
            return []
        scores = np.zeros(len(self._ids), dtype=np.float64)
        for term, times in Counter(tokenize(query)).items():
            rows, weights = self._postings(term)
            if not rows.size:
                continue
            idf = math.log(1 + (self._count - rows.size + 0.5) / (rows.size + 0.5))
            scores[rows] += (times * idf) * weights
        if filters is not None and not filters.is_empty():
            scores *= self._mask(filters)
        hits = np.flatnonzero(scores > 0)
        if hits.size > k:
            # Everything tied with the k-th score stays in, so the id tie-break below decides.
            kth = np.partition(scores[hits], hits.size - k)[hits.size - k]
            hits = hits[scores[hits] >= kth]
        ranked = sorted(hits.tolist(), key=lambda r: (-scores[r], self._ids[r]))[:k]
        return [(self._ids[r], float(scores[r])) for r in ranked]

    def _mask(self, filters: Filters) -> np.ndarray:
        mask = self._masks.get(filters)
        if mask is None:
            # One test per distinct set of fields (about one per source), spread to the rows that share it.
            mask = np.concatenate([
                np.fromiter((filters.matches(*f) for f in s.fields), dtype=np.float64,
                            count=len(s.fields))[s.fields_of]
                for s in self.segments
            ])
            if len(self._masks) >= 16:  # a chat session reuses a few; never grow without bound
                self._masks.clear()  # (one call: safe beside query threads reading it)
            self._masks[filters] = mask
        return mask

    # Persistence: segments under segments/, written once each; a generation is a folder g{N}
    # holding state.json (its segments and their deleted rows); CURRENT names the live one.
    # Replacing CURRENT is atomic, so a reader never sees half an index. Two writers may save
    # at once (the indexer, and a query thread that rebuilt from the store): temporary names are
    # unique, and a generation already saved by the other is kept, since both hold the same chunks.
    def save(self, root: Path) -> None:
        segments_dir = root / "segments"
        segments_dir.mkdir(parents=True, exist_ok=True)
        for segment in self.segments:
            if not (segments_dir / segment.name / "chunks.json").exists():
                segment.save(segments_dir / segment.name)
        folder = root / f"g{self.generation}"
        staging = root / f".g{self.generation}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        staging.mkdir()
        state = {"generation": self.generation, "segments": [
            {"name": s.name, "deleted": np.flatnonzero(d).tolist()}
            for s, d in zip(self.segments, self.deleted, strict=True)
        ]}
        (staging / "state.json").write_text(json.dumps(state))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / "state.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # the other writer's copy landed in between
        current = root / f".CURRENT.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        current.write_text(folder.name)
        os.replace(current, root / "CURRENT")
        for old in root.glob("g*"):
            if old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        # The generation folder may be another writer's (see above): keep what its state names too.
        used = {s.name for s in self.segments} | _named_segments(folder / "state.json")
        _remove_unused_segments(segments_dir, used)
        _remove_orphans(root)
        _remove_orphans(segments_dir)

    @staticmethod
    def saved_generation(root: Path) -> int | None:
        try:
            return int((root / "CURRENT").read_text().strip().lstrip("g"))
        except (OSError, ValueError):
            return None

    @classmethod
    def load(cls, root: Path, reuse: LexicalIndex | None = None) -> LexicalIndex | None:
        """The saved index, or None if there is none or it cannot be read (the caller rebuilds it).

        Segments that ``reuse`` already holds are taken from it, not read again.
        """
        generation = cls.saved_generation(root)
        if generation is None:
            return None
        held = {s.name: s for s in reuse.segments} if reuse is not None else {}
        try:
            state = json.loads((root / f"g{generation}" / "state.json").read_text())
            segments, deleted = [], []
            for entry in state["segments"]:
                name = entry["name"]
                segment = held.get(name) or Segment.load(root / "segments" / name)
                mask = np.zeros(len(segment.ids), dtype=bool)
                mask[entry["deleted"]] = True
                segments.append(segment)
                deleted.append(mask)
        except (OSError, ValueError, KeyError, IndexError):
            return None
        return cls(segments, deleted, generation)


def _segments(rows: Iterable[LexicalRow]) -> list[Segment]:
    """``rows`` as segments of at most ``SEGMENT_ROWS`` rows, built one after the other."""
    rows = iter(rows)
    segments = []
    while (segment := Segment.from_rows(itertools.islice(rows, SEGMENT_ROWS))).ids:
        segments.append(segment)
    return segments


def _to_merge(sizes: list[int], dead: list[int]) -> list[int]:
    """The segments (by position) to merge next into one: none, one to rewrite, or several.

    Segments with more than ``MAX_DELETED`` of their rows deleted come first, then the small ones,
    smallest first, while they add up to at most ``SEGMENT_ROWS`` live rows (two at least). So a
    merge costs about one segment's work, never the whole index's, and the large segments of a big
    index are left alone until deletions pile up in them. ``replaced`` asks again until none is left.
    """
    live = [size - gone for size, gone in zip(sizes, dead, strict=True)]
    by_live = sorted(range(len(sizes)), key=lambda i: live[i])
    heavy = [i for i in by_live if dead[i] and dead[i] > MAX_DELETED * sizes[i]]
    small = [i for i in by_live if live[i] < SEGMENT_ROWS and i not in heavy]
    if not heavy and len(small) <= MAX_SMALL_SEGMENTS:
        return []
    first, *rest = heavy + small
    chosen, total = [first], live[first]
    for i in rest:
        if len(chosen) >= 2 and total + live[i] > SEGMENT_ROWS:
            break
        chosen.append(i)
        total += live[i]
    return sorted(chosen)


def _named_segments(state: Path) -> set[str]:
    try:
        return {entry["name"] for entry in json.loads(state.read_text())["segments"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _remove_unused_segments(segments_dir: Path, used: set[str]) -> None:
    """Segments no generation needs any more.

    A writer saving at the same moment may have just written a segment that its CURRENT will
    name: a young one is left for the next save to judge. A reader that loses a segment it was
    about to read rebuilds from the store.
    """
    cutoff = time.time() - 600
    for folder in segments_dir.glob("s*"):
        try:
            if folder.name not in used and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def _remove_orphans(root: Path) -> None:
    """Temporary files and folders left by writers that were killed (their process is gone)."""
    for path in root.glob(".*.tmp"):  # .{what}.{pid}.{random}.tmp
        try:
            os.kill(int(path.name.split(".")[2]), 0)
        except ProcessLookupError:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        except (ValueError, IndexError, OSError):
            continue  # not ours, or alive under another user: leave it
