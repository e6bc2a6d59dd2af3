"""The manifest: which source files are in the index, as what content, in SQLite.

It doubles as the indexer's journal. Before a file's chunks are touched in the store, its
row is marked ``pending``; only after the store has committed the new chunks is the row
marked ``done`` with the new hash. A run killed in between leaves ``pending`` rows, and the
next run deletes those files' chunks and indexes them again: nothing orphaned, nothing doubled.

It also keeps each chunk's BM25 tokens, written in the same transaction as the file's
``done`` mark, so the lexical index can be rebuilt without touching the store; and, when
``Settings.sentence_vectors`` is on, the embedding of each sentence of its chunks, found again by
the sentence's text at question time (``sentence_vectors``), where computing them cost most of an
extractive answer's time. A sentence that two files share is kept once per file, so forgetting one
file leaves the other's.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    indexed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lexical (
    chunk_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    tokens TEXT NOT NULL,
    filters TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lexical_path ON lexical (path);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sentence_vectors (
    key BLOB NOT NULL,
    path TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (key, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sentence_vectors_path ON sentence_vectors (path);
"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    chunks: int
    state: str
    indexed_at: str


@dataclass(frozen=True)
class SentenceVector:
    path: str
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class LexicalRow:
    chunk_id: str
    path: str
    tokens: list[str]
    filters: dict


def sentence_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class Manifest:
    """SQLite-backed record of indexed files (WAL mode, one writer at a time)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # The query threads of an app read sentence vectors through this one connection.
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute("SELECT path, size, mtime_ns, sha256, chunks, state, indexed_at FROM files")
        return {row[0]: FileRecord(*row) for row in rows}

    def mark_pending(self, paths: Iterable[str]) -> None:
        """Journal: these files' chunks are about to change."""
        with self._transaction():
            for path in paths:
                self._db.execute(
                    "INSERT INTO files (path, size, mtime_ns, sha256, chunks, state, indexed_at) "
                    "VALUES (?, 0, 0, '', 0, 'pending', '') "
                    "ON CONFLICT(path) DO UPDATE SET state = 'pending'",
                    (path,),
                )

    def commit_files(self, records: Iterable[FileRecord], lexical: Iterable[LexicalRow],
                     sentences: Iterable[SentenceVector] = ()) -> None:
        """Mark files done, with their chunks' BM25 tokens and sentence vectors, in one transaction."""
        records = list(records)
        with self._transaction():
            for record in records:
                self._db.execute("DELETE FROM lexical WHERE path = ?", (record.path,))
                self._db.execute("DELETE FROM sentence_vectors WHERE path = ?", (record.path,))
                self._db.execute(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, 'done', ?)",
                    (record.path, record.size, record.mtime_ns, record.sha256, record.chunks, record.indexed_at),
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO lexical VALUES (?, ?, ?, ?)",
                ((r.chunk_id, r.path, " ".join(r.tokens), json.dumps(r.filters)) for r in lexical),
            )
            self._insert_sentence_vectors(sentences)
            if records:
                self._bump_generation()

    def add_sentence_vectors(self, sentences: Iterable[SentenceVector]) -> None:
        """Sentence vectors for files already done (a data dir indexed before they were kept)."""
        with self._transaction():
            self._insert_sentence_vectors(sentences)

    def _insert_sentence_vectors(self, sentences: Iterable[SentenceVector]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO sentence_vectors VALUES (?, ?, ?)",
            ((sentence_key(s.text), s.path, np.asarray(s.vector, dtype=np.float32).tobytes()) for s in sentences),
        )

    def sentence_vectors(self, texts: list[str], dimension: int) -> dict[str, np.ndarray]:
        """The stored vectors of those of ``texts`` that are sentences of indexed chunks."""
        keys = {sentence_key(text): text for text in texts}
        found: dict[str, np.ndarray] = {}
        wanted = list(keys)
        with self._lock:
            for start in range(0, len(wanted), 500):  # SQLite caps the parameters of one statement
                part = wanted[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, vector FROM sentence_vectors WHERE key IN ({','.join('?' * len(part))})", part)
                for key, blob in rows:
                    if len(blob) == 4 * dimension:  # another model's vectors are not these
                        found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def paths_without_sentence_vectors(self) -> list[str]:
        """Files done whose chunks have no sentence vectors kept (indexed before they were)."""
        rows = self._db.execute(
            "SELECT path FROM files WHERE state = 'done' AND chunks > 0 "
            "AND path NOT IN (SELECT DISTINCT path FROM sentence_vectors) ORDER BY path")
        return [row[0] for row in rows]

    def forget(self, paths: Iterable[str]) -> None:
        """Files whose chunks were deleted from the store."""
        with self._transaction():
            for path in paths:
                self._db.execute("DELETE FROM files WHERE path = ?", (path,))
                self._db.execute("DELETE FROM lexical WHERE path = ?", (path,))
                self._db.execute("DELETE FROM sentence_vectors WHERE path = ?", (path,))
            self._bump_generation()

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Content unchanged but the file was touched: remember the new stat to skip hashing next time."""
        self._db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def lexical_rows(self, paths: Iterable[str] | None = None) -> Iterator[LexicalRow]:
        """The BM25 rows of every chunk, or of the chunks of ``paths``, in chunk id order."""
        select = "SELECT chunk_id, path, tokens, filters FROM lexical"
        if paths is None:
            batches = [(f"{select} ORDER BY chunk_id", ())]
        else:
            wanted = sorted(set(paths))
            # In batches: SQLite caps the number of parameters in one statement.
            batches = [
                (f"{select} WHERE path IN ({','.join('?' * len(part))}) ORDER BY chunk_id", tuple(part))
                for part in (wanted[i:i + 500] for i in range(0, len(wanted), 500))
            ]
        for query, args in batches:
            for chunk_id, path, tokens, filters in self._db.execute(query, args):
                yield LexicalRow(chunk_id, path, tokens.split(" ") if tokens else [], json.loads(filters))

    def lexical_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM lexical").fetchone()[0]

    def clear(self) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM files")
            self._db.execute("DELETE FROM lexical")
            self._db.execute("DELETE FROM sentence_vectors")
            self._bump_generation()

    def generation(self) -> int:
        """Goes up with every change to the indexed content; the BM25 index records the one it saw.

        A clock reading in nanoseconds (or the last value plus one, if larger), not a count: data
        dirs that index into one Chroma server publish their generations there, and two of them
        must never publish the same number for different content.
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def get_meta(self, key: str, default: str = "") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def external_labels(self) -> dict[str, str]:
        """``external/<label>`` name prefixes in use, each with the full path of its folder."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'external:%'").fetchall()
        return {key.removeprefix("external:"): value for key, value in rows}

    def set_external_label(self, label: str, folder: str) -> None:
        self.set_meta(f"external:{label}", folder)

    def _bump_generation(self) -> None:
        now = time.time_ns()
        self._db.execute(
            "INSERT INTO meta VALUES ('generation', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER) + 1, ?)",
            (now, now),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
