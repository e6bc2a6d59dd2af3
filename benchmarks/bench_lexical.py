"""BM25 benchmark: what a reindex of one changed file costs the BM25 index, and what queries cost.

    python benchmarks/bench_lexical.py [--size 100000] [--changes 5] [--queries 100]

No model is needed: BM25 works on tokens. ``--size`` generated chunks of one to three sentences
(the same text as the query benchmark's 100k corpus, ten chunks to a source) go into a real
manifest, as the indexer writes them. Then, in one run:
- the full build the indexer used to do after every change: read every chunk's tokens from the
  manifest, build, save (still what ``index --rebuild`` and a first index do);
- ``--changes`` times, one source rewritten: the indexer's update (load the saved index, delete
  the source's rows, add its new rows as a segment, save), and a reader's reload of the new
  generation, reusing the segments it holds, beside a cold load;
- BM25 search p50/p95 over ``--queries`` questions on the rebuilt index and on the updated one,
  and on the updated one with a publisher filter; and whether the two rank every
  question the same.
Figures go to ``benchmarks/out/lexical.json``; BENCHMARKS.md explains them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import corpus
from benchmarks.bench_query import QUERY_SEED, short_chunks
from benchmarks.common import ROOT, load_average


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered) * 1000, 2),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2)}


def _commit(manifest: Any, rows_by_source: dict[str, list[Any]]) -> None:
    from index.manifest import FileRecord

    records = [FileRecord(source, 1, 1, hashlib.sha256(source.encode()).hexdigest(), len(rows), "done", "")
               for source, rows in rows_by_source.items()]
    manifest.mark_pending(rows_by_source)
    manifest.forget(rows_by_source)
    manifest.commit_files(records, [row for rows in rows_by_source.values() for row in rows])


def run(size: int, changes: int, questions: list[str]) -> dict[str, Any]:
    from index.chunk import Chunk
    from index.chunking import chunk_id
    from index.filters import Filters
    from index.lexical import LexicalIndex, lexical_row
    from index.manifest import Manifest

    started = time.perf_counter()
    chunks = short_chunks(size)
    by_source: dict[str, list[Any]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source, []).append(lexical_row(chunk))
    print(f"{len(chunks)} chunks in {len(by_source)} sources tokenized, {time.perf_counter() - started:.1f} s",
          flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-lexical-"))
    manifest = Manifest(work / "manifest.sqlite3")
    _commit(manifest, by_source)
    root = work / "bm25"

    t0 = time.perf_counter()
    rows = list(manifest.lexical_rows())
    t1 = time.perf_counter()
    full = LexicalIndex.build(rows, manifest.generation())
    t2 = time.perf_counter()
    full.save(root)
    t3 = time.perf_counter()
    rebuild = {"read_tokens_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2), "save_s": round(t3 - t2, 2),
               "total_s": round(t3 - t0, 2)}
    print(f"full build: {rebuild}", flush=True)

    rng = random.Random(3)
    update_s, reload_s, cold_s = [], [], []
    reader = LexicalIndex.load(root)
    for n in range(changes):
        source = rng.choice(sorted(by_source))
        rewritten = []
        for ordinal, old in enumerate(by_source[source]):
            text = corpus.paragraph(rng, rng.randint(1, 3)) + f" Revision {n}."
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            rewritten.append(lexical_row(Chunk(
                id=chunk_id(source, ordinal, digest), source=source, ordinal=ordinal, text=text, start=0,
                end=len(text), title="Revised", heading="", publisher=old.filters["publisher"], date="2024-01-01",
                topics=tuple(old.filters["topics"]), content_hash=digest,
            )))
        by_source[source] = rewritten
        _commit(manifest, {source: rewritten})
        generation = manifest.generation()
        t0 = time.perf_counter()
        previous = LexicalIndex.load(root)
        assert previous is not None
        updated = previous.replaced([source], manifest.lexical_rows([source]), generation)
        updated.save(root)
        t1 = time.perf_counter()
        reader = LexicalIndex.load(root, reuse=reader)
        t2 = time.perf_counter()
        LexicalIndex.load(root)
        t3 = time.perf_counter()
        assert reader is not None and len(reader) == manifest.lexical_count()
        update_s.append(t1 - t0)
        reload_s.append(t2 - t1)
        cold_s.append(t3 - t2)
        print(f"change {n + 1}: update {t1 - t0:.2f} s, reader reload {t2 - t1:.2f} s, cold load {t3 - t2:.2f} s, "
              f"{len(reader.segments)} segments", flush=True)

    assert reader is not None
    rebuilt = LexicalIndex.build(manifest.lexical_rows(), reader.generation)
    same = all(reader.search(q, 50) == rebuilt.search(q, 50) for q in questions)
    publisher = Filters(publishers=(rows[0].filters["publisher"],))
    same = same and all(reader.search(q, 50, publisher) == rebuilt.search(q, 50, publisher) for q in questions)
    search = {}
    for label, index, filters in (("rebuilt", rebuilt, None), ("updated", reader, None),
                                  ("updated, one publisher", reader, publisher)):
        timings = []
        for question in questions:
            t0 = time.perf_counter()
            index.search(question, 50, filters)
            timings.append(time.perf_counter() - t0)
        search[label] = _ms(timings)
    manifest.close()
    return {
        "chunks": len(chunks), "sources": len(by_source), "changes": changes, "queries": len(questions),
        "full_rebuild": rebuild,
        "update_one_source_s": {"median": round(statistics.median(update_s), 3),
                                "max": round(max(update_s), 3)},
        "reader_reload_s": {"median": round(statistics.median(reload_s), 3),
                            "cold_load_median": round(statistics.median(cold_s), 3)},
        "segments_after": len(reader.segments),
        "search_ms": search,
        "updated_ranks_as_rebuilt": same,
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    result = run(args.size, args.changes, corpus.queries(QUERY_SEED, args.queries))
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lexical.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
