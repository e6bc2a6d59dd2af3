"""A fork server for the crash tests: real indexing processes to kill -9, without the imports.

Importing torch, sentence-transformers and Chroma takes seconds on a slow machine; a test that
kills twenty indexing processes would spend most of its time there. This process imports them
once (and runs nothing: no model, no client, no threads), then forks one child per request.
Each child is a real, separate indexing process with its own model and Chroma client.

Protocol: one JSON object per line on stdin, ``{"job": "index" | "inspect", "settings": {...},
"out": "result.json", "vectors": "optional.npz", "inspect": true}``; the answer is ``{"pid": N}``
on stdout. The child writes its result to ``out`` (atomically) and exits; the kernel reaps it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any


def _inspect(settings: Any, embedder: Any, vectors_path: str | None) -> dict[str, Any]:
    """Everything the crash tests compare between a repaired index and a clean build."""
    import numpy as np

    from index.indexer import index_identity
    from index.lexical import LexicalIndex
    from index.manifest import Manifest
    from index.store import ChunkStore, make_client

    store = ChunkStore(make_client(settings), settings.collection, index_identity(settings, embedder))
    ids = [chunk.id for chunk in store.all_chunks()]
    manifest = Manifest(settings.manifest_path)
    try:
        files = manifest.files()
        generation = manifest.generation()
    finally:
        manifest.close()
    lexical = LexicalIndex.load(settings.lexical_dir)
    if vectors_path:
        chunks, rows = store.records(sorted(ids))
        kept = [chunk.id for chunk in chunks]
        np.savez(vectors_path, ids=np.array(kept), vectors=rows)
    return {
        "ids": sorted(ids),
        "count": store.count(),
        "pending": sorted(path for path, record in files.items() if record.state != "done"),
        "manifest_chunks": sum(record.chunks for record in files.values()),
        "generation": generation,
        "published": store.published_generation(),
        "bm25_generation": lexical.generation if lexical else None,
        "bm25_ids": sorted(lexical.ids) if lexical else None,
    }


def _child(request: dict[str, Any]) -> dict[str, Any]:
    from index.indexer import Indexer
    from index.remote_embedding import make_embedder
    from index.settings import Settings

    settings = Settings(**request["settings"])
    embedder = make_embedder(settings)
    result: dict[str, Any] = {}
    if request["job"] == "index":
        # Load the model before the run takes the data dir's lock, so that a test timing its
        # kill points from the lock puts them in the run's own work.
        embedder.encode(["warm up"])
        report = Indexer(settings, embedder).run()
        result["report"] = {"ok": report.ok, "failed": [f.reason for f in report.failed],
                            "repaired": report.repaired, "chunks_written": report.chunks_written,
                            "seconds": report.seconds}
    if request.get("inspect", True):
        result["state"] = _inspect(settings, embedder, request.get("vectors"))
    return result


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb  # noqa: F401 - imported here so that every child inherits it
    import sentence_transformers  # noqa: F401

    import index.indexer  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited children are reaped by the kernel
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            out = Path(request["out"])
            try:
                result = _child(request)
            except BaseException:
                result, code = {"error": traceback.format_exc()}, 1
            staging = out.with_suffix(".tmp")
            staging.write_text(json.dumps(result))
            os.replace(staging, out)
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
