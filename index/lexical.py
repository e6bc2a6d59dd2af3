"""BM25 over the same chunks as the vector store, with ``bm25s``.

Built at indexing time from the tokens the manifest keeps, saved under the data dir and
loaded once per process. Each saved index records the manifest generation it reflects, so a
reader can tell when a newer one exists. With a shared Chroma server the chunks themselves are
the source of truth: an instance that finds the server at another generation than its own
BM25 index rebuilds it from the server's chunks (``LexicalIndex.from_chunks``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from index.chunking import Chunk
from index.filters import Filters
from index.manifest import LexicalRow

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*%?|[^\W\d_]+", re.UNICODE)


_STEMMER = None


def _stemmer():
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


_STOP: frozenset[str] | None = None


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers, English stop words removed, Snowball-stemmed."""
    global _STOP
    if _STOP is None:
        _STOP = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)


def chunk_filters(source: str, publisher: str, topics: Iterable[str], date_num: int) -> dict:
    return {"source": source, "publisher": publisher, "topics": sorted(topics), "date": date_num}


def lexical_row(chunk: Chunk) -> LexicalRow:
    """What BM25 keeps of a chunk: the tokens of what the embedder reads, and the filter fields."""
    from index.store import date_number

    return LexicalRow(
        chunk.id, chunk.source, tokenize(chunk.embedding_text),
        chunk_filters(chunk.source, chunk.publisher, chunk.topics, date_number(chunk.date)),
    )


class LexicalIndex:
    """A BM25 index plus, per row, the chunk id and the fields filters look at."""

    def __init__(self, retriever, ids: list[str], fields: list[dict], generation: int) -> None:
        self._retriever = retriever
        self.ids = ids
        self._fields = fields
        self.generation = generation
        self._vocab = set(retriever.vocab_dict) if retriever is not None else set()

    @classmethod
    def build(cls, rows: Iterable[LexicalRow], generation: int) -> LexicalIndex:
        import bm25s

        ids, fields, corpus = [], [], []
        for row in rows:
            ids.append(row.chunk_id)
            fields.append(row.filters)
            corpus.append(row.tokens)
        if not ids:
            return cls(None, [], [], generation)
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index(corpus, show_progress=False)
        return cls(retriever, ids, fields, generation)

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], generation: int) -> LexicalIndex:
        """Build from stored chunks, in the same row order as ``build`` from the manifest gets."""
        # Paging through a collection that another process is writing can return a chunk twice;
        # a duplicate row would count twice in rank fusion.
        unique = {chunk.id: chunk for chunk in chunks}
        return cls.build((lexical_row(unique[i]) for i in sorted(unique)), generation)

    def __len__(self) -> int:
        return len(self.ids)

    def sources(self) -> set[str]:
        """The sources that have chunks in the index."""
        return {fields["source"] for fields in self._fields}

    def knows(self, term: str) -> bool:
        """Whether a (tokenized) term occurs anywhere in the indexed chunks."""
        return term in self._vocab

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 score (only chunks passing ``filters``; zero scores dropped)."""
        if self._retriever is None:
            return []
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return []
        scores = self._retriever.get_scores(tokens)
        if filters is not None and not filters.is_empty():
            scores = scores * self._mask(filters)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def _mask(self, filters: Filters) -> np.ndarray:
        return np.fromiter(
            (filters.matches(f["source"], f["publisher"], frozenset(f["topics"]), f["date"]) for f in self._fields),
            dtype=np.float32, count=len(self._fields),
        )

    # Persistence: each generation in its own folder, CURRENT names the live one. Replacing
    # CURRENT is atomic, so a reader never sees half an index. Two writers may save at once
    # (the indexer, and a query thread that rebuilt from the store): temporary names are unique,
    # and a generation already saved by the other is kept, since both hold the same chunks.
    def save(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        folder = root / f"g{self.generation}"
        staging = root / f".g{self.generation}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        staging.mkdir()
        if self._retriever is not None:
            self._retriever.save(str(staging), show_progress=False)
        (staging / "chunks.json").write_text(json.dumps({"ids": self.ids, "fields": self._fields}))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / "chunks.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # the other writer's copy landed in between
        current = root / f".CURRENT.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        current.write_text(folder.name)
        os.replace(current, root / "CURRENT")
        for old in root.glob("g*"):
            if old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        _remove_orphans(root)

    @staticmethod
    def saved_generation(root: Path) -> int | None:
        try:
            return int((root / "CURRENT").read_text().strip().lstrip("g"))
        except (OSError, ValueError):
            return None

    @classmethod
    def load(cls, root: Path) -> LexicalIndex | None:
        import bm25s

        generation = cls.saved_generation(root)
        if generation is None:
            return None
        folder = root / f"g{generation}"
        try:
            data = json.loads((folder / "chunks.json").read_text())
            retriever = None
            if data["ids"]:
                retriever = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        except (OSError, ValueError, KeyError):
            return None
        return cls(retriever, data["ids"], data["fields"], generation)


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
