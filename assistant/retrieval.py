"""Hybrid retrieval: dense (Chroma) and BM25 over the same chunks, fused by reciprocal rank.

The BM25 index is built at indexing time; the retriever loads it once and reloads it only
when the index generation changes. The store publishes the generation of its chunks; when
another app instance reindexed the shared Chroma server, this instance's BM25 index is behind,
and it follows: only the sources the store's change log names are fetched again, or, when the
log cannot say, the index is rebuilt from the server's chunks (``index.lexical_follow``).
Filters run inside both searches.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.passage import Passage
from assistant.text import distinctive_terms
from index.chunk import Chunk
from index.embedding import TextEmbedder
from index.filters import Filters
from index.lexical import LexicalIndex
from index.lexical_follow import Follow, follow
from index.settings import Settings
from index.store import ChunkStore
from index.words import tokenize


@dataclass(frozen=True)
class RetrievalResult:
    passages: list[Passage]
    seconds: float
    query: str
    query_vector: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))


def _known_with_a_typo(word: str, lexical: LexicalIndex) -> bool:
    """Whether the index knows a word one edit away from ``word`` ("gothai" for "gotha"): a misspelt
    name is still a question about something the sources cover. Words under five letters are left
    alone: one edit turns most of them into another real word.

    The edits are made to the word as typed and then stemmed as the index stems its words: "hikvison"
    is one edit from "hikvision", whose stem "hikvis" is two edits from the typo's own.
    """
    word = word.lower()
    if len(word) < 5 or not word.isalpha():
        return False
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    edits = {a + b[1:] for a, b in splits if b}
    edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    edits |= {a + c + b[1:] for a, b in splits if b for c in letters}
    edits |= {a + c + b for a, b in splits for c in letters}
    edits.discard(word)
    return any(lexical.knows(stem) for stem in set(tokenize(" ".join(edits))))


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60) -> dict[str, float]:
    """Σ 1 / (k + rank) over the rankings an id appears in (rank starts at 1)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def mmr(query: np.ndarray, vectors: np.ndarray, k: int, lambda_: float) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` rows, relevant to the query and unlike each other."""
    if len(vectors) == 0:
        return []
    relevance = vectors @ query
    chosen: list[int] = [int(np.argmax(relevance))]
    while len(chosen) < min(k, len(vectors)):
        similarity = vectors @ vectors[chosen].T
        score = lambda_ * relevance - (1 - lambda_) * similarity.max(axis=1)
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


class Retriever:
    """Hybrid search over one index. Thread-safe; share one per process."""

    def __init__(self, settings: Settings, store: ChunkStore, embedder: TextEmbedder,
                 mode: str = "hybrid") -> None:
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self._lexical: LexicalIndex | None = None
        self._lock = threading.Lock()
        self._published: int | None = None
        # How the BM25 index in use reached its generation: for logs, tests and benchmarks.
        self.last_follow: Follow | None = None
        self._checked_at = -float("inf")
        self._reranker: Any = None
        if settings.reranker_model:
            # Only when a reranker is configured (none by default): sentence_transformers loads torch.
            from sentence_transformers import CrossEncoder

            self._reranker = CrossEncoder(settings.reranker_model, local_files_only=True)

    def lexical(self) -> LexicalIndex | None:
        """The BM25 index for the store's current generation.

        Loaded from this data dir when it holds that generation; otherwise (another instance
        reindexed the shared server, or this data dir never had one) brought up to it from the
        store (``index.lexical_follow``) and saved here for the next start.
        """
        saved = LexicalIndex.saved_generation(self.settings.lexical_dir)
        wanted = self._wanted_generation(saved)
        current = self._lexical
        if current is not None and current.generation == wanted:
            return current
        with self._lock:
            if self._lexical is None or self._lexical.generation != wanted:
                self._lexical = self._follow(wanted)
            return self._lexical

    def _wanted_generation(self, saved: int | None) -> int:
        current = self._lexical
        now = time.monotonic()
        # Asking the store costs a round trip, so at most every lexical_check_s; but at once when
        # this data dir's BM25 index moved (this instance's indexer just published a generation).
        if (current is None or saved != current.generation
                or now - self._checked_at >= self.settings.lexical_check_s):
            self._published = self.store.published_generation()
            self._checked_at = now
        if self._published is not None:
            return self._published
        return saved if saved is not None else 0  # an index from before generations were published

    def _follow(self, generation: int) -> LexicalIndex:
        lexical, self.last_follow = follow(self.store, self.settings.lexical_dir, self._lexical, generation)
        if self.last_follow.mode != "loaded":
            with contextlib.suppress(OSError):  # only a cache: a read-only data dir still answers
                lexical.save(self.settings.lexical_dir)
        return lexical

    def unknown_terms(self, question: str) -> list[str]:
        """Names and figures in the question that no indexed chunk contains ("SMIC", "7nm").

        A question about something the sources never mention cannot be answered from them,
        however close its other words come to some passage.
        """
        lexical = self.lexical()
        if lexical is None or len(lexical) == 0:
            return []
        unknown = []
        for term in distinctive_terms(question):
            if term.replace(".", "").replace(",", "").isdigit():
                continue  # bare numbers are judged against the answer, not the vocabulary
            if any(ch.isdigit() for ch in term) and sum(ch.isalpha() for ch in term) < 3:
                continue  # "ps3", "4od": a short code's spelling says nothing ("PlayStation 3" may be meant)
            tokens = tokenize(term)
            if tokens and not any(lexical.knows(t) for t in tokens) \
                    and not any(_known_with_a_typo(word, lexical) for word in re.findall(r"[^\W\d_]+", term)):
                unknown.append(term)
        return unknown

    def retrieve(self, query: str, k: int | None = None, filters: Filters | None = None,
                 use_mmr: bool | None = None, relevance_to: np.ndarray | None = None,
                 query_vector: np.ndarray | None = None) -> RetrievalResult:
        """The ``k`` best passages for ``query``.

        ``relevance_to``: the vector each passage's ``relevance`` is measured against, when not the
        query's own (a second hop searches a bridge name, but its finds must say how near they are to
        the question asked). ``query_vector``: the query's embedding, when the caller embedded several
        queries in one call (one model call for two texts costs little more than for one).
        """
        started = time.perf_counter()
        k = k or self.settings.top_k
        depth = max(self.settings.candidates, k)
        filters = filters or Filters()
        vector = self.embedder.encode([query])[0] if query_vector is None else query_vector

        rankings: list[list[str]] = []
        ranks: dict[str, dict[str, int]] = {"dense": {}, "lexical": {}}
        if self.mode in ("hybrid", "dense"):
            dense = self.store.search(vector, depth, filters)
            rankings.append([chunk_id for chunk_id, _ in dense])
            ranks["dense"] = {chunk_id: r for r, (chunk_id, _) in enumerate(dense, start=1)}
        if self.mode in ("hybrid", "lexical"):
            lexical = self.lexical()
            hits = lexical.search(query, depth, filters) if lexical is not None else []
            rankings.append([chunk_id for chunk_id, _ in hits])
            ranks["lexical"] = {chunk_id: r for r, (chunk_id, _) in enumerate(hits, start=1)}

        fused = reciprocal_rank_fusion(rankings, self.settings.rrf_k)
        pool_size = max(k * 3, 20) if (use_mmr or self._reranker) else k
        pool_ids = sorted(fused, key=lambda i: -fused[i])[: max(pool_size, k)]
        # Texts, metadata and vectors of the pool only, in one round trip. A chunk deleted by a
        # concurrent reindex since the searches ran (or since the BM25 index was saved) drops out.
        chunks, vectors = self.store.records(pool_ids)
        known: dict[str, Chunk] = {chunk.id: chunk for chunk in chunks}
        pool_ids = [chunk.id for chunk in chunks]
        anchor = vector if relevance_to is None or not len(relevance_to) else relevance_to
        relevance = {i: float(vectors[n] @ anchor) for n, i in enumerate(pool_ids)}

        order = pool_ids
        scores = {i: fused[i] for i in pool_ids}
        if self._reranker is not None and pool_ids:
            rerank = self._reranker.predict([(query, known[i].text) for i in pool_ids])
            scores = {i: float(s) for i, s in zip(pool_ids, rerank, strict=True)}
            order = sorted(pool_ids, key=lambda i: -scores[i])
        if (self.settings.use_mmr if use_mmr is None else use_mmr) and order:
            index = {i: n for n, i in enumerate(pool_ids)}
            picked = mmr(vector, vectors[[index[i] for i in order]], k, self.settings.mmr_lambda)
            order = [order[n] for n in picked]
        passages = [
            Passage(known[i], scores[i], relevance[i], ranks["dense"].get(i), ranks["lexical"].get(i))
            for i in order[:k]
        ]
        return RetrievalResult(passages, time.perf_counter() - started, query, vector)
