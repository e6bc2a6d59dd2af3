"""A corpus of any size with random unit vectors, built resumably through the store and BM25 APIs.

Embedding a million chunks on two cores would take days (about 30 chunks/s), so the query benchmark
can store seeded random unit vectors of the model's dimension instead (``--random-vectors-from``).
What is measured is then the cost of Chroma's inserts, its HNSW search and memory, and BM25 over the
generated text. Queries are still embedded by the real model, so the dense half of a search finds
nothing meaningful in such a corpus: its latency is the figure, not its results.

Every chunk and every vector is a function of its position alone (text seeded per source, vectors
per batch), not of the corpus size or of the run that wrote it. So a killed build resumes at the
last batch it recorded, upserting (a batch written but not yet recorded is written again, under the
same ids: nothing twice, nothing missed), and the first N chunks of any such corpus are the N-chunk
corpus. SIGTERM or SIGINT lets the batch in flight finish first, so ``kill PID`` never leaves
Chroma's HNSW files half flushed.

    python benchmarks/random_corpus.py --bm25-of FOLDER --size N   (internal: the BM25 phase, in a child)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from benchmarks import corpus
from benchmarks.common import bench_settings, load_average, rss_mib

SEED = 7
SOURCE_CHUNKS = 10
BATCH = 1000
"""Chunks per upsert and per recorded step; vectors are drawn per batch, so this is part of the corpus."""
PROGRESS = "progress.json"
KIND = "random unit vectors + generated text, store and BM25 APIs"
NOTE = ("random vectors: queries are embedded by the real model, so dense hits are not semantically related "
        "to them and every extractive answer is refused (relevance under min_relevance); latency and memory "
        "are what these figures measure")


def source_chunks(number: int) -> list[Any]:
    """The ``SOURCE_CHUNKS`` chunks of source ``number``: one to three generated sentences each."""
    from index.chunk import Chunk
    from index.chunking import chunk_id

    rng = random.Random(f"random-corpus/{SEED}/{number}")  # str seeds hash the same on every run
    source = f"random/src{number:07d}.md"
    title = f"{rng.choice(corpus.COMPANIES)} and {rng.choice(corpus.TECHNOLOGIES)} ({rng.randint(2014, 2025)})"
    publisher = rng.choice(corpus.PUBLISHERS)
    date = f"{rng.randint(2014, 2025)}-{rng.randint(1, 12):02d}"
    topics = tuple(sorted(rng.sample(corpus.TOPICS, rng.randint(1, 3))))
    chunks = []
    for ordinal in range(SOURCE_CHUNKS):
        heading = rng.choice(corpus.HEADINGS)
        text = corpus.paragraph(rng, rng.randint(1, 3))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        chunks.append(Chunk(
            id=chunk_id(source, ordinal, digest), source=source, ordinal=ordinal, text=text, start=0,
            end=len(text), title=title, heading=heading, publisher=publisher, date=date, topics=topics,
            content_hash=digest,
        ))
    return chunks


def chunks_between(start: int, stop: int) -> list[Any]:
    """The chunks at positions ``start`` (a multiple of ``SOURCE_CHUNKS``) up to ``stop``."""
    assert start % SOURCE_CHUNKS == 0, start
    found: list[Any] = []
    for number in range(start // SOURCE_CHUNKS, -(-stop // SOURCE_CHUNKS)):
        found.extend(source_chunks(number))
    return found[:stop - start]


def iter_chunks(size: int) -> Iterator[Any]:
    """The first ``size`` chunks, one source at a time (never all of them in memory)."""
    for start in range(0, size, BATCH):
        yield from chunks_between(start, min(start + BATCH, size))


def unit_vectors(batch: int, count: int, dimension: int) -> np.ndarray:
    """The first ``count`` vectors of batch number ``batch``: seeded, normal, scaled to unit length."""
    # A whole batch is always drawn, so a short last batch holds the same vectors as a longer corpus's.
    vectors = np.random.default_rng([SEED, batch]).standard_normal((BATCH, dimension), dtype=np.float32)[:count]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def all_vectors(size: int, dimension: int) -> np.ndarray:
    """Every vector of the ``size``-chunk corpus, in position order (for the brute-force floor)."""
    matrix = np.empty((size, dimension), dtype=np.float32)
    for start in range(0, size, BATCH):
        count = min(BATCH, size - start)
        matrix[start:start + count] = unit_vectors(start // BATCH, count, dimension)
    return matrix


def _read_progress(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / PROGRESS).read_text())
    except (OSError, ValueError):
        return {"chunks": 0, "insert_s": 0.0, "runs": [], "steps": []}


def _write_progress(folder: Path, progress: dict[str, Any]) -> None:
    staging = folder / f".{PROGRESS}.{os.getpid()}.tmp"
    staging.write_text(json.dumps(progress, indent=1))
    os.replace(staging, folder / PROGRESS)  # a kill never leaves a half-written record


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag read between batches, so a batch in flight always finishes."""

    def __init__(self) -> None:
        self.asked = False
        self._previous = {s: signal.signal(s, self._ask) for s in (signal.SIGTERM, signal.SIGINT)}

    def _ask(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True
        print(f"  signal {signum}: stopping after this batch", flush=True)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def insert(settings: Any, identity: Any, folder: Path, size: int, log_every: int = 10_000) -> dict[str, Any]:
    """Upsert chunks and random vectors up to ``size``, from where ``folder``'s progress record stops.

    Returns the progress record; its ``chunks`` is below ``size`` when a signal stopped the run.
    """
    from index.store import ChunkStore, make_client

    store = ChunkStore(make_client(settings), settings.collection, identity)
    progress = _read_progress(folder)
    done = progress["chunks"]
    if store.count() < done:
        raise RuntimeError(f"{folder}: the progress record says {done} chunks, the store holds {store.count()}; "
                           "the store was changed outside this build: delete the folder to start again")
    run = {"from": done, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": load_average()}
    progress["runs"].append(run)
    stop = _StopRequest()
    started = time.perf_counter()
    try:
        for start in range(done, size, BATCH):
            part = chunks_between(start, min(start + BATCH, size))
            vectors = unit_vectors(start // BATCH, len(part), identity.dimension)
            began = time.perf_counter()
            store.upsert(part, vectors)
            progress["insert_s"] = round(progress["insert_s"] + time.perf_counter() - began, 3)
            progress["chunks"] = start + len(part)
            if progress["chunks"] % log_every == 0 or progress["chunks"] == size:
                # The insert rate falls as HNSW grows: a step every log_every chunks shows where.
                progress["steps"].append({"chunks": progress["chunks"], "insert_s": progress["insert_s"],
                                          "wall_s": round(time.perf_counter() - started, 1), "load": load_average()})
                print(f"  {progress['chunks']}/{size} chunks, insert {progress['insert_s']:.0f} s so far, "
                      f"load {load_average()}", flush=True)
            run.update(to=progress["chunks"], wall_s=round(time.perf_counter() - started, 1),
                       load_at_end=load_average())
            _write_progress(folder, progress)
            if stop.asked:
                break
    finally:
        stop.restore()
    count = store.count()
    if count != progress["chunks"]:
        raise RuntimeError(f"{folder}: {count} chunks stored after writing {progress['chunks']}")
    return progress


def build_bm25(settings: Any, size: int, generation: int = 1) -> dict[str, Any]:
    """Build and save BM25 over the first ``size`` chunks, streamed: the full build the indexer does.

    Run in a fresh process (``bm25_in_child``) so that its peak RSS is the build's own.
    """
    from index.lexical import LexicalIndex, lexical_row

    rows_s = 0.0

    def rows() -> Iterator[Any]:
        nonlocal rows_s
        began = time.perf_counter()
        for chunk in iter_chunks(size):
            row = lexical_row(chunk)
            rows_s += time.perf_counter() - began
            yield row
            began = time.perf_counter()

    baseline = rss_mib()
    started = time.perf_counter()
    index = LexicalIndex.build(rows(), generation)
    built = time.perf_counter()
    index.save(settings.lexical_dir)
    saved = time.perf_counter()
    postings = sum(int(s.rows.size) for s in index.segments)
    return {"chunks": len(index), "postings": postings, "terms": sum(len(s.vocab) for s in index.segments),
            "generate_and_tokenize_s": round(rows_s, 1), "index_s": round(built - started - rows_s, 1),
            "build_s": round(built - started, 1), "save_s": round(saved - built, 1),
            "rss_before_mib": baseline["VmRSS"], **{f"{k}_after_mib": v for k, v in rss_mib().items()},
            "disk_mib": round(sum(p.stat().st_size for p in settings.lexical_dir.rglob("*") if p.is_file()) / 2**20, 1),
            "load_average": load_average()}


def bm25_in_child(folder: Path, size: int) -> dict[str, Any]:
    """``build_bm25`` in a fresh interpreter; its JSON line back."""
    command = [sys.executable, __file__, "--bm25-of", str(folder), "--size", str(size)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def build(folder: Path, size: int, settings: Any, identity: Any) -> dict[str, Any] | None:
    """Insert up to ``size`` chunks, then build BM25 and publish generation 1.

    None when a signal stopped the insert (run it again to go on); otherwise what the build took.
    """
    from index.lexical import LexicalIndex
    from index.store import ChunkStore, make_client

    progress = insert(settings, identity, folder, size)
    if progress["chunks"] < size:
        print(f"stopped at {progress['chunks']} chunks; run again to resume", flush=True)
        return None
    bm25 = progress.get("bm25")
    if bm25 is None or LexicalIndex.saved_generation(settings.lexical_dir) != 1:
        print(f"building BM25 over {size} chunks (load {load_average()})", flush=True)
        bm25 = bm25_in_child(folder, size)
        progress["bm25"] = bm25
        _write_progress(folder, progress)
    # A first build, like `index --rebuild`: followers cannot follow it from any log, they rebuild.
    ChunkStore(make_client(settings), settings.collection, identity).publish_generation(1, everything=True)
    steps = progress["steps"]
    return {"kind": KIND, "vectors": f"random unit vectors, dimension {identity.dimension}, seed {SEED}",
            "chunks": progress["chunks"], "insert_s": progress["insert_s"],
            "chunks_per_s": round(progress["chunks"] / progress["insert_s"], 1) if progress["insert_s"] else None,
            "last_step_chunks_per_s": _last_rate(steps), "runs": progress["runs"], "bm25": bm25}


def _last_rate(steps: list[dict[str, Any]]) -> float | None:
    """Chunks/s over the last recorded step: the rate at the corpus's final size."""
    if len(steps) < 2:
        return None
    a, b = steps[-2], steps[-1]
    return round((b["chunks"] - a["chunks"]) / max(b["insert_s"] - a["insert_s"], 1e-9), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bm25-of", type=Path, required=True, help="corpus folder whose BM25 index to build")
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(build_bm25(bench_settings(args.bm25_of), args.size)))


if __name__ == "__main__":
    main()
