"""Query benchmark: latency of query embedding + retrieval at growing corpus sizes.

    python benchmarks/bench_query.py [--sizes 1000,10000] [--short-from 100000] [--queries 100]

For each size a corpus of generated, varied text on the project's subject (``benchmarks/corpus.py``)
is built once and cached under ``<data dir>/bench/<size>``; reruns only measure. Sizes below
``--short-from`` go through the real ``Indexer`` (markdown files, 150-token chunks). Sizes at or
above it are written through the real store and BM25 APIs directly, as chunks of one to three
sentences: embedding 100k chunks of 150 tokens with this model takes hours on two cores. All
vectors are the real model's.

Measured per size, over ``--queries`` varied questions, as p50/p95 in ms:
- query embedding alone;
- ``Retriever.retrieve`` in hybrid, dense-only and BM25-only mode (each includes the embedding);
- brute-force numpy cosine over the same vectors (a matrix product and a top-k), the floor that a
  vector index must beat; given with the embedding added, to compare with the retrievers;
- the extractive answer through the whole pipeline (answered questions only).
Then, in a fresh process, the peak RSS of an engine holding the largest corpus and answering.
A PNG plot of latency against corpus size is written to ``benchmarks/query_latency.png``.

A million chunks (issue 16): ``--random-vectors-from N`` builds sizes at or above N with seeded random
unit vectors instead of the model's (``benchmarks/random_corpus.py``: resumable, killable, run it in
the background with ``--build-only``). Queries are still embedded by the real model, so dense results
on such a corpus mean nothing; latency and memory are what is measured. ``--server`` adds server
mode on the largest size (``benchmarks/server_mode.py``): ``chroma run`` on the corpus folder, an
app-like instance's first start (full BM25 rebuild from the server), its latency and RSS, and the
follow of an edit made by another instance.

    python benchmarks/bench_query.py --sizes 1000000 --random-vectors-from 1000000 --build-only
    python benchmarks/bench_query.py --sizes 1000000 --random-vectors-from 1000000 --out million.json
    python benchmarks/bench_query.py --sizes 1000000 --random-vectors-from 1000000 --server --no-embedded \
        --out million-server.json
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks.common sets the offline environment; models and Chroma are imported inside functions, after it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from benchmarks import corpus, random_corpus
from benchmarks.common import ROOT, bench_settings, load_average, rss_mib

SEED = 7
QUERY_SEED = 11
_BUILT = "built.json"


def build_with_indexer(folder: Path, size: int, embedder: Any) -> dict[str, Any]:
    """Write generated markdown files until they chunk into ``size`` chunks, then run the Indexer."""
    from index.chunking import chunk_document
    from index.indexer import Indexer, chunker_config
    from index.loaders import load

    settings = bench_settings(folder)
    config = chunker_config(settings)
    settings.sources_dir.mkdir(parents=True, exist_ok=True)
    chunks = 0
    for doc in corpus.documents(SEED + size):
        if chunks >= size:
            break
        path = settings.sources_dir / doc.name
        path.write_text(doc.markdown())
        chunks += len(chunk_document(load(path), config))
    started = time.perf_counter()
    report = Indexer(settings, embedder).run()
    seconds = time.perf_counter() - started
    assert report.ok, report.failed
    return {"kind": "indexer, 150-token chunks", "files": len(report.added) + report.unchanged,
            "chunks": report.chunks_total, "build_s": round(seconds, 1),
            "chunks_per_s": round(report.chunks_written / seconds, 1) if report.chunks_written else None}


def short_chunks(size: int) -> list[Any]:
    """``size`` chunks of one to three generated sentences, ten to a source, with full metadata."""
    from index.chunk import Chunk
    from index.chunking import chunk_id

    rng = random.Random(SEED + size)
    docs = corpus.documents(SEED + size)
    chunks: list[Chunk] = []
    while len(chunks) < size:
        doc = next(docs)
        source = f"short/{doc.name}"
        heading = rng.choice(corpus.HEADINGS)
        for ordinal in range(min(10, size - len(chunks))):
            text = corpus.paragraph(rng, rng.randint(1, 3))
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            chunks.append(Chunk(
                id=chunk_id(source, ordinal, digest), source=source, ordinal=ordinal, text=text, start=0,
                end=len(text), title=doc.title, heading=heading, publisher=doc.publisher, date=doc.date,
                topics=doc.topics, content_hash=digest,
            ))
    return chunks


def build_direct(folder: Path, size: int, embedder: Any, batch: int = 2000) -> dict[str, Any]:
    """Short chunks embedded by the real model into the real store and BM25 index.

    Written batch by batch in a fixed order, so an interrupted build resumes where the store's
    count stops instead of embedding everything again.
    """
    from index.indexer import index_identity
    from index.lexical import LexicalIndex, lexical_row
    from index.store import ChunkStore, make_client

    settings = bench_settings(folder)
    store = ChunkStore(make_client(settings), settings.collection, index_identity(settings, embedder))
    chunks = short_chunks(size)
    done = store.count()
    started = time.perf_counter()
    for start in range(done - done % batch, size, batch):
        part = chunks[start:start + batch]
        store.upsert(part, embedder.encode([c.embedding_text for c in part]))
        print(f"  {start + len(part)}/{size} chunks embedded, load {load_average()}", flush=True)
    embed_s = time.perf_counter() - started
    LexicalIndex.build((lexical_row(c) for c in chunks), 1).save(settings.lexical_dir)
    store.publish_generation(1)
    seconds = time.perf_counter() - started
    written = size - (done - done % batch)
    return {"kind": "store + BM25 APIs, 1-3 sentence chunks", "chunks": store.count(),
            "build_s": round(seconds, 1), "chunks_per_s": round(written / embed_s, 1) if written else None,
            "resumed_from": done or None}


def ensure_corpus(size: int, short_from: int, embedder: Any, random_from: int | None = None) -> Path | None:
    """The cached corpus folder for ``size``, built now if it is missing or incomplete.

    None when a random-vector build was stopped by a signal before it finished (run again to resume).
    """
    from index.indexer import index_identity
    from index.settings import Settings

    folder = Settings().data_dir.resolve() / "bench" / str(size)
    marker = folder / _BUILT
    random_vectors = random_from is not None and size >= random_from
    if marker.exists():
        built_random = json.loads(marker.read_text()).get("kind") == random_corpus.KIND
        if built_random != random_vectors:
            # Latency figures of the two kinds are not comparable: never measure one for the other.
            raise SystemExit(f"{folder} holds a corpus {'with' if built_random else 'without'} random vectors; "
                             f"{'drop' if built_random else 'add'} --random-vectors-from, or move the folder away")
        return folder
    print(f"building the {size}-chunk corpus under {folder} (load {load_average()})", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    if random_vectors:
        settings = bench_settings(folder)
        info = random_corpus.build(folder, size, settings, index_identity(settings, embedder))
        if info is None:
            return None
    elif size >= short_from:
        info = build_direct(folder, size, embedder)
    else:
        info = build_with_indexer(folder, size, embedder)
    info["load_average"] = load_average()
    marker.write_text(json.dumps(info, indent=2))
    print(json.dumps(info), flush=True)
    return folder


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 in ms."""
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return {"p50": float("nan"), "p95": float("nan")}
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50": round(statistics.median(ms), 2), "p95": round(p95, 2)}


