"""One BM25 segment: the term frequencies of a batch of chunks, written once and never rewritten.

``index.lexical`` holds a list of these with, per segment, which rows are deleted, and scores
across them; a segment only knows its own rows, their filter fields and its folder on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from index.manifest import LexicalRow


class Fields(NamedTuple):
    """What filters look at. The chunks of one source share them, so a segment keeps each once."""

    source: str
    publisher: str
    topics: frozenset[str]
    date: int

    @classmethod
    def of(cls, filters: dict) -> Fields:
        return cls(filters["source"], filters["publisher"], frozenset(filters["topics"]), filters["date"])


@dataclass(frozen=True, eq=False)
class Segment:
    """Term frequencies of a batch of chunks, in compressed sparse columns: one column per term."""

    name: str
    ids: list[str]
    fields: list[Fields]  # distinct ones; fields_of[row] indexes this list
    fields_of: np.ndarray
    vocab: dict[str, int]
    indptr: np.ndarray  # postings of term column j: rows[indptr[j]:indptr[j + 1]]
    rows: np.ndarray
    tfs: np.ndarray
    lengths: np.ndarray  # tokens per row, duplicates counted, as BM25's document length

    @classmethod
    def from_rows(cls, rows: Iterable[LexicalRow]) -> Segment:
        ids: list[str] = []
        fields: dict[Fields, int] = {}
        fields_of: list[int] = []
        vocab: dict[str, int] = {}
        # Counted per row into 4-byte arrays: a list of Python ints, or a (row, term) key per token
        # counted with np.unique, cost 30-60 bytes per token and set the peak of a large build.
        term_of, tfs, distinct = array("i"), array("i"), array("i")
        lengths: list[int] = []
        for row in rows:
            ids.append(row.chunk_id)
            fields_of.append(fields.setdefault(Fields.of(row.filters), len(fields)))
            lengths.append(len(row.tokens))
            counts = Counter(row.tokens)
            term_of.extend(vocab.setdefault(token, len(vocab)) for token in counts)
            tfs.extend(counts.values())
            distinct.append(len(counts))
        row_of = np.repeat(np.arange(len(ids), dtype=np.int32), np.frombuffer(distinct, dtype=np.int32))
        return cls._from_postings(ids, list(fields), np.asarray(fields_of, dtype=np.int64), list(vocab),
                                  np.frombuffer(term_of, dtype=np.int32), row_of, np.frombuffer(tfs, dtype=np.int32),
                                  np.asarray(lengths, dtype=np.int64))

    @classmethod
    def merged(cls, parts: list[tuple[Segment, np.ndarray]]) -> Segment:
        """One segment holding the live rows (``live`` masks) of ``parts``, built from their postings."""
        vocab: dict[str, int] = {}
        ids: list[str] = []
        fields: dict[Fields, int] = {}
        terms, rows, tfs, lengths, fields_of = [], [], [], [], []
        for segment, live in parts:
            keep = np.flatnonzero(live)
            new_row = np.full(len(segment.ids), -1, dtype=np.int64)
            new_row[keep] = np.arange(len(ids), len(ids) + len(keep))
            ids.extend(segment.ids[i] for i in keep)
            new_fields = np.fromiter((fields.setdefault(f, len(fields)) for f in segment.fields), dtype=np.int64,
                                     count=len(segment.fields))
            fields_of.append(new_fields[segment.fields_of[keep]])
            lengths.append(segment.lengths[keep])
            new_term = np.fromiter((vocab.setdefault(t, len(vocab)) for t in segment.vocab), dtype=np.int64,
                                   count=len(segment.vocab))
            term_of = np.repeat(new_term, np.diff(segment.indptr))
            row_of = new_row[segment.rows]
            alive = row_of >= 0
            terms.append(term_of[alive])
            rows.append(row_of[alive])
            tfs.append(segment.tfs[alive])

        def joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

        return cls._from_postings(ids, list(fields), joined(fields_of, np.int64), list(vocab),
                                  joined(terms, np.int64), joined(rows, np.int64), joined(tfs, np.int64),
                                  joined(lengths, np.int64))

    @classmethod
    def _from_postings(cls, ids: list[str], fields: list[Fields], fields_of: np.ndarray, terms: list[str],
                       term_of: np.ndarray, row_of: np.ndarray, tfs: np.ndarray, lengths: np.ndarray) -> Segment:
        counts = np.bincount(term_of, minlength=len(terms))
        used = np.flatnonzero(counts)  # a merge drops the terms only deleted rows had
        order = np.lexsort((row_of, term_of))
        indptr = np.zeros(len(used) + 1, dtype=np.int64)
        np.cumsum(counts[used], out=indptr[1:])
        return cls(
            name=f"s{uuid.uuid4().hex}", ids=ids, fields=fields, fields_of=fields_of.astype(np.int32),
            vocab={terms[j]: n for n, j in enumerate(used)}, indptr=indptr,
            rows=row_of[order].astype(np.int32), tfs=tfs[order].astype(np.float32),
            lengths=lengths.astype(np.float32),
        )

    def save(self, folder: Path) -> None:
        """Written once under a temporary name and renamed into place: never seen half written."""
        staging = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        staging.mkdir(parents=True)
        np.savez(staging / "postings.npz", indptr=self.indptr, rows=self.rows, tfs=self.tfs, lengths=self.lengths,
                 fields_of=self.fields_of)
        (staging / "terms.json").write_text(json.dumps(list(self.vocab)))
        fields = [[f.source, f.publisher, sorted(f.topics), f.date] for f in self.fields]
        (staging / "chunks.json").write_text(json.dumps({"ids": self.ids, "fields": fields}))
        try:
            os.replace(staging, folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "chunks.json").exists():
                raise

    @classmethod
    def load(cls, folder: Path) -> Segment:
        with np.load(folder / "postings.npz") as arrays:
            postings = {key: arrays[key] for key in ("indptr", "rows", "tfs", "lengths", "fields_of")}
        terms = json.loads((folder / "terms.json").read_text())
        chunks = json.loads((folder / "chunks.json").read_text())
        fields = [Fields(source, publisher, frozenset(topics), date)
                  for source, publisher, topics, date in chunks["fields"]]
        return cls(name=folder.name, ids=chunks["ids"], fields=fields,
                   vocab={t: n for n, t in enumerate(terms)}, **postings)
