"""BEIR retrieval sets: index the corpus into a collection of its own, then score retrieval only.

The corpus is chunked, embedded and stored by the sources' own ``Indexer`` with their settings
(``Indexer.index_documents``), each document named by its BEIR id, so a chunk maps back to its
document through ``chunk.source``. The
built index is cached (default ``<data_dir>/beir/<name>``) and reused while the corpus file,
the embedding model and the chunker are unchanged.

Scoring: each query is retrieved in three modes (hybrid, dense only, BM25 only); chunks are
folded into documents by their best score, and nDCG@10, recall@10, MRR@10 and hit@10 are
computed against the qrels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.retrieval import Retriever
from evals import metrics as m
from evals.cases import BeirSet
from evals.metrics import BEIR_METRICS, MODE_LABELS, MODES
from evals.runner import save_results
from index.indexer import Indexer, index_identity
from index.lexical import LexicalIndex
from index.loaders import SourceDocument
from index.store import ChunkStore, make_client

CHUNK_DEPTH = 100
"""Chunks retrieved per query (then folded into documents)."""
MARKER = "beir-index.json"

ProgressCallback = Callable[[str, int, int], None]


def collection_name(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-._") or "set"
    return f"beir-{slug}"[:60]


def beir_settings(base: Any, beir: BeirSet, cache_dir: Path | None = None) -> Any:
    """The settings for a BEIR set's own index: same models and chunker, its own data dir and collection.

    Without sentence vectors: a BEIR run scores retrieval only, and nothing reads them (on SciFact they
    doubled the embedding work and filled the manifest with 189 MB)."""
    cache_dir = cache_dir or Path(base.data_dir) / "beir" / beir.name
    return base.model_copy(update={
        "data_dir": Path(cache_dir), "sources_dir": Path(cache_dir) / "sources",
        "collection": collection_name(beir.name), "sentence_vectors": False,
    })


def corpus_fingerprint(beir: BeirSet) -> str:
    digest = hashlib.sha256()
    with (beir.folder / "corpus.jsonl").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_or_build(beir: BeirSet, settings: Any, embedder: Any, progress: ProgressCallback | None = None,
                  rebuild: bool = False) -> tuple[Any, dict[str, Any]]:
    """The set's ChunkStore, built if the cache is missing or stale; and what was done."""
    identity = index_identity(settings, embedder)
    fingerprint = corpus_fingerprint(beir)
    marker_path = Path(settings.data_dir) / MARKER
    wanted = {"corpus_sha256": fingerprint, "embedding_model": identity.embedding_model,
              "dimension": identity.dimension, "chunker": identity.chunker, "schema": identity.schema,
              "collection": settings.collection}
    if not rebuild and marker_path.exists():
        try:
            marker = json.loads(marker_path.read_text())
            if all(marker.get(k) == v for k, v in wanted.items()):
                store = ChunkStore(make_client(settings), settings.collection, identity)
                if store.count() == marker.get("chunks") and LexicalIndex.saved_generation(settings.lexical_dir):
                    return store, {**marker, "cached": True, "build_s": marker.get("build_s")}
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass

    started = time.perf_counter()
    marker_path.unlink(missing_ok=True)
    documents = [SourceDocument(path=doc.id, text=doc.text or doc.title, title=doc.title)
                 for doc in beir.corpus if doc.text or doc.title]
    built = Indexer(settings, embedder).index_documents(documents, rebuild=True, progress=_build_stages(progress))
    store = ChunkStore(make_client(settings), settings.collection, identity)
    info = {**wanted, "documents": len(beir.corpus), "chunks": built.chunks_total,
            "build_s": round(time.perf_counter() - started, 1),
            "built": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
    marker_path.write_text(json.dumps(info, indent=2) + "\n")
    return store, {**info, "cached": False}


def _build_stages(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` with the Indexer's stages ('files', 'chunks') named as a BEIR build shows them."""
    if progress is None:
        return None
    names = {"files": "chunking", "chunks": "embedding"}
    return lambda stage, done, total: progress(names.get(stage, stage), done, total)


def score_query(doc_ranking: Sequence[str], qrels: dict[str, int]) -> dict[str, float]:
    relevant = {d for d, s in qrels.items() if s > 0}
    return {
        "ndcg@10": m.ndcg_at_k(doc_ranking, {d: float(s) for d, s in qrels.items()}, 10),
        "recall@10": m.recall_at_k(doc_ranking, relevant, 10),
        "mrr@10": m.reciprocal_rank(doc_ranking, relevant, 10),
        "hit@10": m.hit_at_k(doc_ranking, relevant, 10),
        "recall@20": m.recall_at_k(doc_ranking, relevant, 20),
    }


def run_beir(beir: BeirSet, base_settings: Any, embedder: Any, out_dir: Path, *,
             modes: Sequence[str] = MODES, limit: int | None = None, cache_dir: Path | None = None,
             progress: ProgressCallback | None = None, rebuild: bool = False,
             write_report: bool = True) -> dict[str, Any]:
    """Index (or reuse) the corpus, retrieve every query in every mode, write the results."""
    started = time.perf_counter()
    settings = beir_settings(base_settings, beir, cache_dir)
    store, index_info = open_or_build(beir, settings, embedder, progress, rebuild=rebuild)
    titles = {d.id: d.title for d in beir.corpus}
    query_ids = list(beir.queries)[:limit] if limit else list(beir.queries)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "kind": "beir", "set": str(beir.folder), "name": beir.name, "split": beir.split,
        "cases": len(query_ids), "documents": len(beir.corpus), "index": index_info,
        "chunk_depth": CHUNK_DEPTH, "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "settings": {"embedding_model": settings.embedding_model, "chunk_tokens": settings.chunk_tokens,
                     "chunk_overlap": settings.chunk_overlap, "rrf_k": settings.rrf_k,
                     "candidates": settings.candidates, "reranker_model": settings.reranker_model,
                     "data_dir": str(settings.data_dir), "collection": settings.collection},
        "runs": {},
    }
    rows: list[dict[str, Any]] = []
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as out:
        for mode in modes:
            retriever = Retriever(settings, store, embedder, mode=mode)
            mode_rows = []
            mode_started = time.perf_counter()
            for done, qid in enumerate(query_ids, start=1):
                query = beir.queries[qid]
                result = retriever.retrieve(query, k=CHUNK_DEPTH, use_mmr=False)
                ranking = m.doc_ranking((p.chunk.source, p.score) for p in result.passages)
                scores = score_query(ranking, beir.qrels[qid])
                row = {"id": qid, "mode": mode, "question": query, "relevant": beir.qrels[qid],
                       "relevant_titles": {d: titles.get(d, "") for d in beir.qrels[qid]},
                       "ranking": ranking[:10], "ranking_titles": [titles.get(d, "") for d in ranking[:3]],
                       "scores": scores, "seconds": round(result.seconds, 5)}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                mode_rows.append(row)
                if progress:
                    progress(MODE_LABELS.get(mode, mode), done, len(query_ids))
            seconds = [r["seconds"] for r in mode_rows]
            summary["runs"][mode] = {
                "metrics": {k: m.mean(r["scores"][k] for r in mode_rows) for k in BEIR_METRICS},
                "latency": {"retrieval_s": {"p50": m.percentile(seconds, 50), "p95": m.percentile(seconds, 95),
                                            "mean": m.mean(seconds), "n": len(seconds)}},
                "cases": len(mode_rows), "wall_s": round(time.perf_counter() - mode_started, 2),
            }
            rows.extend(mode_rows)
    return save_results(out_dir, summary, rows, started=started, write_report=write_report)
