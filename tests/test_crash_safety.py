"""kill -9 during indexing, then a normal run: the index must equal a clean build."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SOURCES, clone_index, copy_notes

from assistant.engine import Engine, _forget_embedded_chroma
from index.indexer import Indexer
from index.store import ChunkStore, make_client

# serial: kills land at chosen delays into a write; another worker's load would move them.
pytestmark = pytest.mark.serial


def _ids(settings, embedder) -> set[str]:
    indexer = Indexer(settings, embedder)
    store = ChunkStore(make_client(settings), settings.collection, indexer.identity)
    ids = [c.id for c in store.all_chunks()]
    assert len(ids) == len(set(ids))
    return set(ids)


def _index_process(data: Path, sources: Path) -> subprocess.Popen:
    env = {**os.environ, "CHOKEPOINT_INDEX_BATCH_CHUNKS": "16", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "--data-dir", str(data), "--sources-dir", str(sources), "index"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_for(manifest: Path, sql: str, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "indexer finished before the kill point"
        if manifest.exists():
            try:
                with sqlite3.connect(manifest, timeout=1) as db:
                    if db.execute(sql).fetchone()[0] >= at_least:
                        return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    raise AssertionError("kill point never reached")


@pytest.mark.slow
def test_kill_9_then_reindex_equals_clean_build(make_settings, embedder, default_corpus_template, tmp_path):
    # The clean build: the session's index of the default corpus, copied.
    sources, data = clone_index(default_corpus_template, tmp_path / "clean")
    expected = _ids(make_settings(data_dir=data, sources_dir=sources), embedder)

    data = tmp_path / "killed"
    settings = make_settings(data_dir=data, sources_dir=SOURCES)
    kill_points = [
        ("SELECT count(*) FROM files WHERE state = 'pending'", 1),  # journaled, store being written
        ("SELECT count(*) FROM files WHERE state = 'done'", 5),  # part of the corpus committed
        ("SELECT count(*) FROM files WHERE state = 'done'", 15),
    ]
    for sql, threshold in kill_points:
        proc = _index_process(data, SOURCES)
        _wait_for(settings.manifest_path, sql, threshold, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    report = Indexer(settings, embedder).run()
    assert report.ok
    assert _ids(settings, embedder) == expected, "after repair the index must equal a clean build"
    assert Indexer(settings, embedder).run().chunks_written == 0


class _ForkServer:
    """Starts ``forkserver.py``; each request forks a real indexing process from it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert "ready" in json.loads(self.process.stdout.readline())

    def start(self, job: str, settings: dict, out: Path, vectors: Path | None = None, inspect: bool = True) -> int:
        request = {"job": job, "settings": settings, "out": str(out), "vectors": str(vectors) if vectors else None,
                   "inspect": inspect}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(json.loads(self.process.stdout.readline())["pid"])

    def run(self, job: str, settings: dict, out: Path, vectors: Path | None = None, timeout: float = 300) -> dict:
        """Start a child and wait for its result."""
        out.unlink(missing_ok=True)
        pid = self.start(job, settings, out, vectors)
        _wait_gone(pid, timeout)
        result = json.loads(out.read_text())
        error = result.get("error") or ""
        assert "error" not in result, error
        return result

    def close(self) -> None:
        self.process.stdin.close()  # it exits at the end of its input
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout} s"
        time.sleep(0.01)


