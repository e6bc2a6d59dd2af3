"""Indexing benchmark: our pipeline's chunks/s beside raw SentenceTransformer.encode on the same
chunks in the same run, and the time of a no-change reindex.

    python benchmarks/bench_indexing.py [--copies N]

The corpus is the default sources/ copied N times under new names (so every copy is embedded).
Figures are ratios taken in one run, so a busy machine skews both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()

    from index.chunking import chunk_document
    from index.embedding import Embedder
    from index.indexer import Indexer, chunker_config
    from index.loaders import load
    from index.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="chokepoint-bench-"))
    sources = work / "sources"
    for copy in range(args.copies):
        for note in sorted((ROOT / "sources").glob("*.md")):
            if note.name != "README.md":
                target = sources / f"copy{copy}" / note.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(note, target)
    settings = Settings(data_dir=work / "data", sources_dir=sources)
    embedder = Embedder(batch_size=settings.embedding_batch_size)
    embedder.encode(["warm up"])

    started = time.perf_counter()
    report = Indexer(settings, embedder).run()
    index_s = time.perf_counter() - started
    assert report.ok, report.failed

    chunks = []
    for path in sorted(sources.rglob("*.md")):
        chunks += chunk_document(load(path), chunker_config(settings))
    texts = [c.embedding_text for c in chunks]
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True)
    encode_s = time.perf_counter() - started

    started = time.perf_counter()
    again = Indexer(settings, embedder).run()
    noop_s = time.perf_counter() - started
    assert again.chunks_written == 0

    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "files": len(report.added), "chunks": report.chunks_written,
        "index_chunks_per_s": round(report.chunks_written / index_s, 1),
        "raw_encode_chunks_per_s": round(len(texts) / encode_s, 1),
        "ratio_to_raw_encode": round((report.chunks_written / index_s) / (len(texts) / encode_s), 3),
        "no_change_reindex_s": round(noop_s, 3),
    }
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "indexing.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
