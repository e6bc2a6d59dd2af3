"""The assembled assistant for one process: model, store, retriever, answerers, pipeline.

Built once from ``Settings`` (Streamlit keeps it in ``st.cache_resource``; the CLI builds it
per command) and shared by every question. The LLM is started only when first asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.shared_system_client import SharedSystemClient

from assistant.answerers import Answerer, LLMAnswerer
from assistant.llm.gguf_model import spec_for
from assistant.llm.local_llm import get_server
from assistant.pipeline import AnswerPipeline
from assistant.reading.direct import DirectAnswerComposer
from assistant.reading.extractive import ExtractiveAnswerer
from assistant.retrieval import Retriever
from assistant.sentence_vectors import SentenceVectors
from assistant.verification import Verifier
from index.embedding import TextEmbedder
from index.index_report import IndexReport
from index.indexer import Indexer, IndexLockedError, ProgressHook, index_identity
from index.manifest import Manifest
from index.remote_embedding import make_embedder
from index.settings import Settings
from index.status import IndexStatus, index_status
from index.store import ChunkStore, make_client

log = logging.getLogger(__name__)


class Engine:
    """Holds the loaded embedding model, an open index and the answerers."""

    def __init__(self, settings: Settings, embedder: TextEmbedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or make_embedder(settings)
        self._lock = threading.RLock()
        self._llm: LLMAnswerer | None = None
        self._chroma_suspect = False  # set by a failed indexing run: see _restart_embedded_chroma
        # One cache of sentence vectors for the process: the retriever's query vector, the answerers'
        # rankings and the verifier's checks read the same sentences with the same model.
        # Question-time text goes to ``query_embedder``: with an embeddings server that serves the packaged
        # model, the local copy (no round trip per question); the indexer always uses ``embedder``.
        self._manifest: Manifest | None = None
        self.vectors = SentenceVectors(self.embedder.query_embedder, stored=self._stored_sentence_vectors)
        self.verifier = Verifier(self.vectors, settings.support_threshold)
        self.extractive = ExtractiveAnswerer(self.verifier, self.vectors, shortlist=settings.extractive_shortlist)
        self._open()

    def _open(self) -> None:
        try:
            client = make_client(self.settings)
        except Exception:
            if not self.settings.chroma_url:
                # Chroma caches its per-path "system" before starting it: one that failed to start (a
                # read-only data dir) would be handed to every later client in this process, which
                # then fails with an AttributeError instead of the real reason.
                _forget_embedded_chroma(self.settings.chroma_dir)
            raise
        self.store = ChunkStore(client, self.settings.collection, index_identity(self.settings, self.embedder))
        self.retriever = Retriever(self.settings, self.store, self.embedder.query_embedder)
        self.pipeline = AnswerPipeline(
            self.retriever, self.verifier, self.settings.min_relevance, self.settings.nlp_model,
            unsupported=self.settings.unsupported, max_question_chars=self.settings.max_question_chars,
            max_passages=self.settings.max_passages, preview=self.extractive, vectors=self.vectors,
            direct=DirectAnswerComposer(self.settings.nlp_model, self.embedder.query_embedder),
        )

    def _stored_sentence_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The indexer's vectors for these sentences, from this data dir's manifest.

        None are found in server mode for sources another data dir indexed: those are embedded here.
        """
        if self._manifest is None and not self.settings.manifest_path.exists():
            return {}  # nothing indexed yet; opening would create the file
        try:
            with self._lock:
                if self._manifest is None:
                    self._manifest = Manifest(self.settings.manifest_path)
            return self._manifest.sentence_vectors(texts, self.embedder.query_embedder.dimension)
        except sqlite3.Error as exc:
            log.warning("Sentence vectors could not be read from %s (%s): embedding them instead.",
                        self.settings.manifest_path, exc)
            return {}

    def answerer(self, name: str | None = None) -> Answerer:
        """``extractive`` or ``llm`` (the configured endpoint, else the embedded model)."""
        name = name or self.settings.answerer
        if name == "extractive":
            return self.extractive
        if name != "llm":
            raise ValueError(f"unknown answerer {name!r}: use 'extractive' or 'llm'")
        with self._lock:
            if self._llm is None:
                self._llm = LLMAnswerer(chat_model(self.settings), self.settings.llm_prompt_tokens,
                                        vectors=self.vectors)
            return self._llm

    def reindex(self, paths: list[Path] | None = None, *, rebuild: bool = False,
                progress: ProgressHook | None = None) -> IndexReport:
        """Run the indexer with this engine's model; reopen the store after a rebuild or a failed run."""
        if self._chroma_suspect:
            self._restart_embedded_chroma()
        try:
            report = Indexer(self.settings, self.embedder).run(paths, rebuild=rebuild, progress=progress)
        except (IndexLockedError, FileNotFoundError):
            raise  # nothing was written: the open store is fine
        except Exception:
            # Queries go on with the Chroma that is open (it still reads); the next run starts a fresh one.
            self._chroma_suspect = not self.settings.chroma_url
            raise
        if rebuild or report.rebuilt_because:
            with self._lock:
                self._open()
        return report

    def _restart_embedded_chroma(self) -> None:
        """Drop this process's embedded Chroma for the data dir and open it afresh.

        After a failed write (seen with a full disk) the embedded Chroma of this process can stay
        wedged for writes: the next upsert hung even once space was freed, while a new process
        worked. A fresh one reads what is on disk, and the indexer's journal then repairs the files
        the failed run left pending.
        """
        with self._lock:
            _forget_embedded_chroma(self.settings.chroma_dir)
            self._open()
            self._chroma_suspect = False

    def warm(self) -> None:
        """Load what the first question would otherwise wait for: the embedding model (it loads on first
        use, seconds on a CPU) and the BM25 index."""
        self.embedder.query_embedder.encode(["warm-up"])
        self.retriever.lexical()

    def status(self) -> IndexStatus:
        status = index_status(self.settings, self.store)
        if self.settings.chroma_url:
            # Another instance may have indexed the shared server, so this data dir's manifest
            # does not know every source; the BM25 index follows the server's chunks.
            lexical = self.retriever.lexical()
            status = dataclasses.replace(status, sources=len(lexical.sources()) if lexical else 0)
        return status


