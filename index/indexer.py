"""Bring the index in line with the files on disk: add, update, remove, repair.

The steps, in order, for one run (``Indexer.run``):

1. take the data dir's lock (one indexer at a time);
2. repair: files journaled ``pending`` by a killed run lose their chunks and are redone;
3. remove: files that left disk lose their chunks (no stale vectors);
4. for every file whose content hash changed: load, chunk, embed (batched across files),
   delete old chunks, write new ones, then mark the file done;
5. publish the new index generation in the store's metadata, with the sources this run changed
   and removed (other app instances sharing a Chroma server poll it and follow), then update the
   BM25 index if anything changed.

``Indexer.index_documents`` takes documents that are no files (a BEIR corpus) through the same
steps, step 3 aside: what is not given is kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from index.chunk import Chunk
from index.chunking import ChunkerConfig, chunk_document
from index.discovery import discover, is_under
from index.embedding import TextEmbedder
from index.index_report import FileFailure, IndexReport
from index.lexical import LexicalIndex, lexical_row
from index.lexical_follow import follow
from index.loaders import SUPPORTED_SUFFIXES, LoadError, SourceDocument, load
from index.manifest import FileRecord, Manifest, SentenceVector
from index.sentences import sentences
from index.settings import Settings
from index.store import ChunkStore, IndexIdentity, is_damaged_vector_index, make_client, now_iso

log = logging.getLogger(__name__)


def chunker_config(settings: Settings) -> ChunkerConfig:
    return ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap)


def index_identity(settings: Settings, embedder: TextEmbedder) -> IndexIdentity:
    """What an index built with these settings records about itself.

    The model is the one the embedder names: an embeddings server reports its own, which may not be
    the name the settings sent it.
    """
    return IndexIdentity(
        embedding_model=embedder.name,
        dimension=embedder.dimension,
        chunker=chunker_config(settings).signature(),
    )


class IndexLockedError(RuntimeError):
    """Another indexer holds the data dir."""


ProgressHook = Callable[[str, int, int], None]
"""Called as (stage, done, total) while indexing; stage is 'files' or 'chunks'."""


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive lock on the data dir, released by the OS if the process dies."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "index.lock", "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLockedError(
                f"Another indexer ({holder}) is already running on {data_dir}; wait for it to finish."
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def document_sha256(document: SourceDocument) -> str:
    """The content hash of a document given as such: its text and every field of metadata."""
    return hashlib.sha256(json.dumps(asdict(document), sort_keys=True).encode("utf-8")).hexdigest()


_Write = Callable[[ChunkStore, Manifest, IndexReport], None]
"""What one run changes, given the store, the manifest and the report to fill in."""


@dataclass(frozen=True)
class _Candidate:
    """A source to (re)index, with what its manifest record will say about it."""

    name: str
    size: int
    mtime_ns: int
    sha256: str


class Indexer:
    """Owns the store, manifest and lexical index of one data dir for an indexing run."""

    def __init__(self, settings: Settings, embedder: TextEmbedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.chunker = chunker_config(settings)
        self.identity = index_identity(settings, embedder)

    def run(self, paths: list[Path] | None = None, *, rebuild: bool = False,
            progress: ProgressHook | None = None) -> IndexReport:
        """Bring the index in step with the sources (all of them, or ``paths``); see the module doc.

        An embedded index whose vector files a crash left unreadable is rebuilt from the sources
        (every chunk embedded again) instead of failing every run until someone types ``--rebuild``.
        """
        roots = paths or [self.settings.sources_dir]
        try:
            return self._run(partial(self._sync, roots=roots, progress=progress), rebuild=rebuild)
        except Exception as exc:
            # On a shared server the same damage calls for its operator: a rebuild would drop
            # every instance's chunks, so there the error stands (and says to rebuild).
            if rebuild or self.settings.chroma_url or not is_damaged_vector_index(exc):
                raise
            detail = " ".join(str(exc).split())
            start = max(0, detail.lower().find("error deserializing"))
            reason = f"Chroma could not read its vector files ({detail[start:][-160:]})"
            log.warning("The index under %s is damaged: %s. Rebuilding it from the sources.",
                        self.settings.chroma_dir, reason)
            sync = partial(self._sync, roots=[self.settings.sources_dir], progress=progress)
            report = self._run(sync, rebuild=True)
            report.rebuilt_because = reason
            return report

    def index_documents(self, documents: Iterable[SourceDocument], *, rebuild: bool = False,
                        progress: ProgressHook | None = None) -> IndexReport:
        """Add or update documents that are no files on disk, each named by its ``path``.

        The write path of ``run``: chunked, embedded, stored, recorded in the manifest and in BM25;
        a document whose content hash is unchanged is skipped, and no document is removed.
        """
        given = {document.path: document for document in documents}
        return self._run(partial(self._add_documents, documents=given, progress=progress), rebuild=rebuild)

    def _run(self, write: _Write, *, rebuild: bool) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport()
        with data_dir_lock(self.settings.data_dir):
            client = make_client(self.settings)
            manifest = Manifest(self.settings.manifest_path)
            try:
                if rebuild:
                    store = ChunkStore.reset(client, self.settings.collection, self.identity)
                    manifest.clear()
                else:
                    store = ChunkStore(client, self.settings.collection, self.identity)
                before = manifest.generation()
                # A run killed after writing and before publishing left changes that no report lists.
                unpublished = before != 0 and manifest.get_meta("published_generation") != str(before)
                write(store, manifest, report)
                self._backfill_sentence_vectors(store, manifest)
                generation = manifest.generation()
                # Published only now that every chunk of the run is stored, so an instance that
                # sees this generation and fetches the listed sources (or every chunk) from the
                # store finds them all. A run killed before this line publishes on the next run.
                if manifest.get_meta("published_generation") != str(generation):
                    store.publish_generation(
                        generation, [*report.added, *report.updated],
                        [*report.removed, *report.repaired],
                        everything=rebuild or unpublished, log_keep=self.settings.lexical_log_keep)
                    manifest.set_meta("published_generation", str(generation))
                saved = LexicalIndex.saved_generation(self.settings.lexical_dir)
                if report.changed or rebuild or saved != generation:
                    incremental = not rebuild and saved == before
                    lexical = self._lexical_index(store, manifest, generation, report if incremental else None)
                    lexical.save(self.settings.lexical_dir)
                manifest.set_meta("last_indexed", now_iso())
                report.chunks_total = store.count()
            finally:
                manifest.close()
        report.seconds = time.perf_counter() - started
        return report

    def _lexical_index(self, store: ChunkStore, manifest: Manifest, generation: int,
                       changes: IndexReport | None) -> LexicalIndex:
        """The BM25 index for ``generation``: the saved one updated with ``changes`` where it can be."""
        if self.settings.chroma_url:
            # A shared server may hold chunks that other data dirs indexed; only it knows them all.
            # It follows the server like any instance: this run's sources, or all chunks if it must.
            return follow(store, self.settings.lexical_dir, None, generation)[0]
        if changes is not None and (previous := LexicalIndex.load(self.settings.lexical_dir)) is not None:
            touched = [*changes.added, *changes.updated, *changes.removed, *changes.repaired]
            updated = previous.replaced(touched, manifest.lexical_rows(touched), generation)
            expected = manifest.lexical_count()
            if len(updated) == expected:
                return updated
            log.warning("The saved BM25 index did not match the manifest (%d vs %d chunks): rebuilding it.",
                        len(updated), expected)
        return LexicalIndex.build(manifest.lexical_rows(), generation)

    def _repair(self, store: ChunkStore, manifest: Manifest, report: IndexReport) -> dict[str, FileRecord]:
        """Drop the chunks of sources journaled ``pending`` by a killed run; the manifest's records after."""
        known = manifest.files()
        pending = [path for path, record in known.items() if record.state == "pending"]
        if pending:
            store.delete_sources(pending)
            manifest.forget(pending)
            report.repaired.extend(pending)
            known = manifest.files()
        return known

    def _add_documents(self, store: ChunkStore, manifest: Manifest, report: IndexReport, *,
                       documents: dict[str, SourceDocument], progress: ProgressHook | None) -> None:
        known = self._repair(store, manifest, report)
        changed: list[_Candidate] = []
        for name, document in documents.items():
            sha = document_sha256(document)
            record = known.get(name)
            if record and record.state == "done" and record.sha256 == sha:
                report.unchanged += 1
            else:
                changed.append(_Candidate(name, len(document.text.encode("utf-8")), 0, sha))
        self._index_changed(store, manifest, changed, lambda candidate: documents[candidate.name], known,
                            report, progress)

    def _sync(self, store: ChunkStore, manifest: Manifest, report: IndexReport, *, roots: list[Path],
              progress: ProgressHook | None) -> None:
        known = self._repair(store, manifest, report)

        labels = manifest.external_labels()
        found = discover(roots, self.settings.sources_dir,
                         follow_external_links=self.settings.follow_external_links, external_labels=labels)
        for label, folder in found.new_labels.items():
            manifest.set_external_label(label, folder)
        labels.update(found.new_labels)
        report.skipped, report.links = found.unsupported, found.links
        names = found.files
        # Names that are absolute paths come from before sources outside the folder were named
        # external/...: they go, and come back under their new name when their folder is indexed.
        gone = [
            path for path in known
            if path not in names
            and (path.startswith("/") or any(is_under(path, root, labels) for root in found.scanned))
        ]
        if gone:
            store.delete_sources(gone)
            manifest.forget(gone)
            report.removed.extend(gone)

        changed: list[_Candidate] = []
        for done, (name, path) in enumerate(names.items(), start=1):
            try:
                stat = path.stat()
                record = known.get(name)
                same_stat = record and record.size == stat.st_size and record.mtime_ns == stat.st_mtime_ns
                if same_stat and record.state == "done":
                    report.unchanged += 1  # same size and mtime: trust it, skip the hash
                    continue
                sha = file_sha256(path)
            except OSError as exc:
                report.failed.append(FileFailure(name, f"{name}: cannot read the file ({exc.strerror})"))
                continue
            if record and record.state == "done" and record.sha256 == sha:
                manifest.touch(name, stat.st_size, stat.st_mtime_ns)
                report.unchanged += 1
            else:
                changed.append(_Candidate(name, stat.st_size, stat.st_mtime_ns, sha))
            if progress:
                progress("scan", done, len(names))

        max_bytes = int(self.settings.max_file_mb * 1e6)

        def read(candidate: _Candidate) -> SourceDocument:
            return load(names[candidate.name], display_path=candidate.name, max_bytes=max_bytes)

        self._index_changed(store, manifest, changed, read, known, report, progress)

    def _index_changed(self, store: ChunkStore, manifest: Manifest, changed: list[_Candidate],
                       read: Callable[[_Candidate], SourceDocument], known: dict[str, FileRecord],
                       report: IndexReport, progress: ProgressHook | None) -> None:
        """Chunk, embed and write ``changed`` (``read`` gives each one's document or raises LoadError)."""
        fits = self._fits_embedder
        batch: list[tuple[_Candidate, list[Chunk]]] = []
        batch_chunks = 0
        failed_known: list[str] = []
        for done, candidate in enumerate(changed, start=1):
            try:
                document = read(candidate)
                if len(document.text) > self.settings.max_text_chars:
                    raise LoadError(
                        f"{candidate.name}: {len(document.text) / 1e6:.1f} million characters of text, "
                        f"over the limit of {self.settings.max_text_chars / 1e6:.1f} million "
                        "(split the file, or raise CHOKEPOINT_MAX_TEXT_CHARS)"
                    )
                chunks = chunk_document(document, self.chunker, fits)
            except LoadError as exc:
                report.failed.append(FileFailure(candidate.name, str(exc)))
                if candidate.name in known:
                    failed_known.append(candidate.name)  # its old chunks no longer match the file
                continue
            batch.append((candidate, chunks))
            batch_chunks += len(chunks)
            if progress:
                progress("files", done, len(changed))
            if batch_chunks >= self.settings.index_batch_chunks:  # group files: fewer, fuller batches
                self._write_batch(store, manifest, batch, known, report, progress)
                batch, batch_chunks = [], 0
        if batch:
            self._write_batch(store, manifest, batch, known, report, progress)
        if failed_known:
            manifest.mark_pending(failed_known)
            store.delete_sources(failed_known)
            manifest.forget(failed_known)
            report.removed.extend(failed_known)

    def _write_batch(self, store: ChunkStore, manifest: Manifest, batch: list[tuple[_Candidate, list[Chunk]]],
                     known: dict[str, FileRecord], report: IndexReport, progress: ProgressHook | None) -> None:
        names = [candidate.name for candidate, _ in batch]
        chunks = [chunk for _, file_chunks in batch for chunk in file_chunks]
        vectors = self.embedder.encode([chunk.embedding_text for chunk in chunks])
        sentence_vectors = self._sentence_vectors(chunks)  # before the journal: a crash in it loses nothing
        manifest.mark_pending(names)
        store.delete_sources([name for name in names if name in known])
        store.upsert(chunks, vectors)
        indexed_at = now_iso()
        records = [
            FileRecord(c.name, c.size, c.mtime_ns, c.sha256, len(file_chunks), "done", indexed_at)
            for c, file_chunks in batch
        ]
        manifest.commit_files(records, [lexical_row(chunk) for chunk in chunks], sentence_vectors)
        for name in names:
            (report.updated if name in known else report.added).append(name)
        report.chunks_written += len(chunks)
        if progress:
            progress("chunks", report.chunks_written, report.chunks_written)

    def _sentence_vectors(self, chunks: list[Chunk]) -> list[SentenceVector]:
        """Each distinct sentence of ``chunks`` (per source), and each title, embedded, when the settings
        keep them: the answerer reads a title that states the answer as evidence."""
        if not self.settings.sentence_vectors:
            return []
        titles = [(chunk.source, chunk.title) for chunk in chunks if chunk.title]
        texts_of = [(chunk.source, span.text) for chunk in chunks for span in sentences(chunk.text)]
        pairs = list(dict.fromkeys([*titles, *texts_of]))
        texts = list(dict.fromkeys(text for _, text in pairs))
        vectors = dict(zip(texts, self.embedder.encode(texts), strict=True)) if texts else {}
        return [SentenceVector(source, text, vectors[text]) for source, text in pairs]

    def _backfill_sentence_vectors(self, store: ChunkStore, manifest: Manifest) -> None:
        """Sentence vectors for the files of a data dir indexed while they were not kept.

        Once: a meta flag records that every file has them, and is cleared by any run without them.
        """
        if not self.settings.sentence_vectors:
            manifest.set_meta("sentence_vectors", "")
            return
        if manifest.get_meta("sentence_vectors") == "kept":
            return
        paths = manifest.paths_without_sentence_vectors()
        for start in range(0, len(paths), 100):
            part = paths[start : start + 100]
            manifest.add_sentence_vectors(self._sentence_vectors(list(store.chunks_of(part))))
        manifest.set_meta("sentence_vectors", "kept")

    def _fits_embedder(self, text: str) -> bool:
        limit = self.embedder.max_tokens  # asked per chunk: a run with nothing to chunk loads no model
        # An embeddings server's tokenizer is not at hand: it truncates what is over its window itself.
        return limit is None or self.embedder.model_token_count(text) <= limit


__all__ = ["SUPPORTED_SUFFIXES", "IndexLockedError", "Indexer", "data_dir_lock"]
