"""The BM25 index: updated in place by a reindex, it must rank exactly as one built from scratch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import write_note

from index.filters import Filters
from index.indexer import Indexer
from index.lexical import MAX_SMALL_SEGMENTS, LexicalIndex, chunk_filters
from index.manifest import LexicalRow, Manifest
from index.segment import Segment
from index.words import tokenize

WORDS = ["lithography", "wafer", "subsidy", "tariff", "export", "control", "fab", "memory", "foundry",
         "sanction", "talent", "patent", "yuan", "gallium", "germanium", "rare", "earth", "scanner", "node",
         "yield", "capacity"]
QUERIES = ["lithography scanner exports", "memory fab subsidy", "gallium germanium export control",
           "rare earth tariff", "foundry yield at the 7nm node", "talent and patents"]


def _row(source: str, n: int, rng: random.Random) -> LexicalRow:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
    if rng.random() < 0.2:
        text += f" unique{source.split('.')[0]}"
    publisher = rng.choice(["Reuters", "CSET", "Xinhua"])
    return LexicalRow(f"{source}:{n}", source, tokenize(text), chunk_filters(source, publisher, ["chips"], 20210101))


def _corpus(rng: random.Random, sources: list[str]) -> dict[str, list[LexicalRow]]:
    return {s: [_row(s, n, rng) for n in range(rng.randint(1, 6))] for s in sources}


def _all(rows: dict[str, list[LexicalRow]]) -> list[LexicalRow]:
    return sorted((r for part in rows.values() for r in part), key=lambda r: r.chunk_id)


def _same_rankings(updated: LexicalIndex, rebuilt: LexicalIndex) -> None:
    assert updated.ids == rebuilt.ids and len(updated) == len(rebuilt)
    for query in [*QUERIES, *(f"unique{n}" for n in range(60))]:
        for filters in (None, Filters(publishers=("CSET",))):
            got, want = updated.search(query, 10, filters), rebuilt.search(query, 10, filters)
            assert [i for i, _ in got] == [i for i, _ in want], query
            assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9), query


def test_updates_in_place_rank_exactly_as_a_rebuild(tmp_path):
    rng = random.Random(7)
    rows = _corpus(rng, [f"{n}.md" for n in range(40)])
    index = LexicalIndex.build(_all(rows), 1)
    saw_merge = saw_segments = False
    for generation in range(2, 30):
        touched = rng.sample(sorted(rows), 3)
        for source in touched:
            if rng.random() < 0.3:
                del rows[source]  # a deleted file
            else:
                rows[source] = [_row(source, n, rng) for n in range(rng.randint(1, 6))]  # a changed file
        new = f"{generation + 100}.md"
        rows[new] = [_row(new, 0, rng)]  # and a new one
        changes = [*touched, new]
        index = index.replaced(changes, (r for s in changes for r in rows.get(s, [])), generation)
        saw_segments |= len(index.segments) > 2
        saw_merge |= len(index.segments) == 1
        assert len(index.segments) <= MAX_SMALL_SEGMENTS
        _same_rankings(index, LexicalIndex.build(_all(rows), generation))
        # A reader of the saved index sees the same thing.
        index.save(tmp_path / "bm25")
        loaded = LexicalIndex.load(tmp_path / "bm25", reuse=index)
        assert loaded is not None and loaded.generation == generation
        _same_rankings(loaded, index)
    assert saw_segments and saw_merge


def test_a_large_index_is_built_and_merged_a_segment_at_a_time(monkeypatch):
    # Segments of at most 12 rows stand for the 65,536 of a real index: a build or a merge never
    # works on more than about one segment's rows, and large segments are left alone by updates.
    monkeypatch.setattr("index.lexical.SEGMENT_ROWS", 12)
    rng = random.Random(13)
    rows = _corpus(rng, [f"{n}.md" for n in range(60)])
    index = LexicalIndex.build(_all(rows), 1)
    assert len(index.segments) == -(-len(_all(rows)) // 12) and all(len(s.ids) <= 12 for s in index.segments)
    whole = LexicalIndex([Segment.from_rows(_all(rows))], [np.zeros(len(_all(rows)), dtype=bool)], 1)
    _same_rankings(index, whole)
    edited = {"0.md", "1.md", "2.md"}
    # Full segments that never hold a row of an edited source are neither small nor losing rows.
    kept = {s.name for s in index.segments if len(s.ids) == 12 and not {f.source for f in s.fields} & edited}
    assert kept
    for generation in range(2, 40):
        source = sorted(edited)[generation % 3]
        rows[source] = [_row(source, n, rng) for n in range(rng.randint(1, 4))]
        before = {s.name for s in index.segments}
        index = index.replaced([source], rows[source], generation)
        merged = [s for s in index.segments if s.name not in before]
        assert all(len(s.ids) <= 24 for s in merged), "a merge took in more than two segments' worth"
        small = [s for s, d in zip(index.segments, index.deleted, strict=True) if (~d).sum() < 12]
        assert len(small) <= MAX_SMALL_SEGMENTS + 1
        _same_rankings(index, LexicalIndex.build(_all(rows), generation))
    assert kept <= {s.name for s in index.segments}, "an update rewrote a large segment it did not touch"


def test_a_term_only_deleted_chunks_had_is_unknown():
    rng = random.Random(3)
    rows = _corpus(rng, ["a.md", "b.md"])
    rows["zeph.md"] = [LexicalRow("zeph.md:0", "zeph.md", tokenize("The Zephyrine consortium"),
                                  chunk_filters("zeph.md", "", [], 0))]
    index = LexicalIndex.build(_all(rows), 1)
    assert index.knows(tokenize("Zephyrine")[0]) and index.search("Zephyrine", 5)[0][0] == "zeph.md:0"
    after = index.replaced(["zeph.md"], [], 2)
    assert not after.knows(tokenize("Zephyrine")[0]) and after.search("Zephyrine", 5) == []
    assert "zeph.md" not in after.sources() and len(after) == len(index) - 1


def test_merge_keeps_only_live_rows_and_terms():
    rng = random.Random(5)
    rows = _corpus(rng, [f"{n}.md" for n in range(10)])
    index = LexicalIndex.build(_all(rows), 1).replaced(["0.md", "1.md"], [], 2)
    merged = Segment.merged(list(zip(index.segments, [~d for d in index.deleted], strict=True)))
    assert sorted(merged.ids) == index.ids
    assert merged.indptr[-1] == len(merged.rows) and all(merged.indptr[1:] > merged.indptr[:-1])


def test_saved_index_is_read_back_and_old_segments_are_cleared(tmp_path, monkeypatch):
    rng = random.Random(11)
    rows = _corpus(rng, [f"{n}.md" for n in range(12)])
    root = tmp_path / "bm25"
    first = LexicalIndex.build(_all(rows), 1)
    first.save(root)
    assert LexicalIndex.saved_generation(root) == 1
    rows["0.md"] = [_row("0.md", 0, rng)]
    second = first.replaced(["0.md"], rows["0.md"], 2)
    second.save(root)
    # The first segment is still used (with rows deleted); nothing is written twice.
    assert sorted(p.name for p in (root / "segments").iterdir()) == sorted(s.name for s in second.segments)
    assert [p.name for p in root.glob("g*")] == ["g2"]
    # A merged index no longer needs the old segments; once they are old enough, a save removes them.
    monkeypatch.setattr("index.lexical.MAX_DELETED", 0.0)
    third = second.replaced(["1.md"], [], 3)
    assert len(third.segments) == 1
    monkeypatch.setattr("index.lexical.time.time", lambda: 4e9)
    third.save(root)
    assert [p.name for p in (root / "segments").iterdir()] == [third.segments[0].name]
    # A damaged index, or one saved by the previous format (bm25s files), reads as none: the caller
    # rebuilds it, and the rebuilt one saves over it.
    (root / "g3" / "state.json").write_text("{")
    assert LexicalIndex.load(root) is None
    old = tmp_path / "old"
    (old / "g5").mkdir(parents=True)
    (old / "g5" / "chunks.json").write_text('{"ids": [], "fields": []}')
    (old / "CURRENT").write_text("g5")
    assert LexicalIndex.saved_generation(old) == 5 and LexicalIndex.load(old) is None
    LexicalIndex.build(_all(rows), 5).save(old)
    again = LexicalIndex.load(old)
    assert again is not None and again.ids == sorted(r.chunk_id for r in _all(rows))


def test_reindex_updates_the_saved_index_instead_of_rebuilding(make_settings, embedder, monkeypatch):
    settings = make_settings()
    notes = [write_note(settings.sources_dir, f"note-{i}.md", f"Note {i}", f"Foundry note {i} on wafer yield.")
             for i in range(12)]
    indexer = Indexer(settings, embedder)
    assert indexer.run().ok
    first = LexicalIndex.load(settings.lexical_dir)
    assert first is not None and len(first.segments) == 1

    built = []
    monkeypatch.setattr(LexicalIndex, "build", classmethod(lambda cls, rows, generation: built.append(1)))
    notes[1].write_text(notes[1].read_text().replace("wafer yield", "Quorvex scanners"))
    notes[2].unlink()
    report = indexer.run()
    assert report.updated == ["note-1.md"] and report.removed == ["note-2.md"]
    assert not built, "one changed file must not rebuild BM25 from every chunk"
    monkeypatch.undo()

    updated = LexicalIndex.load(settings.lexical_dir)
    assert updated is not None and len(updated.segments) == 2
    assert updated.generation == LexicalIndex.saved_generation(settings.lexical_dir)
    manifest = Manifest(settings.manifest_path)
    try:
        rows = list(manifest.lexical_rows())
    finally:
        manifest.close()
    _same_rankings(updated, LexicalIndex.build(rows, updated.generation))
    hits = {i for i, _ in updated.search("Quorvex scanners", 5)}
    assert hits and hits <= {r.chunk_id for r in rows if r.path == "note-1.md"}
    assert updated.sources() == {f"note-{i}.md" for i in range(12)} - {"note-2.md"}


def test_a_writer_that_loses_the_race_keeps_the_winners_segments(tmp_path, monkeypatch):
    # Two writers save one generation (the indexer, and a query thread that rebuilt from the store).
    # The loser's rename finds the winner's folder in place; its clean-up must not delete the segments
    # that folder names. The race is forced: the loser's removal of the folder is skipped.
    import shutil

    rng = random.Random(1)
    rows = _corpus(rng, [f"{n}.md" for n in range(10)])
    root = tmp_path / "bm25"
    winner, loser = LexicalIndex.build(_all(rows), 7), LexicalIndex.build(_all(rows), 7)
    winner.save(root)
    rmtree = shutil.rmtree

    def rmtree_but_the_winners(path, ignore_errors=False):
        if Path(path).name != "g7":
            rmtree(path, ignore_errors)

    monkeypatch.setattr("index.lexical.shutil.rmtree", rmtree_but_the_winners)
    monkeypatch.setattr("index.lexical.time.time", lambda: 4e9)  # every segment is old enough to remove
    loser.save(root)
    loaded = LexicalIndex.load(root)
    assert loaded is not None and loaded.ids == winner.ids


def test_a_build_from_stored_chunks_ranks_the_same_in_any_order(monkeypatch):
    """``from_chunks`` builds in the order chunks come (a server's pages), skipping repeats; the weights
    are worked out in blocks. Neither changes a score."""
    from index import lexical
    from index.chunk import Chunk
    from index.lexical import lexical_row

    rng = random.Random(11)
    chunks = [Chunk(id=f"{s:02d}-{n}", source=f"{s}.md", ordinal=n, start=0, end=0, title="T", heading="",
                    text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) + f" unique{s}",
                    publisher=rng.choice(["Reuters", "CSET", "Xinhua"]), topics=("chips",))
              for s in range(40) for n in range(rng.randint(1, 6))]
    in_order = LexicalIndex.build(sorted((lexical_row(c) for c in chunks), key=lambda r: r.chunk_id), 1)
    shuffled = rng.sample(chunks, len(chunks))
    monkeypatch.setattr(lexical, "_WEIGHT_BLOCK", 7)
    paged = LexicalIndex.from_chunks([*shuffled[:50], *shuffled[40:]], 1)  # ten chunks come twice
    _same_rankings(paged, in_order)
    for query in QUERIES:
        assert paged.search(query, 10) == in_order.search(query, 10)  # the very same floats
