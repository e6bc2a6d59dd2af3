"""Sentence embeddings for the answerers and the verifier, with a bounded cache.

Passages recur across questions, and the extractive answerer and the verifier look at the same
sentences: each is embedded once. Vectors the indexer kept (``Settings.sentence_vectors``) are read
before anything is embedded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from index.embedding import TextEmbedder

SENTENCE_BATCH = 8
"""Sentences per model call. On the 10k benchmark's shortlists (16 sentences of 10 to 60 word pieces),
sorted groups of 8 take 0.88 of the time of one batch of 16, paired on the same sentences; groups of 4
gain nothing (each call has its own overhead)."""


class SentenceVectors:
    """Sentence embeddings with a bounded cache: passages recur across questions, and the
    extractive answerer and the verifier look at the same sentences."""

    def __init__(self, embedder: TextEmbedder, size: int = 50_000,
                 stored: Callable[[list[str]], dict[str, np.ndarray]] | None = None) -> None:
        self.embedder = embedder
        self.size = size
        self.stored = stored
        """Vectors the indexer computed for passage sentences (``Settings.sentence_vectors``), by text."""
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        found = self.stored(missing) if missing and self.stored is not None else {}
        missing = [text for text in missing if text not in found]
        if missing or found:
            fresh = dict(zip(missing, self._encode(missing), strict=True)) if missing else {}
            with self._lock:
                for text, vector in [*found.items(), *fresh.items()]:
                    self._cache[text] = vector
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for text in texts:
                vector = self._cache.get(text)
                if vector is None:  # evicted by a concurrent caller between the two steps
                    vector = self.embedder.encode([text])[0]
                else:
                    self._cache.move_to_end(text)
                rows.append(vector)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Shortest first, a few at a time: a batch pads every sentence to its longest, and one long
        sentence in a batch of sixteen short ones doubles what the model computes."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.embedder.dimension), dtype=np.float32)
        for start in range(0, len(order), SENTENCE_BATCH):
            rows = order[start : start + SENTENCE_BATCH]
            vectors[rows] = self.embedder.encode([texts[i] for i in rows])
        return vectors

    def remember(self, text: str, vector: np.ndarray) -> None:
        """Keep a vector computed elsewhere by the same model (the retriever's query vector)."""
        with self._lock:
            self._cache[text] = np.asarray(vector, dtype=np.float32)
            self._cache.move_to_end(text)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
