"""What is in the index: for `chokepoint status` and the app's sidebar."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from index.manifest import Manifest
from index.settings import Settings
from index.store import ChunkStore


@dataclass(frozen=True)
class IndexStatus:
    sources: int
    chunks: int
    embedding_model: str
    dimension: int
    chunker: str
    last_indexed: str
    # Changes with every change to the indexed content (published in the store, so a change made
    # by another instance sharing a Chroma server shows too); `last_indexed` has only seconds.
    generation: int
    size_bytes: int
    data_dir: str
    """Resolved, so that a client (the CLI looking for a server) can tell whether it is its own data dir."""
    collection: str
    store: str

    def as_dict(self) -> dict:
        return asdict(self)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def index_status(settings: Settings, store: ChunkStore) -> IndexStatus:
    manifest = Manifest(settings.manifest_path)
    try:
        files = manifest.files()
        last = manifest.get_meta("last_indexed")
        local_generation = manifest.generation()
    finally:
        manifest.close()
    return IndexStatus(
        sources=sum(1 for record in files.values() if record.state == "done"),
        chunks=store.count(),
        embedding_model=store.identity.embedding_model,
        dimension=store.identity.dimension,
        chunker=store.identity.chunker,
        last_indexed=last,
        generation=store.published_generation() or local_generation,
        size_bytes=folder_size(settings.data_dir),
        data_dir=str(settings.data_dir.resolve()),
        collection=settings.collection,
        store=settings.chroma_url or "embedded",
    )