def _pending(manifest: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(manifest, timeout=1)) as db:
            return db.execute("SELECT count(*) FROM files WHERE state = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _mutate(rng, sources: Path, parked: Path, cycle: int) -> list[str]:
    """Edit a file, and take one away or bring a parked one back; returns the files to index."""
    present = sorted(p.name for p in sources.glob("*.md"))
    changed = rng.sample(present, k=1)
    for name in changed:
        path = sources / name
        paragraphs = path.read_text().split("\n\n")
        at = rng.randrange(2, len(paragraphs) + 1)
        paragraphs.insert(at, f"Revision {cycle} of this note added this paragraph about chokepoint number {cycle}.")
        path.write_text("\n\n".join(paragraphs))
    back = sorted(p.name for p in parked.glob("*.md"))
    if back and cycle % 2:
        changed.append(rng.choice(back))
        (parked / changed[-1]).rename(sources / changed[-1])
    else:
        away = rng.choice([n for n in present if n not in changed])
        (sources / away).rename(parked / away)
    return changed


def _expected_ids(settings, embedder) -> dict[str, list[str]]:
    """Per source, the chunk ids a clean build of the sources dir gives (chunking only, no embedding)."""
    from index.chunking import chunk_document
    from index.indexer import chunker_config
    from index.loaders import load

    def fits(text: str) -> bool:
        return embedder.model_token_count(text) <= embedder.max_tokens

    return {
        path.name: [c.id for c in chunk_document(load(path, display_path=path.name), chunker_config(settings), fits)]
        for path in sorted(settings.sources_dir.glob("*.md"))
    }


@pytest.mark.slow
def test_twenty_random_kills_each_repaired_equal_a_clean_build(make_settings, embedder, tmp_path):
    """kill -9 at 20 seeded random points of indexing runs (the first builds the whole corpus,
    each later one redoes the files changed since); after each, a normal run must leave what a
    clean build gives, and at the end the index must equal a real clean build's."""
    import random

    import numpy as np

    rng = random.Random(20240611)
    sources, parked = tmp_path / "sources", tmp_path / "parked"
    sources.mkdir()
    parked.mkdir()
    corpus = [path for path in sorted(SOURCES.glob("*.md")) if path.name != "README.md"]
    for path in corpus[::3]:  # a third of the notes in small chunks: hundreds of chunks, many batches
        shutil.copy(path, sources / path.name)
    small = {"chunk_tokens": 48, "chunk_overlap": 8, "index_batch_chunks": 8}
    settings = make_settings(data_dir=tmp_path / "killed", sources_dir=sources, **small)
    config = {"data_dir": str(settings.data_dir), "sources_dir": str(sources), **small}
    lock = settings.data_dir / "index.lock"
    by_source = _expected_ids(settings, embedder)
    server = _ForkServer()
    kills, misses, repaired = [], 0, 0
    try:
        # How long a run takes per chunk on this machine now, from one over two notes in a
        # scratch data dir; every run below that completes updates it.
        scratch = tmp_path / "scratch"
        (scratch / "sources").mkdir(parents=True)
        for name in sorted(by_source)[:2]:
            shutil.copy(sources / name, scratch / "sources" / name)
        report = server.run("index", {**config, "data_dir": str(scratch / "data"),
                                      "sources_dir": str(scratch / "sources")}, scratch / "result.json")["report"]
        per_chunk = report["seconds"] / report["chunks_written"]
        while len(kills) < 20:
            assert misses <= 10, "too many runs finished before their kill point"
            work = list(by_source)  # the first run indexes the whole corpus
            if kills or misses:
                work = _mutate(rng, sources, parked, len(kills) + misses)
                by_source = _expected_ids(settings, embedder)
            expected = sorted(i for ids in by_source.values() for i in ids)
            to_write = sum(len(by_source[name]) for name in work)
            # The kill point: a random time in the run (timed from when it takes the lock; the
            # model is loaded by then); every other time, the first moment after it when a batch
            # is journaled but not yet committed.
            delay = rng.uniform(0.0, 0.85 * to_write * per_chunk)
            mid_write = len(kills) % 2 == 1
            lock.unlink(missing_ok=True)
            pid = server.start("index", config, tmp_path / "killed.json", inspect=False)
            while _alive(pid) and f"pid {pid}" not in (lock.read_text() if lock.exists() else ""):
                time.sleep(0.005)
            started = time.monotonic()
            while _alive(pid) and time.monotonic() < started + delay:
                time.sleep(0.002)
            while mid_write and _alive(pid) and not _pending(settings.manifest_path):
                time.sleep(0.005)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 60)
            if (tmp_path / "killed.json").exists():  # it finished before the kill point
                report = json.loads((tmp_path / "killed.json").read_text())["report"]
                per_chunk = report["seconds"] / max(report["chunks_written"], 1)
                (tmp_path / "killed.json").unlink()
                misses += 1
            else:
                kills.append((round(delay, 2), mid_write))
            result = server.run("index", config, tmp_path / "normal.json")
            report, state = result["report"], result["state"]
            assert report["ok"], report["failed"]
            repaired += bool(report["repaired"])
            if report["chunks_written"] >= to_write // 2:  # enough work to time this machine by
                per_chunk = report["seconds"] / report["chunks_written"]
            where = f"after kill {len(kills)} {kills[-1] if kills else ''}"
            assert state["ids"] == expected, f"{where}: the repaired index differs from a clean build's"
            assert state["count"] == len(expected) == state["manifest_chunks"], where
            assert not state["pending"], where
            assert state["bm25_ids"] == expected, f"{where}: BM25 does not match the store"
            assert state["bm25_generation"] == state["generation"] == state["published"], where

        final = server.run("inspect", config, tmp_path / "final.json", vectors=tmp_path / "killed.npz")["state"]
        clean = {**config, "data_dir": str(tmp_path / "clean")}
        built = server.run("index", clean, tmp_path / "clean.json", vectors=tmp_path / "clean.npz")["state"]
    finally:
        server.close()
    assert final["ids"] == built["ids"] and final["count"] == built["count"]
    assert final["bm25_ids"] == built["bm25_ids"]
    mine, theirs = np.load(tmp_path / "killed.npz"), np.load(tmp_path / "clean.npz")
    assert list(mine["ids"]) == list(theirs["ids"])
    assert np.allclose(mine["vectors"], theirs["vectors"], atol=1e-4), "a chunk was stored with a wrong vector"
    print(f"kill points (delay s, mid-write): {kills}; {misses} runs finished first; {repaired} repairs")
    assert repaired >= 5, "too few kills landed between journaling and commit to test the repair"


