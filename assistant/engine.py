"""The assembled assistant for one process: model, store, retriever, answerers.

Built once from ``Settings`` (Streamlit keeps it in ``st.cache_resource``; the CLI builds it
per command) and shared by every question.
"""

from __future__ import annotations

import threading
from pathlib import Path

from assistant.retrieval import Retriever
from index.embedding import Embedder
from index.indexer import Indexer, IndexReport, ProgressHook, index_identity
from index.settings import Settings
from index.status import IndexStatus, index_status
from index.store import ChunkStore, make_client


class Engine:
    """Holds the loaded embedding model and an open index."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder(
            settings.embedding_model, device=settings.embedding_device, batch_size=settings.embedding_batch_size
        )
        self._lock = threading.RLock()
        self._open()

    def _open(self) -> None:
        self.store = ChunkStore(
            make_client(self.settings), self.settings.collection,
            index_identity(self.settings, self.embedder), self.embedder,
        )
        self.retriever = Retriever(self.settings, self.store, self.embedder)

    def reindex(self, paths: list[Path] | None = None, *, rebuild: bool = False,
                progress: ProgressHook | None = None) -> IndexReport:
        """Run the indexer with this engine's model; reopen the store after a rebuild."""
        report = Indexer(self.settings, self.embedder).run(paths, rebuild=rebuild, progress=progress)
        if rebuild:
            with self._lock:
                self._open()
        return report

    def status(self) -> IndexStatus:
        return index_status(self.settings, self.store)
