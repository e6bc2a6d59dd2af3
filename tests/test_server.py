"""Server mode against a real `chroma run`: same results as embedded mode, and several app
instances (each with its own data dir) sharing one server keep their BM25 indexes in step."""

from __future__ import annotations

import time
import uuid

import pytest
from conftest import copy_notes, write_note

from assistant.engine import Engine
from index.lexical import LexicalIndex
from index.store import IndexMismatchError

pytestmark = [pytest.mark.slow, pytest.mark.server]

FILES = [
    "chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "made-in-china-2025-overview.md",
    "digital-silk-road.md", "big-fund-and-state-bank-lending.md", "dram-memory-push.md",
]
QUESTIONS = [
    "How much of its chip demand did China produce in 2020?",
    "When did SASAC approve the CETC Potevio merger?",
    "Which ten sectors does Made in China 2025 prioritise?",
    "How many African countries take part in Smart Africa?",
    "How much money did phase III of the Big Fund register?",
    "Who hired Yukio Sakamoto for memory chips?",
]
NEW_TERM = "Zephyrine"
NEW_QUESTION = f"What does the {NEW_TERM} consortium build?"


def _collection() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"  # one server serves the module; tests keep apart by name


def _outcome(engine: Engine) -> list[tuple]:
    """Per question: retrieved chunk ids, and the extractive answer's text and cited ids."""
    out = []
    for question in QUESTIONS:
        ids = [p.id for p in engine.retriever.retrieve(question).passages]
        answer = engine.pipeline.ask(engine.extractive, question)
        out.append((question, ids, answer.refused, answer.text, [c.passage.id for c in answer.citations]))
    return out


def test_server_mode_gives_the_embedded_results(make_settings, embedder, tmp_path, chroma_server):
    sources = copy_notes(tmp_path / "sources", FILES)
    embedded = Engine(make_settings(data_dir=tmp_path / "embedded", sources_dir=sources), embedder)
    server = Engine(make_settings(data_dir=tmp_path / "server", sources_dir=sources, chroma_url=chroma_server,
                                  chroma_token="a-team-token", collection=_collection()), embedder)
    for engine in (embedded, server):
        report = engine.reindex()
        assert report.ok and sorted(report.added) == sorted(FILES)
    assert server.status().store == chroma_server
    assert server.status().chunks == embedded.status().chunks
    assert server.status().sources == len(FILES)
    before = _outcome(embedded)
    assert _outcome(server) == before
    assert sum(not refused for _, _, refused, _, _ in before) >= 4, "the questions must mostly be answerable"

    merger = sources / "cetc-potevio-merger.md"
    merger.write_text(merger.read_text().replace("23 June 2021", "24 June 2021"))
    (sources / "dram-memory-push.md").unlink()
    for engine in (embedded, server):
        report = engine.reindex()
        assert (report.updated, report.removed) == (["cetc-potevio-merger.md"], ["dram-memory-push.md"])
    after = _outcome(embedded)
    assert after != before
    assert _outcome(server) == after
    stored = {c.source for c in server.store.all_chunks()}
    assert "dram-memory-push.md" not in stored and len(stored) == len(FILES) - 1
    assert any("24 June 2021" in c.text for c in server.store.all_chunks())
    # The server instance's BM25 index was rebuilt from the server's chunks: same rows as the manifest's.
    assert server.retriever.lexical().ids == embedded.retriever.lexical().ids


def test_second_instance_follows_the_first_ones_reindex(make_settings, embedder, tmp_path, chroma_server):
    sources = copy_notes(tmp_path / "sources", FILES)
    shared = {"sources_dir": sources, "chroma_url": chroma_server, "collection": _collection(),
              "lexical_check_s": 0.5}
    first = Engine(make_settings(data_dir=tmp_path / "first", **shared), embedder)
    assert first.reindex().ok
    second = Engine(make_settings(data_dir=tmp_path / "second", **shared), embedder)
    assert LexicalIndex.saved_generation(second.settings.lexical_dir) is None
    # At start the second instance has no BM25 index of its own: it builds one from the server.
    assert second.retriever.lexical().ids == first.retriever.lexical().ids
    assert second.status().sources == len(FILES)
    refused = second.pipeline.ask(second.extractive, NEW_QUESTION)
    assert refused.refused and NEW_TERM in refused.refusal_reason

    write_note(sources, "zephyrine.md", "The Zephyrine consortium",
               f"The {NEW_TERM} consortium builds extreme ultraviolet light sources for lithography scanners. "
               f"It was founded by three institutes in Changchun to replace imported light sources.")
    silk_road = {c.id for c in first.store.all_chunks() if c.source == "digital-silk-road.md"}
    (sources / "digital-silk-road.md").unlink()
    report = first.reindex()
    assert report.added == ["zephyrine.md"] and report.removed == ["digital-silk-road.md"]
    new_ids = {c.id for c in first.store.all_chunks() if c.source == "zephyrine.md"}

    time.sleep(0.6)  # past the second instance's check interval
    lexical = second.retriever.lexical()
    assert lexical.ids == first.retriever.lexical().ids
    assert {i for i, _ in lexical.search(NEW_TERM, 5)} == new_ids
    assert silk_road and not silk_road & set(lexical.ids)
    answer = second.pipeline.ask(second.extractive, NEW_QUESTION)
    assert not answer.refused and {c.passage.id for c in answer.citations} <= new_ids

    # A restarted second instance finds its saved BM25 index current and loads it as it is.
    restarted = Engine(second.settings, embedder)
    assert LexicalIndex.saved_generation(second.settings.lexical_dir) == restarted.store.published_generation()
    assert restarted.retriever.lexical().ids == lexical.ids

    # The first instance rebuilds the collection: the second one's handle names a deleted
    # collection, and it must carry on with the new one, not fail.
    (sources / "zephyrine.md").unlink()
    assert first.reindex(rebuild=True).ok
    time.sleep(0.6)
    answer = second.pipeline.ask(second.extractive, NEW_QUESTION)
    assert answer.refused
    assert second.retriever.lexical().ids == first.retriever.lexical().ids
    assert _outcome(second) == _outcome(first)


def test_settings_mismatch_is_refused_the_same_way_on_a_server(make_settings, embedder, tmp_path, chroma_server):
    sources = copy_notes(tmp_path / "sources", FILES)
    for name in FILES[1:]:
        (sources / name).unlink()
    messages = []
    for mode, extra in (("embedded", {}), ("server", {"chroma_url": chroma_server, "collection": _collection()})):
        settings = make_settings(data_dir=tmp_path / mode, sources_dir=sources, **extra)
        assert Engine(settings, embedder).reindex().ok
        with pytest.raises(IndexMismatchError) as raised:
            Engine(settings.model_copy(update={"chunk_tokens": 120}), embedder)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert "chunker" in messages[0] and "--rebuild" in messages[0]
