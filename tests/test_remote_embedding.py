"""Embeddings from a server (CHOKEPOINT_EMBEDDING_URL), against a real OpenAI-compatible one serving the
packaged MiniLM (benchmarks/embedding_server.py): same vectors, in order, in bounded concurrent batches; an index
built and asked through it; another model refused; a down or failing server named or outlasted."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from conftest import _free_port, copy_notes, write_note

from assistant.engine import Engine
from assistant.llm.faults import describe
from benchmarks.embedding_server import ServerState, embedding_server
from index.remote_embedding import RemoteEmbedder, RemoteEmbeddingError, endpoint_url, make_embedder
from index.settings import Settings
from index.store import IndexMismatchError

TEXTS = [f"Sentence {i}: the fab in district {i} makes {i * 7} thousand wafers a month." for i in range(30)]
FILES = ["chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "dram-memory-push.md"]
QUESTIONS = {
    "How much of its chip demand did China produce in 2020?": "chip-self-sufficiency-figures.md",
    "When did SASAC approve the CETC Potevio merger?": "cetc-potevio-merger.md",
    "Who hired Yukio Sakamoto for memory chips?": "dram-memory-push.md",
    "What does the Zephyrine consortium build?": "zephyrine.md",
}


def test_the_endpoint_is_configured_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CHOKEPOINT_EMBEDDING_URL", "http://embed:8080/v1")
    monkeypatch.setenv("CHOKEPOINT_EMBEDDING_CONCURRENCY", "4")
    settings = Settings()
    assert (settings.embedding_url, settings.embedding_concurrency, settings.embedding_timeout_s) == (
        "http://embed:8080/v1", 4, 60.0)
    remote = make_embedder(settings)  # nothing is asked of the endpoint until a vector or its model is needed
    assert isinstance(remote, RemoteEmbedder) and remote.endpoint == "http://embed:8080/v1/embeddings"
    remote.close()


def test_the_endpoint_url_is_taken_with_or_without_v1() -> None:
    for given in ("http://embed:8080", "http://embed:8080/", "http://embed:8080/v1", "http://embed:8080/v1/",
                  "http://embed:8080/v1/embeddings"):
        assert endpoint_url(given) == "http://embed:8080/v1/embeddings"


def test_endpoint_vectors_match_the_local_model_in_order_across_concurrent_batches(embedder) -> None:
    state = ServerState(delay_s=0.1)
    with embedding_server(embedder, state) as (url, _):
        remote = RemoteEmbedder(f"{url}/v1", local=embedder, batch_size=4, concurrency=3)
        vectors = remote.encode(TEXTS)
        assert remote.name == "sentence-transformers/all-MiniLM-L6-v2"  # what the server says, not what we sent
        assert remote.dimension == embedder.dimension
        # The same model behind the endpoint: questions stay here, and its tokenizer counts for chunking.
        assert remote.queries_local and remote.query_embedder is embedder
        assert remote.max_tokens == embedder.max_tokens
        remote.close()
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # the server sent them scaled
    assert np.abs(vectors - embedder.encode(TEXTS)).max() < 1e-4
    assert sorted(state.batch_sizes[1:]) == [2] + [4] * 7  # after the one-text probe
    assert 2 <= state.most_in_flight <= 3


def test_another_model_behind_the_endpoint_embeds_questions_there(embedder) -> None:
    with embedding_server(embedder, ServerState(reversed_vectors=True)) as (url, _):
        remote = RemoteEmbedder(url, local=embedder)
        assert not remote.queries_local
        assert remote.query_embedder is remote and remote.max_tokens is None
        assert np.allclose(remote.embed_query(TEXTS[0]), embedder.encode(TEXTS[:1])[0][::-1], atol=1e-4)
        remote.close()


@pytest.mark.parametrize("reversed_vectors", [False, True], ids=["same-model", "other-model"])
def test_an_index_built_through_the_endpoint_answers(make_settings, embedder, tmp_path, reversed_vectors) -> None:
    sources = copy_notes(tmp_path / "sources", FILES)
    write_note(sources, "zephyrine.md", "The Zephyrine consortium",
               "The Zephyrine consortium builds extreme-ultraviolet light sources for lithography scanners.")
    state = ServerState(reversed_vectors=reversed_vectors)
    with embedding_server(embedder, state) as (url, _):
        settings = make_settings(sources_dir=sources, embedding_url=url, embedding_batch_size=8)
        remote = RemoteEmbedder.from_settings(settings, local=embedder)  # sharing the session's loaded model
        engine = Engine(settings, remote)
        report = engine.reindex()
        assert report.ok and sorted(report.added) == sorted([*FILES, "zephyrine.md"])
        assert engine.store.identity.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
        chunk_requests = len(state.batch_sizes)
        assert chunk_requests > 1 and max(state.batch_sizes) == 8
        for question, source in QUESTIONS.items():
            passages = engine.retriever.retrieve(question).passages
            assert passages and passages[0].chunk.source == source, question
        # Questions go to the endpoint only when it serves another model than the packaged one.
        assert (len(state.batch_sizes) > chunk_requests) == reversed_vectors
        remote.close()


def test_an_index_built_through_another_model_is_refused_with_the_rebuild_message(make_settings, embedder,
                                                                                  tmp_path) -> None:
    sources = copy_notes(tmp_path / "sources", FILES[:1])
    with embedding_server(embedder) as (url, state):
        settings = make_settings(sources_dir=sources, embedding_url=url)
        assert Engine(settings, RemoteEmbedder.from_settings(settings, local=embedder)).reindex().ok
        state.reported_model = "BAAI/bge-small-en-v1.5"  # the server was switched to another model
        with pytest.raises(IndexMismatchError, match=r"embedding_model.*chokepoint index --rebuild") as raised:
            Engine(settings, RemoteEmbedder.from_settings(settings, local=embedder))
        assert "BAAI/bge-small-en-v1.5" in str(raised.value)


def test_an_endpoint_that_is_down_is_named_with_what_to_check(make_settings, tmp_path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there once the probe socket is closed
    settings = make_settings(embedding_url=f"{url}/v1")
    started = time.monotonic()
    with pytest.raises(RemoteEmbeddingError) as raised:
        Engine(settings)  # the index identity needs the endpoint's model: it fails here, before any model loads
    message = str(raised.value)
    assert re.search(rf"{re.escape(url)}/v1/embeddings did not answer after 3 tries \(ConnectError", message)
    assert "CHOKEPOINT_EMBEDDING_URL" in message
    assert time.monotonic() - started < 10
    assert describe(raised.value, settings) == message  # what the app and the CLI show, as it is


def test_server_errors_are_retried_and_a_refusal_is_not(embedder) -> None:
    with embedding_server(embedder, ServerState(failures_left=2)) as (url, state):
        remote = RemoteEmbedder(url, local=embedder, backoff_s=0.01)
        assert remote.encode(TEXTS[:3]).shape == (3, embedder.dimension)  # the probe met both 500s
        assert state.failures_left == 0
        state.failures_left = 5
        with pytest.raises(RemoteEmbeddingError, match=r"after 3 tries \(HTTP 500: .*model is warming up"):
            remote.encode(TEXTS[:3])
        assert state.failures_left == 2
        remote.close()
        # A 4xx says the request is wrong, which another try will not change: the server's reply is shown.
        wrong = RemoteEmbedder(f"{url}/no-such-prefix", backoff_s=0.01)
        with pytest.raises(RemoteEmbeddingError, match=r"/no-such-prefix/v1/embeddings refused the request "
                                                       r"\(HTTP 404: .*Not Found"):
            wrong.encode(["x"])
        wrong.close()


def test_a_slow_endpoint_times_out_with_its_url(embedder) -> None:
    with embedding_server(embedder, ServerState(delay_s=1.0)) as (url, _):
        remote = RemoteEmbedder(url, timeout_s=0.2, tries=2, backoff_s=0.01)
        with pytest.raises(RemoteEmbeddingError, match=rf"{re.escape(url)}/v1/embeddings did not answer after "
                                                       r"2 tries \(timed out\)"):
            remote.encode(["x"])
        remote.close()