def all_vectors(store: Any, page: int = 5000) -> np.ndarray:
    """Every vector in the store as one float32 matrix (what a brute-force search scans)."""
    rows = []
    offset = 0
    while True:
        found = store.collection.get(include=["embeddings"], limit=page, offset=offset)
        if len(found["ids"]) == 0:
            break
        rows.append(np.asarray(found["embeddings"], dtype=np.float32))
        offset += len(found["ids"])
    return np.vstack(rows)


def measure(folder: Path, embedder: Any, questions: list[str], answers: int) -> dict[str, Any]:
    """Latency distributions for one corpus."""
    from assistant.engine import Engine
    from assistant.retrieval import Retriever

    settings = bench_settings(folder)
    engine = Engine(settings, embedder)
    modes = {"hybrid": engine.retriever,
             "dense": Retriever(settings, engine.store, embedder, mode="dense"),
             "bm25": Retriever(settings, engine.store, embedder, mode="lexical")}
    first: dict[str, float] = {}
    for name, retriever in modes.items():  # first query loads BM25 and Chroma's HNSW index
        started = time.perf_counter()
        retriever.retrieve(questions[0])
        first[name] = round(time.perf_counter() - started, 2)
    built = json.loads((folder / _BUILT).read_text())
    if built.get("kind") == random_corpus.KIND:
        print(random_corpus.NOTE, flush=True)
        # The same seeded vectors the build stored, drawn again: reading a million back from Chroma takes minutes.
        matrix = random_corpus.all_vectors(built["chunks"], engine.store.identity.dimension)
    else:
        matrix = all_vectors(engine.store)
    k = settings.top_k

    times: dict[str, list[float]] = {name: [] for name in ("embed", *modes, "brute_force", "brute_force_search")}
    # One loop per mode: interleaved, the brute-force scan of every vector evicted Chroma's index
    # from the CPU caches before each hybrid query, which an app (hybrid only) never does.
    for question in questions:
        started = time.perf_counter()
        embedder.encode([question])
        times["embed"].append(time.perf_counter() - started)
    # Its own loop too: each scan of the whole matrix evicts the model's weights from the caches.
    for question in questions:
        started = time.perf_counter()
        vector = embedder.encode([question])[0]
        embedded = time.perf_counter()
        scores = matrix @ vector
        top = np.argpartition(-scores, k - 1)[:k]
        top[np.argsort(-scores[top])]
        searched = time.perf_counter()
        times["brute_force"].append(searched - started)
        times["brute_force_search"].append(searched - embedded)
    for name, retriever in modes.items():
        for question in questions:
            started = time.perf_counter()
            retriever.retrieve(question)
            times[name].append(time.perf_counter() - started)

    answer_times: list[float] = []
    refused = 0
    extractive = engine.answerer("extractive")
    for question in questions[:answers]:
        started = time.perf_counter()
        answer = engine.pipeline.ask(extractive, question)
        if answer.refused:
            refused += 1
        else:
            answer_times.append(time.perf_counter() - started)
    note = {"note": random_corpus.NOTE} if built.get("kind") == random_corpus.KIND else {}
    return {
        "chunks": int(matrix.shape[0]), "corpus": built, "queries": len(questions), **note,
        "load_average": load_average(), "first_query_s": first,
        **{name: percentiles(samples) for name, samples in times.items()},
        "extractive_answer": {**percentiles(answer_times), "answered": len(answer_times), "refused": refused},
    }


