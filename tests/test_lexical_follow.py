"""BM25 that follows a shared index: a second app instance on the same `chroma run` server fetches only
the sources an indexing run changed, as the change log in the collection's metadata lists them, and
rebuilds from every chunk only when the log cannot say (it missed more runs than the log keeps)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pytest
from conftest import copy_notes

from assistant.engine import Engine
from index.change_log import MAX_CHARS, Change, ChangeLog, ChangeLogGapError
from index.lexical import LexicalIndex
from index.store import IndexIdentity, IndexMismatchError

FILES = [
    "chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "made-in-china-2025-overview.md",
    "digital-silk-road.md", "big-fund-and-state-bank-lending.md", "dram-memory-push.md",
]
EDITED = "big-fund-and-state-bank-lending.md"
OLD_WORD, NEW_WORD = "Caixin", "Quorvane"  # OLD_WORD is in EDITED only; NEW_WORD in no source
QUERIES = ["chip demand produced in 2020", "SASAC merger approval", "Made in China 2025 sectors",
           "Smart Africa countries", "Big Fund phase III", "memory chips Sakamoto"]


# The log itself: a chain of runs, each naming the generation published before it.

def _log(*runs: Change, keep: int = 50) -> ChangeLog:
    log = ChangeLog()
    for run in runs:
        log = log.with_run(run, keep)
    return log


def test_the_log_gives_the_sources_of_every_run_since_a_generation():
    log = _log(Change.of(10, None, ["a.md", "b.md"], []), Change.of(20, 10, ["b.md"], ["c.md"]),
               Change.of(35, 20, [], ["d.md"]))
    assert ChangeLog.from_json(log.to_json()) == log
    assert log.touched_between(20, 35) == {"d.md"}
    assert log.touched_between(10, 35) == {"b.md", "c.md", "d.md"}
    assert log.touched_between(35, 35) == set()
    # A generation from before the log, or not in the chain at all (another collection, a restored copy).
    for start in (5, 15, 40):
        with pytest.raises(ChangeLogGapError, match=f"generation {start} is not among"):
            log.touched_between(start, 35)


def test_a_generation_published_out_of_clock_order_still_chains():
    # Two data dirs number generations by their own clocks: the newer run may carry the smaller number.
    log = _log(Change.of(500, 100, ["a.md"], []), Change.of(300, 500, ["b.md"], []))
    assert log.touched_between(100, 300) == {"a.md", "b.md"}


def test_the_log_keeps_the_last_runs_and_a_run_too_large_to_list_changed_everything():
    log = _log(*(Change.of(g, g - 1 if g > 1 else None, [f"{g}.md"], []) for g in range(1, 8)), keep=3)
    assert [run.generation for run in log.runs] == [5, 6, 7]
    assert log.touched_between(4, 7) == {"5.md", "6.md", "7.md"}
    with pytest.raises(ChangeLogGapError, match="generation 3 is not among the 3 runs"):
        log.touched_between(3, 7)

    many = [f"reports/{n:05d}-a-long-file-name-for-a-translated-report.pdf" for n in range(5000)]
    big = log.with_run(Change.of(8, 7, many, []), keep=3)
    assert big.runs[-1].everything and not big.runs[-1].changed
    assert len(big.to_json()) < MAX_CHARS
    with pytest.raises(ChangeLogGapError, match="generation 8 changed everything"):
        big.touched_between(7, 8)
    # Runs that each fit, but not all together: the oldest go, and the log stays under the bound.
    fits = many[:300]
    runs = [Change.of(g, g - 1, [f"{g}-{name}" for name in fits], []) for g in range(9, 30)]
    bounded = _log(*runs)
    assert len(bounded.to_json()) <= MAX_CHARS and 1 <= len(bounded.runs) < len(runs)
    assert bounded.runs[-1].generation == 29 and not bounded.runs[-1].everything


def test_an_unreadable_log_is_an_empty_one():
    for text in (None, 7, "", "not json", json.dumps([{"generation": 1}]), json.dumps({"a": 1})):
        log = ChangeLog.from_json(text)
        assert log == ChangeLog()
        with pytest.raises(ChangeLogGapError):
            log.touched_between(1, 2)


# Two app instances (two data dirs) on one real `chroma run` server.

def _instances(make_settings, embedder, tmp_path: Path, server: str, **first_settings: object
               ) -> tuple[Engine, Engine, Path]:
    """The first instance indexes FILES into a fresh collection; the second only reads (its BM25 built)."""
    sources = copy_notes(tmp_path / "sources", FILES)
    shared = {"sources_dir": sources, "chroma_url": server, "collection": f"follow-{uuid.uuid4().hex[:12]}",
              "lexical_check_s": 0.0}
    first = Engine(make_settings(data_dir=tmp_path / "first", **shared, **first_settings), embedder)
    assert first.reindex().ok
    second = Engine(make_settings(data_dir=tmp_path / "second", **shared), embedder)
    second.retriever.lexical()
    assert second.retriever.last_follow.mode == "rebuilt"  # a new instance has no BM25 index of its own
    return first, second, sources


def _edit(sources: Path, name: str, old: str, new: str) -> None:
    path = sources / name
    text = path.read_text(encoding="utf-8")
    assert re.search(old, text, flags=re.IGNORECASE)
    path.write_text(re.sub(old, new, text, flags=re.IGNORECASE), encoding="utf-8")


def _hits(engine: Engine, query: str) -> set[str]:
    """The sources of a BM25-only search."""
    lexical = engine.retriever.lexical()
    sources = {c.id: c.source for c in engine.store.all_chunks()}
    return {sources[i] for i, _ in lexical.search(query, 10)}


def _same_as_a_full_build(engine: Engine) -> None:
    lexical = engine.retriever.lexical()
    fresh = LexicalIndex.from_chunks(engine.store.all_chunks(), lexical.generation)
    assert lexical.ids == fresh.ids and len(lexical) == len(fresh)
    for query in [*QUERIES, OLD_WORD, NEW_WORD]:
        got, want = lexical.search(query, 10), fresh.search(query, 10)
        assert [i for i, _ in got] == [i for i, _ in want], query
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9), query


@pytest.mark.slow
@pytest.mark.server
def test_an_edit_reaches_the_second_instance_with_only_its_source_fetched(make_settings, embedder, tmp_path,
                                                                          chroma_server, caplog):
    first, second, sources = _instances(make_settings, embedder, tmp_path, chroma_server)
    assert _hits(second, OLD_WORD) == {EDITED} and _hits(second, NEW_WORD) == set()

    _edit(sources, EDITED, OLD_WORD, NEW_WORD)
    with caplog.at_level(logging.INFO, logger="index.lexical_follow"):
        report = first.reindex()
    assert report.updated == [EDITED]
    # The indexing instance itself follows the server the same way: its own run's source only.
    assert any("incrementally" in r.getMessage() for r in caplog.records), caplog.text

    edited_chunks = len(second.store.ids_for_source(EDITED))
    total = second.store.count()
    assert _hits(second, NEW_WORD) == {EDITED}
    assert _hits(second, OLD_WORD) == set()
    follow = second.retriever.last_follow
    assert follow.mode == "incremental", follow
    assert follow.chunks_fetched == edited_chunks < total
    assert follow.to_generation == second.store.published_generation() != follow.from_generation
    _same_as_a_full_build(second)
    assert second.retriever.lexical().ids == first.retriever.lexical().ids

    # Saved for the next start: a restarted second instance loads it, fetching nothing.
    restarted = Engine(second.settings, embedder)
    assert _hits(restarted, NEW_WORD) == {EDITED}
    assert restarted.retriever.last_follow.mode == "loaded"
    assert restarted.retriever.last_follow.chunks_fetched == 0


@pytest.mark.slow
@pytest.mark.server
def test_a_removed_source_leaves_the_second_instance_incrementally(make_settings, embedder, tmp_path,
                                                                   chroma_server):
    first, second, sources = _instances(make_settings, embedder, tmp_path, chroma_server)
    assert "dram-memory-push.md" in second.retriever.lexical().sources()
    assert _hits(second, "Sakamoto") == {"dram-memory-push.md"}

    (sources / "dram-memory-push.md").unlink()
    assert first.reindex().removed == ["dram-memory-push.md"]
    assert _hits(second, "Sakamoto") == set()
    follow = second.retriever.last_follow
    assert (follow.mode, follow.chunks_fetched) == ("incremental", 0)
    assert second.retriever.lexical().sources() == set(FILES) - {"dram-memory-push.md"}
    _same_as_a_full_build(second)


@pytest.mark.slow
@pytest.mark.server
def test_an_instance_that_missed_more_runs_than_the_log_keeps_rebuilds(make_settings, embedder, tmp_path,
                                                                       chroma_server):
    first, second, sources = _instances(make_settings, embedder, tmp_path, chroma_server, lexical_log_keep=2)
    start = second.retriever.lexical().generation

    # Two runs missed: the log (two runs) still covers them.
    _edit(sources, EDITED, OLD_WORD, NEW_WORD)
    assert first.reindex().updated == [EDITED]
    _edit(sources, "digital-silk-road.md", "Smart Africa", "Smart Sahel")
    assert first.reindex().updated == ["digital-silk-road.md"]
    assert _hits(second, NEW_WORD) == {EDITED}
    follow = second.retriever.last_follow
    assert (follow.mode, follow.from_generation) == ("incremental", start)
    assert follow.chunks_fetched == len(second.store.ids_for_source(EDITED)) + len(
        second.store.ids_for_source("digital-silk-road.md"))

    # Three runs missed: the oldest is out of the log, so it cannot say what changed.
    _edit(sources, EDITED, NEW_WORD, "Vellamere")
    assert first.reindex().updated == [EDITED]
    (sources / "dram-memory-push.md").unlink()
    assert first.reindex().removed == ["dram-memory-push.md"]
    _edit(sources, "digital-silk-road.md", "Smart Sahel", "Smart Savanna")
    assert first.reindex().updated == ["digital-silk-road.md"]
    assert len(second.store.change_log().runs) == 2

    assert _hits(second, "Vellamere") == {EDITED} and _hits(second, NEW_WORD) == set()
    follow = second.retriever.last_follow
    assert follow.mode == "rebuilt", follow
    assert "not among the 2 runs" in follow.reason
    assert follow.chunks_fetched == second.store.count()
    assert _hits(second, "Sakamoto") == set() and _hits(second, "Savanna") == {"digital-silk-road.md"}
    _same_as_a_full_build(second)


@pytest.mark.slow
@pytest.mark.server
def test_the_log_stays_bounded_and_keeps_the_identity(make_settings, embedder, tmp_path, chroma_server):
    first, second, sources = _instances(make_settings, embedder, tmp_path, chroma_server, lexical_log_keep=3)
    generations = []
    for n in range(5):
        _edit(sources, "digital-silk-road.md", "Smart Africa" if n == 0 else f"Smart Region{n - 1}",
              f"Smart Region{n}")
        assert first.reindex().updated == ["digital-silk-road.md"]
        generations.append(first.store.published_generation())
    log = second.store.change_log()
    assert [run.generation for run in log.runs] == generations[-3:]
    assert all(run.changed == ("digital-silk-road.md",) and run.previous == before
               for run, before in zip(log.runs, generations[-4:-1], strict=True))

    # A run that lists too many sources is published as one that changed everything.
    many = [f"reports/{n:05d}-a-long-file-name-for-a-translated-report.pdf" for n in range(5000)]
    first.store.publish_generation(generations[-1] + 1, many, [], log_keep=3)
    log = second.store.change_log()
    assert log.runs[-1].everything and len(log.to_json()) < MAX_CHARS and len(log.runs) == 3

    # The metadata still says what built the index: a restart passes the identity check, and one
    # with other settings is still refused.
    collection = first.store.client.get_collection(first.settings.collection, embedding_function=None)
    assert IndexIdentity.from_metadata(collection.metadata) == first.store.identity
    restarted = Engine(first.settings, embedder)
    assert restarted.status().chunks == first.store.count()
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        Engine(first.settings.model_copy(update={"chunk_tokens": 120}), embedder)


@pytest.mark.slow
@pytest.mark.server
def test_a_rebuild_makes_every_follower_rebuild(make_settings, embedder, tmp_path, chroma_server):
    first, second, sources = _instances(make_settings, embedder, tmp_path, chroma_server)
    _edit(sources, EDITED, OLD_WORD, NEW_WORD)
    assert first.reindex(rebuild=True).ok
    log = second.store.change_log()
    assert len(log.runs) == 1 and log.runs[0].everything
    assert _hits(second, NEW_WORD) == {EDITED} and _hits(second, OLD_WORD) == set()
    follow = second.retriever.last_follow
    assert follow.mode == "rebuilt" and "changed everything" in follow.reason
    assert follow.chunks_fetched == second.store.count()
    _same_as_a_full_build(second)
