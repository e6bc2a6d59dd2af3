"""Sentence vectors computed by the indexer: an answer reads them instead of embedding its sentences."""

from __future__ import annotations

import numpy as np
from conftest import copy_notes, indexed_engine, write_note

from index.manifest import Manifest
from index.sentences import sentences

QUESTION = "Which technologies are on the chokepoint list?"


def _spy_on_question_time_encoding(engine, monkeypatch) -> list[str]:
    """The sentences the engine embeds itself while answering (not the question, which the retriever embeds)."""
    encoded: list[str] = []
    real = engine.vectors._encode

    def encode(texts: list[str]) -> np.ndarray:
        encoded.extend(texts)
        return real(texts)

    monkeypatch.setattr(engine.vectors, "_encode", encode)
    return encoded


def _stored(settings, texts: list[str]) -> dict[str, np.ndarray]:
    manifest = Manifest(settings.manifest_path)
    try:
        return manifest.sentence_vectors(texts, 384)
    finally:
        manifest.close()


def test_an_answer_reads_the_indexers_vectors_and_says_the_same(make_settings, embedder, tmp_path, monkeypatch):
    kept = make_settings()
    copy_notes(kept.sources_dir)
    with_vectors = indexed_engine(kept, embedder)
    encoded = _spy_on_question_time_encoding(with_vectors, monkeypatch)
    answer = with_vectors.pipeline.ask(with_vectors.extractive, QUESTION)
    assert not answer.refused and answer.citations
    quoted = [s.text for s in answer.sentences]
    assert quoted and encoded == [], "passage sentences were embedded at question time"

    # The same corpus indexed without them answers the same, embedding its sentences as it goes.
    plain = make_settings(data_dir=tmp_path / "plain", sentence_vectors=False)
    without = indexed_engine(plain, embedder)
    encoded_without = _spy_on_question_time_encoding(without, monkeypatch)
    again = without.pipeline.ask(without.extractive, QUESTION)
    assert len(encoded_without) >= 8
    assert [s.text for s in again.sentences] == quoted
    assert [(c.passage.chunk.id, c.support_start, c.support_end) for c in again.citations] == \
        [(c.passage.chunk.id, c.support_start, c.support_end) for c in answer.citations]
    # Every sentence of the cited passages is stored, and the vectors are the model's: the same as
    # computing them now, to float precision.
    cited = list(dict.fromkeys(span.text for c in answer.citations for span in sentences(c.passage.chunk.text)))
    stored = _stored(kept, cited)
    assert set(stored) == set(cited)
    assert np.allclose(np.stack([stored[t] for t in cited]), embedder.encode(cited), atol=1e-4)


def test_vectors_follow_edits_removals_and_shared_sentences(make_settings, embedder):
    settings = make_settings()
    shared = "Both notes repeat this sentence about gallium export licences word for word."
    a = write_note(settings.sources_dir, "a.md", "Note A", f"{shared} Note A adds that Zorvane makes wafers.")
    write_note(settings.sources_dir, "b.md", "Note B", f"{shared} Note B adds that Quillet builds scanners.")
    engine = indexed_engine(settings, embedder)
    old = "Note A adds that Zorvane makes wafers."
    assert set(_stored(settings, [shared, old])) == {shared, old}

    a.write_text(a.read_text().replace("Zorvane makes wafers", "Zorvane packages chips"))
    assert engine.reindex().updated == ["a.md"]
    new = "Note A adds that Zorvane packages chips."
    assert set(_stored(settings, [shared, old, new])) == {shared, new}

    a.unlink()
    assert engine.reindex().removed == ["a.md"]
    # Note B still holds the shared sentence: forgetting note A keeps B's copy.
    assert set(_stored(settings, [shared, new, "Note B adds that Quillet builds scanners."])) == \
        {shared, "Note B adds that Quillet builds scanners."}


def test_a_data_dir_indexed_without_them_gets_them_on_its_next_run(make_settings, embedder):
    settings = make_settings(sentence_vectors=False)
    notes = ["big-fund-and-state-bank-lending.md", "dram-memory-push.md"]
    copy_notes(settings.sources_dir, notes)
    indexed_engine(settings, embedder)
    manifest = Manifest(settings.manifest_path)
    try:
        assert manifest.paths_without_sentence_vectors() == notes
    finally:
        manifest.close()

    turned_on = settings.model_copy(update={"sentence_vectors": True})
    report = indexed_engine(turned_on, embedder).reindex()
    assert report.unchanged == 2 and not report.changed  # no file was embedded again, only its sentences
    manifest = Manifest(settings.manifest_path)
    try:
        assert manifest.paths_without_sentence_vectors() == []
        assert manifest.get_meta("sentence_vectors") == "kept"
    finally:
        manifest.close()
