"""Server mode over a built benchmark corpus: `chroma run` on its folder, and app-like instances using it.

An instance is a fresh process that opens an ``Engine`` with ``chroma_url`` set and its own, separate
data dir, as an app instance sharing a Chroma server does. The parent runs two in turn:

1. a first start: the instance's data dir holds no BM25 index, so its first query rebuilds BM25
   from every chunk on the server (``LexicalIndex.from_chunks(store.all_chunks(), g)``): what every
   instance did each time the generation changed before change logs, and still does when it has
   missed more runs than the log keeps;
2. a restart with that BM25 index saved: query latency (hybrid, dense-only) and the instance's own
   RSS once it has answered, against the 1.5 GiB budget. It then follows an edit: the parent, as a
   second instance's indexer, rewrites one source through the server, updates the corpus folder's
   own BM25 index in place and publishes the next generation with the changed source in the change
   log; the instance's next BM25 lookup follows it (``index.lexical_follow``: incremental, fetching
   that source's chunks only). ``Retriever.last_follow`` gives its mode, chunks fetched and seconds.

The server's own RSS (its process tree, HNSW included) is read separately. Each edit adds a
generation, leaves the corpus's count unchanged, and keeps the folder's embedded BM25 index at the
published generation, so the embedded benchmark still loads it instead of rebuilding.

    python benchmarks/server_mode.py --instance URL DIR ...   (internal: one instance, in a child)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from benchmarks import corpus, random_corpus
from benchmarks.common import bench_settings, load_average, rss_mib, stop

EDIT_WORD = "zqedit"
"""Put into an edited source's text, with the generation: a BM25 search for it proves the edit was followed."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree_rss_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM summed over ``pid`` and its descendants (the server may fork helpers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total = {"VmRSS": 0.0, "VmHWM": 0.0}
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for key, value in rss_mib(current).items():
                total[key] = round(total[key] + value, 1)
        except (OSError, KeyError):
            continue
        stack.extend(children.get(current, []))
    return total


@contextmanager
def chroma_server(chroma_dir: Path, log: Path, timeout_s: float = 300) -> Iterator[tuple[str, int]]:
    """``chroma run --path chroma_dir`` on a free loopback port; yields its URL and pid, stops it after."""
    chroma = Path(sys.executable).with_name("chroma")
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with log.open("ab") as out:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(chroma), "run", "--path", str(chroma_dir), "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with no_proxy.open(f"{url}/api/v2/heartbeat", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"chroma run did not start; see {log}") from None
                    time.sleep(0.2)
            yield url, server.pid
        finally:
            stop(server, timeout=60)


