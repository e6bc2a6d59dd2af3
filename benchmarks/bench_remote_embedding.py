"""Indexing throughput through an embeddings endpoint, against encoding here.

An OpenAI-compatible ``/v1/embeddings`` server (benchmarks/embedding_server.py: FastAPI over the
packaged MiniLM) runs in this process, and ``RemoteEmbedder`` sends it the chunk texts of a generated
corpus with 1, 2 and 4 batches in flight. On one machine the server shares the client's cores, so the
figure is the client's overhead (HTTP, JSON, threads) against local encoding, not the scaling a remote
GPU gives; run it with the server elsewhere (``--url``) for that.

    python benchmarks/bench_remote_embedding.py --texts 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import corpus
from benchmarks.common import ROOT, load_average
from benchmarks.embedding_server import embedding_server
from index.embedding import Embedder
from index.remote_embedding import RemoteEmbedder


def chunk_texts(count: int, seed: int = 7) -> list[str]:
    """Paragraph-sized texts in the shape of the corpus chunks (4-8 sentences each)."""
    rng = random.Random(seed)
    return [corpus.paragraph(rng, rng.randint(4, 8)) for _ in range(count)]


def rate(encode: Callable[[list[str]], np.ndarray], texts: list[str], repeats: int) -> tuple[float, list[float]]:
    """Median texts/s over ``repeats`` timed runs (after one untimed run that loads and warms)."""
    encode(texts[:64])
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        encode(texts)
        seconds.append(time.perf_counter() - started)
    return len(texts) / statistics.median(seconds), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--url", help="an embeddings server elsewhere (default: one started here)")
    args = parser.parse_args()
    texts = chunk_texts(args.texts)
    local = Embedder(batch_size=args.batch)
    results: dict[str, object] = {"texts": len(texts), "batch": args.batch, "load_before": load_average()}
    local_rate, local_s = rate(local.encode, texts, args.repeats)
    results["local"] = {"texts_per_s": round(local_rate, 1), "seconds": [round(s, 2) for s in local_s]}
    print(f"local encoding: {local_rate:.1f} texts/s")

    def remote_runs(url: str) -> None:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            remote = RemoteEmbedder(url, batch_size=args.batch, concurrency=concurrency)
            remote_rate, remote_s = rate(remote.encode, texts, args.repeats)
            remote.close()
            results[f"remote_{concurrency}"] = {"texts_per_s": round(remote_rate, 1),
                                                "seconds": [round(s, 2) for s in remote_s],
                                                "of_local": round(remote_rate / local_rate, 3)}
            print(f"endpoint, {concurrency} in flight: {remote_rate:.1f} texts/s "
                  f"({remote_rate / local_rate:.0%} of local)")

    if args.url:
        remote_runs(args.url)
    else:
        with embedding_server(local) as (url, _):
            remote_runs(url)
    results["load_after"] = load_average()
    out = ROOT / "benchmarks" / "out" / "remote-embedding.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
