"""Reindexing while four clients ask questions: no query fails, and every answer cites only
chunks that existed while it was being answered."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SOURCES, copy_notes

from assistant.engine import Engine

# serial: the clients' query windows must overlap the reindex, which a second worker's load would skew.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

CLIENTS = 4
START = ["chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "digital-silk-road.md",
         "dram-memory-push.md", "big-fund-and-state-bank-lending.md"]
QUESTIONS = [
    "When did SASAC approve the CETC Potevio merger?",
    "How much of its chip demand did China produce in 2020?",
    "Which company was folded into CETC in 2021?",
    "How many African countries take part in Smart Africa?",
    "When did SASAC approve the CETC Potevio merger?",
    "Who hired Yukio Sakamoto for memory chips?",
    "Which ten sectors does Made in China 2025 prioritise?",
    "What did ZTE build in Venezuela?",
]
MERGER = "cetc-potevio-merger.md"


def _edit_merger(sources: Path, cycle: int) -> None:
    """Change the merger note (the most asked about) so that all its chunks are rewritten."""
    path = sources / MERGER
    path.write_text(SOURCES.joinpath(MERGER).read_text().replace("SASAC", f"SASAC ({cycle})"))


# Each cycle adds, changes and removes files; some removed text comes back in a later cycle.
CYCLES = [
    {"add": ["made-in-china-2025-overview.md"], "remove": ["dram-memory-push.md"]},
    {"add": ["surveillance-technology-exports.md", "dram-memory-push.md"],
     "remove": ["digital-silk-road.md", "made-in-china-2025-overview.md"]},
    {"add": ["digital-silk-road.md"], "remove": ["surveillance-technology-exports.md"]},
    {"add": ["made-in-china-2025-overview.md"], "remove": ["dram-memory-push.md"]},
    {"add": ["dram-memory-push.md"], "remove": ["made-in-china-2025-overview.md"]},
]


@dataclass
class Record:
    started: float
    ended: float
    passages: set[str] = field(default_factory=set)
    cited: set[str] = field(default_factory=set)
    error: BaseException | None = None


def _client(engine: Engine, offset: int, stop: threading.Event, records: list[Record]) -> None:
    n = offset
    while not stop.is_set():
        question = QUESTIONS[n % len(QUESTIONS)]
        n += 1
        started = time.monotonic()
        try:
            answer = engine.pipeline.ask(engine.extractive, question)
            records.append(Record(started, time.monotonic(), {p.id for p in answer.passages},
                                  {c.passage.id for c in answer.citations}))
        except BaseException as exc:  # recorded, asserted on in the main thread
            records.append(Record(started, time.monotonic(), error=exc))


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_reindex_while_four_clients_query(mode, make_settings, embedder, tmp_path, request):
    sources = copy_notes(tmp_path / "sources", START)
    extra: dict = {}
    if mode == "server":
        extra = {"chroma_url": request.getfixturevalue("chroma_server"), "collection": f"c-{uuid.uuid4().hex[:12]}",
                 "lexical_check_s": 0.2}
    indexer = Engine(make_settings(data_dir=tmp_path / "indexer", sources_dir=sources, **extra), embedder)
    assert indexer.reindex().ok
    if mode == "embedded":
        clients = [indexer] * CLIENTS  # one engine per process, shared by every session (as in the app)
    else:  # separate app instances, each with its own data dir and BM25 index, on one server
        clients = [Engine(make_settings(data_dir=tmp_path / f"client{i}", sources_dir=sources, **extra), embedder)
                   for i in range(CLIENTS)]

    def stored() -> set[str]:
        return {c.id for c in indexer.store.all_chunks()}

    states = [stored()]  # the chunk ids after each reindex
    windows: list[tuple[float, float]] = []  # when each reindex ran
    records: list[Record] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(clients[i], i, stop, records), daemon=True)
               for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        for number, cycle in enumerate(CYCLES, start=1):
            copy_notes(sources, cycle["add"])
            _edit_merger(sources, number)
            for name in cycle["remove"]:
                (sources / name).unlink()
            started = time.monotonic()
            report = indexer.reindex()
            windows.append((started, time.monotonic()))
            assert report.ok and report.added and report.updated and report.removed, number
            states.append(stored())
            time.sleep(0.5)  # let the clients ask against the settled index too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    errors = [r.error for r in records if r.error is not None]
    assert not errors, f"{len(errors)} of {len(records)} queries failed, first: {errors[0]!r}"
    during = sum(1 for r in records if any(r.started < end and r.ended > start for start, end in windows))
    assert during >= CLIENTS, f"only {during} queries overlapped a reindex; the test proves nothing"
    assert sum(1 for r in records if r.cited) >= len(records) // 2

    # State j is what the store holds from when reindex j starts (its chunks begin to appear)
    # until reindex j+1 ends (the last of them are gone). A query may see the chunks of every
    # state whose span overlaps its own; in particular, a query that began after a reindex
    # ended must not see the text that reindex removed.
    spans = [(-float("inf"), windows[0][1])]
    spans += [(windows[j][0], windows[j + 1][1] if j + 1 < len(windows) else float("inf"))
              for j in range(len(windows))]
    removed_for_good = states[0].union(*states[1:-1]) - states[-1]
    for record in records:
        allowed = set().union(*(ids for ids, (start, end) in zip(states, spans, strict=True)
                                if record.started <= end and record.ended >= start))
        assert record.passages <= allowed, "a passage came from a chunk that did not exist at the time"
        assert record.cited <= record.passages
        if record.started > windows[-1][1]:
            assert not record.passages & removed_for_good


def test_a_read_tripped_by_a_delete_in_flight_is_asked_again(default_corpus_index):
    # Chroma can fail a query that meets a delete in flight ("Error finding id": the vector index
    # still has an id whose record is gone). The concurrency test above met it once in ~700 queries
    # on a server; it cannot be caused on demand, so the collection here raises it, then answers.
    from chromadb.errors import InternalError

    _, engine = default_corpus_index
    store = engine.store
    real = store.collection
    calls = {"query": 0, "get": 0}

    class Tripping:
        def __getattr__(self, name):
            return getattr(real, name)

        def query(self, **kwargs):
            calls["query"] += 1
            if calls["query"] == 1:
                raise InternalError("Error executing plan: Internal error: Error finding id")
            return real.query(**kwargs)

        def get(self, **kwargs):
            calls["get"] += 1
            raise InternalError("Error executing plan: Internal error: something else")

    store.collection = Tripping()
    try:
        vector = engine.embedder.encode(["semiconductor self-sufficiency"])[0]
        hits = store.search(vector, 5)
        assert len(hits) == 5 and calls["query"] == 2
        # Any other internal error is not a race: it surfaces at once, unretried.
        with pytest.raises(InternalError, match="something else"):
            store.records([hits[0][0]])
        assert calls["get"] == 1
    finally:
        store.collection = real
