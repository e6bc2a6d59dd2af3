"""kill -9 during indexing, then a normal run: the index must equal a clean build."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SOURCES

from index.indexer import Indexer
from index.store import ChunkStore, make_client


def _ids(settings, embedder) -> set[str]:
    indexer = Indexer(settings, embedder)
    store = ChunkStore(make_client(settings), settings.collection, indexer.identity, embedder)
    ids = [c.id for c in store.all_chunks()]
    assert len(ids) == len(set(ids))
    return set(ids)


def _index_process(data: Path, sources: Path) -> subprocess.Popen:
    env = {**os.environ, "CHOKEPOINT_INDEX_BATCH_CHUNKS": "16", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "--data-dir", str(data), "--sources-dir", str(sources), "index"],
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
def test_kill_9_then_reindex_equals_clean_build(make_settings, embedder, tmp_path):
    clean = make_settings(data_dir=tmp_path / "clean", sources_dir=SOURCES)
    Indexer(clean, embedder).run()
    expected = _ids(clean, embedder)

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