def _forget_embedded_chroma(path: Path) -> None:
    """Drop this process's cached embedded Chroma for ``path``; the next client opens a fresh one.

    Chroma offers no public way to drop one path from its cache (``clear_system_cache`` drops every
    path, under the feet of other open indexes), hence the private dictionary.
    """
    SharedSystemClient._identifier_to_system.pop(str(path), None)


def chat_model(settings: Settings) -> Any:
    """A LangChain ChatOpenAI for the configured endpoint, or for the embedded llama.cpp server."""
    # Here, not at the top: openai and langchain_openai take seconds to import, and only the LLM needs them.
    import openai
    from langchain_openai import ChatOpenAI

    clients: dict[str, Any] = {}
    if settings.llm_url:
        base_url, model = settings.llm_url, settings.llm_model
        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    else:
        server = get_server(spec_for(settings.llm_size), settings.models_dir,
                            n_ctx=settings.llm_context_tokens, threads=settings.llm_threads)
        server.start()
        base_url, model, api_key = server.base_url, server.model_name, "not-needed"
        # No proxy can reach this machine's 127.0.0.1: these clients ignore the *_PROXY variables,
        # instead of the process adding loopback to NO_PROXY for every client it runs. (No socket
        # options: langchain would warn that its own transport, unused here, shadows the proxy.)
        clients = {"http_client": openai.DefaultHttpxClient(trust_env=False),
                   "http_async_client": openai.DefaultAsyncHttpxClient(trust_env=False),
                   "http_socket_options": ()}
    return ChatOpenAI(
        base_url=base_url, api_key=api_key, model=model, temperature=0,
        max_tokens=settings.llm_max_tokens, timeout=settings.llm_timeout_s, max_retries=0, streaming=True,
        **clients,
    )