def peak_memory(folder: Path, questions: int) -> dict[str, Any]:
    """Run an engine over ``folder`` in a fresh process and read its peak RSS (VmHWM)."""
    command = [sys.executable, __file__, "--memory-of", str(folder), "--queries", str(questions)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_child(folder: Path, count: int) -> None:
    """In the child: load the engine, answer ``count`` questions, print peak and current RSS."""
    from assistant.engine import Engine

    engine = Engine(bench_settings(folder))
    extractive = engine.answerer("extractive")
    for question in corpus.queries(QUERY_SEED, count):
        engine.pipeline.ask(extractive, question)
    mib = rss_mib()
    print(json.dumps({"chunks": engine.store.count(), "peak_rss_mib": mib["VmHWM"], "rss_mib": mib["VmRSS"],
                      "questions": count}))


def plot(results: list[dict[str, Any]], path: Path, threads: int | str = "default") -> None:
    """Latency against corpus size: p50 solid, p95 dashed, both axes logarithmic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in results]
    figure, axes = plt.subplots(figsize=(9, 4.8))
    labels = {"hybrid": "hybrid (Retriever.retrieve)", "dense": "dense only (Chroma HNSW)", "bm25": "BM25 only",
              "brute_force": "brute-force numpy cosine", "embed": "query embedding alone",
              "brute_force_search": "brute-force search alone (no embedding)"}
    for name, label in labels.items():
        line, = axes.plot(sizes, [r[name]["p50"] for r in results], marker="o", label=f"{label}, p50")
        axes.plot(sizes, [r[name]["p95"] for r in results], marker=".", linestyle="--", color=line.get_color(),
                  alpha=0.6)
    axes.axhline(50, color="grey", linestyle=":", linewidth=1, label="target p50 at 100k (50 ms)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("chunks in the index")
    axes.set_ylabel("ms per query (solid p50, dashed p95)")
    loads = ", ".join(r["load_average"].split()[0] for r in results)
    axes.set_title(f"Query latency, all-MiniLM-L6-v2, {os.cpu_count()} CPU cores, torch threads: {threads}\n"
                   f"(1-min load average per size: {loads})", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated chunk counts, e.g. 1000,10000,100000")
    parser.add_argument("--short-from", type=int, default=100_000,
                        help="sizes at or above this are built from short chunks through the store APIs")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--answers", type=int, default=50, help="questions answered extractively per size")
    parser.add_argument("--random-vectors-from", type=int, default=None, metavar="N",
                        help="sizes at or above N store seeded random unit vectors instead of the model's "
                             "(benchmarks/random_corpus.py): resumable, for 1M chunks; latency only, not relevance")
    parser.add_argument("--build-only", action="store_true", help="build and cache the corpora, measure nothing")
    parser.add_argument("--server", action="store_true",
                        help="also measure server mode on the largest size (benchmarks/server_mode.py)")
    parser.add_argument("--no-embedded", action="store_true",
                        help="skip the embedded figures (latency, peak RSS): with --server, server mode only")
    parser.add_argument("--out", default="query.json", help="file name of the figures under benchmarks/out/")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "query_latency.png")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, one per core)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from benchmarks/out/query.json")
    parser.add_argument("--memory-of", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((ROOT / "benchmarks" / "out" / "query.json").read_text())
        plot(saved["results"], args.plot, saved.get("threads", "default"))
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.memory_of:
        memory_child(args.memory_of, args.queries)
        return

    from index.embedding import Embedder
    from index.settings import Settings

    embedder = Embedder(batch_size=Settings().embedding_batch_size)
    embedder.encode(["warm up"])
    sizes = [int(s) for s in args.sizes.split(",")]
    built = [ensure_corpus(size, args.short_from, embedder, args.random_vectors_from) for size in sizes]
    folders = [folder for folder in built if folder is not None]
    if args.build_only or len(folders) < len(sizes):
        return
    questions = corpus.queries(QUERY_SEED, args.queries)
    figures: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads or "default",
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    if not args.no_embedded:
        for size, folder in zip(sizes, folders, strict=True):
            result = measure(folder, embedder, questions, args.answers)
            print(json.dumps({"size": size, **result}), flush=True)
            results.append(result)
        figures["results"] = results
        figures["peak_memory"] = {**peak_memory(folders[-1], 20), "load_average": load_average()}
        print(json.dumps(figures["peak_memory"]), flush=True)
    if args.server:
        from chromadb.api.shared_system_client import SharedSystemClient

        from benchmarks import server_mode
        from index.indexer import index_identity

        # The server takes over the folder: drop this process's embedded Chroma of the closed engines. It
        # only read; still, `--server --no-embedded` in a process of its own is the cleaner run.
        gc.collect()
        SharedSystemClient.clear_system_cache()
        gc.collect()
        settings = bench_settings(folders[-1])
        figures["server_mode"] = server_mode.measure(
            folders[-1], folders[-1] / "server-mode", index_identity(settings, embedder), args.queries, 20, QUERY_SEED)
    (out / args.out).write_text(json.dumps(figures, indent=2))
    if len(results) > 1:
        plot(results, args.plot, figures["threads"])
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
