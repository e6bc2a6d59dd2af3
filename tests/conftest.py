"""Shared fixtures: one real embedding model per test session, temporary data dirs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "sources"
SHARED = ROOT.parent / "shared"
SEEDS = SHARED / "seeds"


@pytest.fixture(scope="session")
def embedder():
    from index.embedding import Embedder

    return Embedder()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., object]:
    """Settings for a fresh data dir and sources dir under tmp_path."""
    from index.settings import Settings

    def make(**overrides: object) -> Settings:
        values = {"data_dir": tmp_path / "data", "sources_dir": tmp_path / "sources"}
        values.update(overrides)
        Path(values["sources_dir"]).mkdir(parents=True, exist_ok=True)
        return Settings(**values)

    return make


def write_note(folder: Path, name: str, title: str, body: str, **front: object) -> Path:
    """A Markdown source with front matter, as a user would drop it in."""
    import yaml

    meta = {"title": title, **front}
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {title}\n\n{body}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def default_corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder):
    """The default corpus indexed once into a temporary data dir: (settings, engine)."""
    from assistant.engine import Engine
    from index.settings import Settings

    data = tmp_path_factory.mktemp("default-index")
    settings = Settings(data_dir=data, sources_dir=SOURCES)
    engine = Engine(settings, embedder)
    report = engine.reindex()
    assert report.ok, report.failed
    return settings, engine


def copy_seeds(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(p, target / p.name)) for p in sorted(SEEDS.glob("*.txt"))]