def test_an_index_whose_vector_files_a_crash_damaged_is_rebuilt_on_the_next_run(make_settings, embedder, tmp_path):
    """kill -9 during Chroma's own HNSW flush can leave its pickle truncated (seen in CI); cause that
    state directly and check the next run rebuilds from the sources instead of failing for good."""
    from assistant.llm.faults import describe

    sources = copy_notes(tmp_path / "sources",
                         ["chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "digital-silk-road.md"])
    settings = make_settings(data_dir=tmp_path / "data", sources_dir=sources)
    assert Indexer(settings, embedder).run().ok
    expected = _ids(settings, embedder)
    [segment] = [p for p in settings.chroma_dir.iterdir() if p.is_dir()]
    (segment / "index_metadata.pickle").write_bytes(b"\x80\x04\x95\x10")  # a pickle cut off after 4 bytes
    _forget_embedded_chroma(settings.chroma_dir)

    engine = Engine(settings, embedder)  # the app, started on the damaged index
    with pytest.raises(Exception) as broken:  # what a question meets: one line saying what to do
        engine.retriever.retrieve("chip self-sufficiency in 2020")
    message = describe(broken.value, settings)
    assert "damaged" in message and str(settings.chroma_dir) in message and "Reindex" in message

    report = engine.reindex()  # the sidebar's Reindex
    assert report.ok and report.rebuilt_because and "pickle" in report.rebuilt_because
    assert "rebuilt from the sources" in report.summary()
    passages = engine.retriever.retrieve("share of chips made in China in 2020").passages
    assert passages[0].chunk.source == "chip-self-sufficiency-figures.md"
    _forget_embedded_chroma(settings.chroma_dir)
    assert _ids(settings, embedder) == expected
    assert Indexer(settings, embedder).run().chunks_written == 0
