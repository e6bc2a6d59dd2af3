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
