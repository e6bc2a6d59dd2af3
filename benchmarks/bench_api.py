"""API benchmark: the extractive answer over HTTP from a real `chokepoint serve`, one client and four.

    python benchmarks/bench_api.py [--chunks 1000] [--questions 60] [--clients 4] [--out FILE]

The corpus is the default one (``sources/``, about 300 chunks); ``--chunks N`` adds generated documents on
the same subject (``benchmarks/corpus.py``) until the index holds about N chunks. The server indexes it
through POST /v1/index, then the official openai client asks the questions of ``evals/sets/default.jsonl``
(answerable and not) with the model ``chokepoint-extractive``, not streamed:
- one client, one question at a time: p50/p95 of the wall time of each request, HTTP included;
- ``--clients`` clients at once, sharing out the remaining questions (none asked before, so no cache of
  the first run helps): requests per second, and p50/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import corpus
from benchmarks.common import ROOT, load_average

TOKEN = "bench-token"
SEED = 23


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_sources(folder: Path, chunks: int) -> None:
    """The default sources, plus generated documents until they chunk into about ``chunks`` chunks."""
    from index.chunking import chunk_document
    from index.indexer import chunker_config
    from index.loaders import load
    from index.settings import Settings

    shutil.copytree(ROOT / "sources", folder)
    config = chunker_config(Settings(data_dir=folder.parent / "data", sources_dir=folder))
    count = sum(len(chunk_document(load(p), config)) for p in folder.rglob("*.md"))
    for doc in corpus.documents(SEED):
        if count >= chunks:
            break
        path = folder / "generated" / doc.name
        path.parent.mkdir(exist_ok=True)
        path.write_text(doc.markdown())
        count += len(chunk_document(load(path), config))


def start_server(folder: Path, port: int) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(folder / "data"), "CHOKEPOINT_SOURCES_DIR": str(folder / "sources"),
           "CHOKEPOINT_API_TOKEN": TOKEN, "CHOKEPOINT_CONFIG": str(folder / "none.toml")}
    server = subprocess.Popen([str(Path(sys.executable).with_name("chokepoint")), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("chokepoint serve did not start")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1), "n": len(ordered)}


def ask(client: Any, question: str) -> tuple[float, bool]:
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model="chokepoint-extractive", messages=[{"role": "user", "content": question}])
    seconds = time.perf_counter() - started
    return seconds, json.loads(raw.http_response.text)["citations"]["refused"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=0, help="grow the corpus to about this many chunks")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "api.json")
    args = parser.parse_args()

    import httpx
    import openai

    cases = [json.loads(line) for line in (ROOT / "evals/sets/default.jsonl").read_text().splitlines() if line.strip()]
    everything = [c["question"] for c in cases]
    questions, rest = everything[: args.questions], everything[args.questions:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_sources(folder / "sources", args.chunks)
        port = free_port()
        server = start_server(folder, port)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            report = httpx.post(f"{base}/index", headers=headers, timeout=3600).json()
            status = httpx.get(f"{base}/status", headers=headers, timeout=60).json()
            client = openai.OpenAI(base_url=base, api_key=TOKEN, max_retries=0, timeout=300)
            for question in questions[:3]:
                ask(client, question)  # warm-up: first-use caches

            print(f"{status['chunks']} chunks; one client, {len(questions)} questions ...", flush=True)
            single = [ask(client, q) for q in questions]

            print(f"{args.clients} clients ...", flush=True)
            loaded: list[float] = []
            lock = threading.Lock()

            def run_client(share: list[str]) -> None:
                own = openai.OpenAI(base_url=base, api_key=TOKEN, max_retries=0, timeout=300)
                for question in share:
                    seconds, _ = ask(own, question)
                    with lock:
                        loaded.append(seconds)

            threads = [threading.Thread(target=run_client, args=(rest[n :: args.clients],))
                       for n in range(args.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "chunks": status["chunks"], "sources": status["sources"], "index_s": report.get("seconds"),
        "one_client": percentiles([s for s, _ in single]),
        "one_client_answered": percentiles([s for s, refused in single if not refused]),
        "one_client_refused": percentiles([s for s, refused in single if refused]),
        "clients": args.clients, "requests": len(loaded), "requests_per_s": round(len(loaded) / wall, 2),
        "under_load": percentiles(loaded),
        "machine": f"{os.cpu_count()} cores", "load_average_after": load_average(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
