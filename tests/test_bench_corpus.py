"""The benchmark corpus generator: deterministic, varied, and loadable by the real loader."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import corpus
from index.loaders import load


def test_documents_are_deterministic_and_varied() -> None:
    first = [d.markdown() for d in islice(corpus.documents(5), 20)]
    again = [d.markdown() for d in islice(corpus.documents(5), 20)]
    assert first == again
    assert len(set(first)) == 20
    bodies = " ".join(first)
    assert sum(company in bodies for company in corpus.COMPANIES) > 20


def test_written_documents_load_with_front_matter(tmp_path: Path) -> None:
    path = corpus.write_documents(tmp_path, 3, seed=1)[0]
    document = load(path)
    assert document.title and document.publisher and document.date and document.topics
    assert "---" not in document.text.strip()[:3]


def test_queries_are_varied() -> None:
    questions = corpus.queries(11, 100)
    assert len(questions) == 100 and len(set(questions)) > 90


def test_random_corpus_is_a_function_of_position() -> None:
    """Chunks and vectors do not depend on the corpus size: a resumed build or a prefix sees the same ones."""
    import numpy as np

    from benchmarks import random_corpus

    whole = random_corpus.chunks_between(0, 30)
    assert [c.id for c in random_corpus.chunks_between(10, 25)] == [c.id for c in whole[10:25]]
    assert len({c.id for c in whole}) == 30 and len({c.source for c in whole}) == 3
    short = random_corpus.unit_vectors(3, 7, 16)
    assert np.array_equal(short, random_corpus.unit_vectors(3, 20, 16)[:7])
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0)
    assert not np.array_equal(short, random_corpus.unit_vectors(4, 7, 16))


def test_random_corpus_build_resumes_without_duplicates(tmp_path: Path) -> None:
    """A build stopped part-way (its progress record behind the store, as after a kill) ends with every chunk once."""
    import json

    from benchmarks import random_corpus
    from benchmarks.common import bench_settings
    from index.store import ChunkStore, IndexIdentity, make_client

    settings = bench_settings(tmp_path)
    identity = IndexIdentity("random-test", 8, "test")
    assert random_corpus.insert(settings, identity, tmp_path, 2000)["chunks"] == 2000
    progress = json.loads((tmp_path / random_corpus.PROGRESS).read_text())
    progress["chunks"] = 1000  # killed after writing the second batch, before recording it
    (tmp_path / random_corpus.PROGRESS).write_text(json.dumps(progress))
    assert random_corpus.insert(settings, identity, tmp_path, 2500)["chunks"] == 2500
    store = ChunkStore(make_client(settings), settings.collection, identity)
    stored = store.collection.get(include=[])["ids"]
    assert sorted(stored) == sorted(c.id for c in random_corpus.iter_chunks(2500))