def edit_one_source(folder: Path, url: str, identity: Any) -> dict[str, Any]:
    """What another instance's indexer does for a changed file, through the server.

    Deletes one source's chunks, upserts its new ones (new text, so new ids; random vectors),
    updates the corpus folder's BM25 index in place and saves it, then publishes the next generation.
    """
    from index.chunking import chunk_id
    from index.lexical import LexicalIndex, lexical_row
    from index.store import ChunkStore, make_client

    settings = bench_settings(folder, chroma_url=url)
    store = ChunkStore(make_client(settings), settings.collection, identity)
    generation = (store.published_generation() or 1) + 1
    sources = store.count() // random_corpus.SOURCE_CHUNKS
    number = (generation * 7919) % sources  # a different source each time, spread over the corpus
    chunks = []
    for chunk in random_corpus.source_chunks(number):
        text = f"{chunk.text} Revised in generation {generation} ({EDIT_WORD}{generation})."
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        chunks.append(dataclasses.replace(chunk, id=chunk_id(chunk.source, chunk.ordinal, digest), text=text,
                                          end=len(text), content_hash=digest))
    source = chunks[0].source
    vectors = np.random.default_rng([random_corpus.SEED, 10**9 + generation]).standard_normal(
        (len(chunks), identity.dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    store.delete_sources([source])
    store.upsert(chunks, vectors)
    # As the indexer does: published (with the changed source, for followers' change logs) once
    # every chunk is stored, then its own BM25 index updated in place.
    store.publish_generation(generation, [source], log_keep=settings.lexical_log_keep)
    stored = time.perf_counter()
    local = bench_settings(folder)
    lexical = LexicalIndex.load(local.lexical_dir)
    loaded = time.perf_counter()
    if lexical is None:
        raise RuntimeError(f"{local.lexical_dir} holds no BM25 index to update")
    lexical.replaced([source], [lexical_row(c) for c in chunks], generation).save(local.lexical_dir)
    updated = time.perf_counter()
    return {"source": source, "generation": generation, "chunks": len(chunks),
            "store_write_and_publish_s": round(stored - started, 3), "bm25_load_s": round(loaded - stored, 2),
            "bm25_update_and_save_s": round(updated - loaded, 2), "load_average": load_average()}


def follow_figures(retriever: Any) -> dict[str, Any]:
    """What the retriever's last BM25 follow did, where this tree reports it (``Retriever.last_follow``).

    Kept apart so that the incremental follow of issue 16 item 2 is wired here and nowhere else.
    """
    if not hasattr(retriever, "last_follow"):
        return {"incremental": "incremental follow: not available in this tree"}
    follow = retriever.last_follow
    if follow is None:
        return {"incremental": "no follow recorded"}
    found = dataclasses.asdict(follow) if dataclasses.is_dataclass(follow) else dict(follow)
    return {key: found.get(key) for key in ("mode", "chunks_fetched", "seconds", "reason")}


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50": round(ms[len(ms) // 2], 2), "p95": round(ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], 2)}


def instance_child(url: str, data_dir: Path, queries: int, answers: int, query_seed: int, follow: bool) -> None:
    """In the child: one app-like instance. Prints a JSON line when measured, and another after following."""
    from assistant.engine import Engine
    from assistant.retrieval import Retriever
    from index.lexical import LexicalIndex
    from index.settings import Settings

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

    settings = Settings(data_dir=data_dir, sources_dir=data_dir / "sources", chroma_url=url)
    engine = Engine(settings)
    engine.embedder.query_embedder.encode(["warm up"])
    opened = rss_mib()
    saved = LexicalIndex.saved_generation(settings.lexical_dir)
    published = engine.store.published_generation()
    started = time.perf_counter()
    lexical = engine.retriever.lexical()
    bm25_s = time.perf_counter() - started
    with_bm25 = rss_mib()
    questions = corpus.queries(query_seed, queries)
    dense = Retriever(settings, engine.store, engine.embedder.query_embedder, mode="dense")
    times: dict[str, list[float]] = {"hybrid": [], "dense": []}
    for name, retriever in (("hybrid", engine.retriever), ("dense", dense)):
        retriever.retrieve(questions[0])  # the server loads its HNSW index on the first query
        for question in questions:
            began = time.perf_counter()
            retriever.retrieve(question)
            times[name].append(time.perf_counter() - began)
    extractive = engine.answerer("extractive")
    for question in questions[:answers]:
        engine.pipeline.ask(extractive, question)
    emit({"chunks": len(lexical) if lexical else 0, "generation": published,
          "bm25": "loaded from this data dir" if saved == published else "rebuilt from the server's chunks",
          "bm25_s": round(bm25_s, 2), "rss_opened_mib": opened["VmRSS"], "rss_with_bm25_mib": with_bm25["VmRSS"],
          **{name: _percentiles(samples) for name, samples in times.items()}, "answered": answers,
          "rss_mib": rss_mib(), "load_average": load_average()})
    if not follow:
        return
    sys.stdin.readline()  # the parent has edited a source and published the next generation
    time.sleep(settings.lexical_check_s)  # an instance asks the server at most this often
    before = rss_mib()
    started = time.perf_counter()
    followed = engine.retriever.lexical()
    follow_s = time.perf_counter() - started
    generation = engine.store.published_generation()
    hits = followed.search(f"{EDIT_WORD}{generation}", 20) if followed else []
    emit({"follow_s": round(follow_s, 2), "generation": followed.generation if followed else None,
          "edited_chunks_found": len(hits), "rss_before_mib": before, "rss_after_mib": rss_mib(),
          **follow_figures(engine.retriever), "load_average": load_average()})


def _read_record(child: subprocess.Popen[str], stdout: IO[str]) -> dict[str, Any]:
    for line in stdout:
        if line.startswith("{"):
            return json.loads(line)
    child.wait()
    raise RuntimeError(f"the instance exited ({child.returncode}) without reporting; see its log")


def measure(folder: Path, work: Path, identity: Any, queries: int, answers: int, query_seed: int) -> dict[str, Any]:
    """Server-mode figures over ``folder``'s persisted Chroma: the instance runs described above."""
    import shutil

    work.mkdir(parents=True, exist_ok=True)
    instance_dir = work / "instance"
    shutil.rmtree(instance_dir, ignore_errors=True)  # a first start begins with no BM25 index
    figures: dict[str, Any] = {}
    with chroma_server(bench_settings(folder).chroma_dir, work / "chroma-server.log") as (url, pid):
        figures["server_rss_started_mib"] = tree_rss_mib(pid)

        def instance(follow: bool) -> subprocess.Popen[str]:
            command = [sys.executable, __file__, "--instance", url, str(instance_dir), "--queries", str(queries),
                       "--answers", str(answers), "--query-seed", str(query_seed), *(["--follow"] if follow else [])]
            log = (work / "instance.log").open("a")
            return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                    env=os.environ.copy())

        print(f"server mode: first start of an instance (load {load_average()})", flush=True)
        first = instance(follow=False)
        assert first.stdout is not None
        figures["first_start"] = _read_record(first, first.stdout)
        first.wait()
        figures["server_rss_after_first_mib"] = tree_rss_mib(pid)
        print(json.dumps(figures["first_start"]), flush=True)

        print(f"server mode: restart with BM25 saved, then follow an edit (load {load_average()})", flush=True)
        second = instance(follow=True)
        assert second.stdout is not None and second.stdin is not None
        figures["restart"] = _read_record(second, second.stdout)
        print(json.dumps(figures["restart"]), flush=True)
        figures["edit"] = edit_one_source(folder, url, identity)
        second.stdin.write("edited\n")
        second.stdin.flush()
        figures["follow"] = _read_record(second, second.stdout)
        second.wait()
        figures["server_rss_end_mib"] = tree_rss_mib(pid)
    print(json.dumps({key: figures[key] for key in ("edit", "follow")}), flush=True)
    figures["load_average"] = load_average()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", nargs=2, metavar=("URL", "DATA_DIR"), required=True)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--query-seed", type=int, default=11)
    parser.add_argument("--follow", action="store_true")
    args = parser.parse_args()
    instance_child(args.instance[0], Path(args.instance[1]), args.queries, args.answers, args.query_seed, args.follow)


if __name__ == "__main__":
    main()
