"""Embeddings from a server: any OpenAI-compatible ``POST /v1/embeddings`` endpoint.

Set ``CHOKEPOINT_EMBEDDING_URL`` and indexing sends its chunks there (batches of
``embedding_batch_size``, ``embedding_concurrency`` in flight) instead of running the model on
this machine. One probe request tells the model's name and dimension, which go into the index
identity: an index built through another model is refused like a local one would be.

When the endpoint serves the very model packaged here (its vector for the probe text matches
ours), questions are embedded locally: a round trip saved on every question, same vectors.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from index.embedding import Embedder, ModelNotFoundError, TextEmbedder
from index.settings import DEFAULT_EMBEDDING_MODEL, Settings

TRIES = 3
"""Requests per batch before giving up: a restarting server or a brief overload gets a second chance."""
BACKOFF_S = 0.25
"""Wait before the second try; doubled before each later one."""
SAME_MODEL_COSINE = 0.999
"""Least cosine between the endpoint's and the packaged model's probe vectors for them to count as one model
(the same weights on other hardware or another runtime agree to about 1e-5)."""
PROBE_TEXT = "Export controls on advanced semiconductors and the machines that make them."


class RemoteEmbeddingError(RuntimeError):
    """The embedding endpoint cannot be reached, refused a request, or answered no embeddings."""


def make_embedder(settings: Settings) -> TextEmbedder:
    """The embedder ``settings`` configure: the endpoint at ``embedding_url``, else the local model."""
    if not settings.embedding_url:
        return Embedder(settings.embedding_model, device=settings.embedding_device,
                        batch_size=settings.embedding_batch_size, offline=settings.hf_hub_offline)
    # The packaged model, for the probe's comparison: its weights load (seconds) only when the endpoint's
    # vectors have its dimension, and it then embeds questions only if they match.
    try:
        local: Embedder | None = Embedder(DEFAULT_EMBEDDING_MODEL, device=settings.embedding_device,
                                          batch_size=settings.embedding_batch_size)
    except ModelNotFoundError:  # without the packaged model every embedding goes to the endpoint
        local = None
    return RemoteEmbedder.from_settings(settings, local=local)


def endpoint_url(url: str) -> str:
    """The embeddings URL for a base URL given with or without its ``/v1``."""
    base = url.strip().rstrip("/")
    base = base.removesuffix("/embeddings").removesuffix("/v1")
    return f"{base}/v1/embeddings"


class RemoteEmbedder(Embeddings):
    """A LangChain ``Embeddings`` (and ``TextEmbedder``) over an OpenAI-compatible embeddings endpoint.

    ``local`` is the packaged model, used for questions only when the probe shows the endpoint
    serves it (``queries_local``). The probe runs on first need of the name, dimension or a vector.
    """

    def __init__(self, url: str, *, model: str = DEFAULT_EMBEDDING_MODEL, local: Embedder | None = None,
                 batch_size: int = 64, concurrency: int = 2, timeout_s: float = 60.0,
                 api_key: str | None = None, tries: int = TRIES, backoff_s: float = BACKOFF_S) -> None:
        self.endpoint = endpoint_url(url)
        self.requested_model = model
        self.batch_size = max(1, batch_size)
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self._local = local
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="remote-embedding")
        self._probe: _Probe | None = None
        self._probe_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, local: Embedder | None = None) -> RemoteEmbedder:
        if not settings.embedding_url:
            raise ValueError("RemoteEmbedder needs CHOKEPOINT_EMBEDDING_URL")
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return cls(settings.embedding_url, model=settings.embedding_model, local=local,
                   batch_size=settings.embedding_batch_size, concurrency=settings.embedding_concurrency,
                   timeout_s=settings.embedding_timeout_s, api_key=key)

    @property
    def probe(self) -> _Probe:
        """What the endpoint told about its model (one request, the first time it is asked)."""
        if self._probe is None:
            with self._probe_lock:
                if self._probe is None:
                    self._probe = self._run_probe()
        return self._probe

    @property
    def name(self) -> str:
        return self.probe.model

    @property
    def dimension(self) -> int:
        return self.probe.dimension

    @property
    def queries_local(self) -> bool:
        """Whether questions are embedded by the packaged model here rather than by the endpoint."""
        return self.probe.queries_local

    @property
    def query_embedder(self) -> TextEmbedder:
        return self._local if self._local is not None and self.queries_local else self

    @property
    def max_tokens(self) -> int | None:
        # Only the packaged model's tokenizer is at hand, and it counts right only for that model.
        return self._local.max_tokens if self._local is not None and self.queries_local else None

    def model_token_count(self, text: str) -> int:
        if self._local is None or not self.queries_local:
            raise NotImplementedError(f"the tokenizer of the model behind {self.endpoint} is not at hand")
        return self._local.model_token_count(text)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts on the endpoint as an (n, dimension) float32 array of unit vectors, in order."""
        dimension = self.dimension
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        # map keeps the batches' order whichever answers first; one batch needs no thread hop.
        parts = [self._post(batches[0])] if len(batches) == 1 else list(self._pool.map(self._post, batches))
        vectors = np.vstack(parts)
        if vectors.shape[1] != dimension:
            raise RemoteEmbeddingError(
                f"Embedding endpoint {self.endpoint} answered {vectors.shape[1]}-dimensional vectors after "
                f"{dimension}-dimensional ones: has the server changed model? Rebuild the index if so."
            )
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.query_embedder.encode([text])[0].tolist()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    def _run_probe(self) -> _Probe:
        vector, model = self._request([PROBE_TEXT])
        vector = vector[0]
        same = False
        if self._local is not None and self._local.dimension == vector.shape[0]:
            same = float(self._local.encode([PROBE_TEXT])[0] @ vector) >= SAME_MODEL_COSINE
        return _Probe(model=model or self.requested_model, dimension=int(vector.shape[0]), queries_local=same)

    def _post(self, texts: list[str]) -> np.ndarray:
        return self._request(texts)[0]

    def _request(self, texts: list[str]) -> tuple[np.ndarray, str]:
        """Unit vectors for ``texts`` and the model the reply names, trying again on a failure that may pass."""
        payload = {"model": self.requested_model, "input": texts}
        reason = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.endpoint, json=payload)
            except httpx.TimeoutException:
                reason = "timed out"
                continue
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code == 429 or response.status_code >= 500:
                reason = f"HTTP {response.status_code}: {_snippet(response.text)}"
                continue
            if response.status_code >= 400:
                raise RemoteEmbeddingError(
                    f"Embedding endpoint {self.endpoint} refused the request (HTTP {response.status_code}: "
                    f"{_snippet(response.text)}): check CHOKEPOINT_EMBEDDING_MODEL (the model name sent) and "
                    "CHOKEPOINT_EMBEDDING_API_KEY."
                )
            return self._parse(response, len(texts))
        raise RemoteEmbeddingError(
            f"Embedding endpoint {self.endpoint} did not answer after {self.tries} tries ({reason}): "
            "check CHOKEPOINT_EMBEDDING_URL or start the server."
        )

    def _parse(self, response: httpx.Response, expected: int) -> tuple[np.ndarray, str]:
        try:
            body: Any = response.json()
            items = sorted(body["data"], key=lambda item: int(item.get("index", 0)))
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
            model = str(body.get("model") or "")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RemoteEmbeddingError(
                f"Embedding endpoint {self.endpoint} answered no OpenAI embeddings reply ({type(exc).__name__}: "
                f"{_snippet(response.text)}): is CHOKEPOINT_EMBEDDING_URL an embeddings server?"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected or vectors.shape[1] == 0:
            raise RemoteEmbeddingError(
                f"Embedding endpoint {self.endpoint} answered {vectors.shape[0] if vectors.ndim else 0} vectors "
                f"for {expected} texts."
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # The store's cosine arithmetic assumes unit vectors; not every server normalises.
        return vectors / np.maximum(norms, 1e-12), model


def _snippet(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else f"{flat[:limit]}..."


@dataclass(frozen=True)
class _Probe:
    """What one request told about the endpoint's model."""

    model: str
    dimension: int
    queries_local: bool
