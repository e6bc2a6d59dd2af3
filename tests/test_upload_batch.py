"""``UploadBatch``, the sidebar's upload transaction, against a real Engine, sources folder and embedded Chroma.

Each test drives a batch the way ``assistant/ui/index_view.py`` does (check, save, index, settle) and
then looks at what a user would: the files in the sources folder, what a search finds, the notices.
Faults are real ones: files the loaders reject, and an index locked by another run.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import indexed_engine, write_note

from assistant.llm.faults import describe
from assistant.ui.upload_batch import UploadBatch
from assistant.ui.uploads import CheckedUpload, check_upload, free_name
from index.index_report import IndexReport
from index.indexer import data_dir_lock

OLD_FACT = "The Quillmoor foundry shipped 1,234 sapphire wafers in 2019."
NEW_FACT = "The Quillmoor foundry shipped 9,876 sapphire wafers in 2024."
OTHER_FACT = "The Brannock lithography lab trained 57 optical engineers in 2022."
QUESTION = "How many sapphire wafers did the Quillmoor foundry ship?"
BAD_FRONT_MATTER = b"---\ntitle: [unclosed\n---\n\n# Quillmoor\n\n" + NEW_FACT.encode() + b"\n"
CORRUPT_PDF = b"%PDF-1.4\nthis is not really a pdf at all\n%%EOF\n"  # passes the upload check, fails to load


def pdf_bytes(*lines: str) -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    for i, line in enumerate(lines):
        page.drawString(72, 720 - 20 * i, line)
    page.showPage()
    page.save()
    return buffer.getvalue()


def note_bytes(tmp_path: Path, name: str, title: str, body: str) -> bytes:
    return write_note(tmp_path / "drafts", name, title, body).read_bytes()


@pytest.fixture
def engine(make_settings, embedder):
    settings = make_settings()
    write_note(settings.sources_dir, "background.md", "Background",
               "Chip makers depend on a handful of suppliers for lithography machines and wafers.")
    return indexed_engine(settings, embedder)


def upload(engine, name: str, data: bytes) -> CheckedUpload:
    """An upload as the sidebar accepts it (type, size and content checked)."""
    return check_upload(name, data, int(engine.settings.max_file_mb * 1e6))


def store(engine, items: list[tuple[CheckedUpload, str, bool]]) -> tuple[UploadBatch, IndexReport | None]:
    """Save, index and settle a batch as ``index_view._store_uploads`` does."""
    batch = UploadBatch(engine.settings.sources_dir, lambda exc: describe(exc, engine.settings))
    for item, name, replace in items:
        batch.save(item, name, replace)
    report = None
    if batch.saved_any:
        report = batch.index(engine.reindex)
        if report is not None:
            batch.settle(report, engine.reindex)
    assert all(kind in {"error", "success", "info"} for kind, _ in batch.notices), batch.notices
    return batch, report


def indexed_text(engine) -> str:
    return "\n".join(chunk.text for chunk in engine.store.all_chunks())


def found(engine, query: str, phrase: str) -> bool:
    """Whether a search for ``query`` brings back a passage holding ``phrase``."""
    return any(phrase in p.chunk.text for p in engine.retriever.retrieve(query, k=10).passages)


def folder(engine) -> list[str]:
    """Every entry of the sources folder, hidden ones too (a leftover backup or temporary shows here)."""
    return sorted(p.name for p in engine.settings.sources_dir.iterdir())


def texts(batch: UploadBatch, kind: str) -> list[str]:
    return [text.replace("\\", "") for k, text in batch.notices if k == kind]


# ------------------------------------------------------------------ new uploads


def test_a_new_upload_is_indexed_and_answers(engine, tmp_path):
    note = upload(engine, "quillmoor.md", note_bytes(tmp_path, "q.md", "Quillmoor foundry", NEW_FACT))
    report_pdf = upload(engine, "brannock.pdf", pdf_bytes("Brannock lab report", OTHER_FACT))
    batch, report = store(engine, [(note, note.name, False), (report_pdf, report_pdf.name, False)])

    assert report is not None and report.ok and sorted(report.added) == ["brannock.pdf", "quillmoor.md"]
    assert texts(batch, "success") == ["Indexed quillmoor.md.", "Indexed brannock.pdf."]
    assert not batch.conflicts and not texts(batch, "error")
    assert folder(engine) == ["background.md", "brannock.pdf", "quillmoor.md"]
    assert found(engine, "Quillmoor sapphire wafers", "9,876")
    assert found(engine, "Brannock optical engineers", "57 optical engineers")
    answer = engine.pipeline.ask(engine.extractive, QUESTION)
    assert not answer.refused and "9,876" in answer.text
    assert "quillmoor.md" in {c.chunk.source for c in answer.citations}


def test_a_new_upload_that_fails_to_load_is_taken_out(engine):
    bad = upload(engine, "broken.pdf", CORRUPT_PDF)
    batch, report = store(engine, [(bad, bad.name, False)])

    assert report is not None and [f.path for f in report.failed] == ["broken.pdf"]
    [error] = texts(batch, "error")
    assert error.startswith("Not added: ") and "broken.pdf" in error
    assert folder(engine) == ["background.md"]  # not left behind to fail every Reindex
    assert "broken.pdf" not in engine.store.sources()


def test_a_taken_name_is_a_conflict_and_the_file_is_untouched(engine, tmp_path):
    existing = engine.settings.sources_dir / "background.md"
    before = existing.read_bytes()
    again = upload(engine, "background.md", note_bytes(tmp_path, "b.md", "Background", NEW_FACT))
    batch, report = store(engine, [(again, again.name, False)])

    assert batch.conflicts == [again] and not batch.saved_any and report is None
    assert batch.notices == []  # the user is asked what to do instead
    assert existing.read_bytes() == before and folder(engine) == ["background.md"]


def test_keep_both_saves_under_a_free_name_and_says_so(engine, tmp_path):
    again = upload(engine, "background.md", note_bytes(tmp_path, "b.md", "Quillmoor", NEW_FACT))
    name = free_name(engine.settings.sources_dir, again.name)
    batch, _ = store(engine, [(again, name, False)])

    assert name == "background-2.md"
    assert texts(batch, "info") == ["background.md was saved as background-2.md."]
    assert texts(batch, "success") == ["Indexed background-2.md."]
    assert folder(engine) == ["background-2.md", "background.md"]
    assert found(engine, "Quillmoor sapphire wafers", "9,876")
    assert "lithography machines and wafers" in indexed_text(engine)  # the first file stays indexed


def test_an_unsafe_name_is_refused_with_a_notice(engine, tmp_path):
    item = upload(engine, "evil.md", note_bytes(tmp_path, "e.md", "Evil", NEW_FACT))
    batch, report = store(engine, [(item, "../evil.md", False)])

    assert not batch.saved_any and report is None
    [error] = texts(batch, "error")
    assert "evil.md" in error
    assert not (tmp_path / "evil.md").exists() and folder(engine) == ["background.md"]


# ------------------------------------------------------------------ replacing a source


def test_replacing_a_source_indexes_the_new_version_only(engine, tmp_path):
    target = write_note(engine.settings.sources_dir, "quillmoor.md", "Quillmoor foundry", OLD_FACT)
    assert engine.reindex().ok and found(engine, "Quillmoor sapphire wafers", "1,234")

    new = note_bytes(tmp_path, "q.md", "Quillmoor foundry", NEW_FACT)
    batch, report = store(engine, [(upload(engine, "quillmoor.md", new), "quillmoor.md", True)])

    assert report is not None and report.ok and report.updated == ["quillmoor.md"]
    assert texts(batch, "success") == ["Indexed quillmoor.md."] and not texts(batch, "error")
    assert target.read_bytes() == new
    assert folder(engine) == ["background.md", "quillmoor.md"]  # no backup or temporary left behind
    assert found(engine, "Quillmoor sapphire wafers", "9,876")
    assert not found(engine, "Quillmoor sapphire wafers 2019", "1,234")
    assert "1,234" not in indexed_text(engine)
    answer = engine.pipeline.ask(engine.extractive, QUESTION)
    assert "9,876" in answer.text and "1,234" not in answer.text


@pytest.fixture(params=["pdf", "md"])
def bad_replacement(request, engine, tmp_path):
    """(name, the original's bytes, an upload of the same name that the loader rejects)."""
    if request.param == "pdf":
        name, original, bad = "quillmoor.pdf", pdf_bytes("Quillmoor foundry", OLD_FACT), CORRUPT_PDF
    else:
        name, original, bad = "quillmoor.md", note_bytes(tmp_path, "q.md", "Quillmoor foundry", OLD_FACT), \
            BAD_FRONT_MATTER
    (engine.settings.sources_dir / name).write_bytes(original)
    assert engine.reindex().ok and found(engine, "Quillmoor sapphire wafers", "1,234")
    return name, original, upload(engine, name, bad)


def test_a_replacement_that_fails_to_load_puts_the_old_version_back(engine, tmp_path, bad_replacement):
    name, original, bad = bad_replacement
    write_note(engine.settings.sources_dir, "brannock.md", "Brannock lab", "An early draft.")
    assert engine.reindex().ok
    fixed = note_bytes(tmp_path, "b.md", "Brannock lab", OTHER_FACT)
    fresh = upload(engine, "fresh.txt", b"Fresh notes: the Ostrava plant packaged 311 chiplets in 2023.\n")

    batch, report = store(engine, [(bad, name, True), (upload(engine, "brannock.md", fixed), "brannock.md", True),
                                   (fresh, fresh.name, False)])

    assert report is not None and [f.path for f in report.failed] == [name]
    # The old version is back, byte for byte, and found again.
    assert (engine.settings.sources_dir / name).read_bytes() == original
    assert found(engine, "Quillmoor sapphire wafers", "1,234")
    assert name in engine.store.sources()
    # The user is told which file was not added, and why.
    [error] = texts(batch, "error")
    assert error.startswith("Not added: ") and name in error
    # The good files of the same batch stay indexed.
    assert sorted(texts(batch, "success")) == ["Indexed brannock.md.", "Indexed fresh.txt."]
    assert (engine.settings.sources_dir / "brannock.md").read_bytes() == fixed
    assert found(engine, "Brannock optical engineers", "57 optical engineers")
    assert "An early draft" not in indexed_text(engine)
    assert found(engine, "Ostrava chiplets", "311 chiplets")
    assert folder(engine) == sorted(["background.md", "brannock.md", "fresh.txt", name])
    # The index and its manifest agree with the folder: a Reindex finds nothing to do.
    after = engine.reindex()
    assert after.ok and not after.changed, after.as_dict()


def test_a_failed_replacement_tells_the_user_the_old_version_was_kept(engine, bad_replacement):
    name, _, bad = bad_replacement
    batch, _ = store(engine, [(bad, name, True)])

    [error] = texts(batch, "error")
    assert name in error
    assert any(word in error.lower() for word in ("kept", "previous", "earlier", "put back", "restored", "old version"))


def test_when_indexing_fails_as_a_whole_the_upload_stays_for_a_reindex(engine, tmp_path):
    target = write_note(engine.settings.sources_dir, "quillmoor.md", "Quillmoor foundry", OLD_FACT)
    assert engine.reindex().ok
    new = note_bytes(tmp_path, "q.md", "Quillmoor foundry", NEW_FACT)
    fresh = upload(engine, "fresh.txt", b"Fresh notes: the Ostrava plant packaged 311 chiplets in 2023.\n")

    with data_dir_lock(engine.settings.data_dir):  # another indexing run holds the data dir
        batch, report = store(engine, [(upload(engine, "quillmoor.md", new), "quillmoor.md", True),
                                       (fresh, fresh.name, False)])

    assert report is None
    [error] = texts(batch, "error")
    assert error.startswith("Saved, but not indexed yet (") and error.endswith("click Reindex.")
    assert "Another indexer" in error
    # The uploads stay; the file the upload replaced is dropped, not left hidden in the folder.
    assert target.read_bytes() == new
    assert folder(engine) == ["background.md", "fresh.txt", "quillmoor.md"]
    # The Reindex the notice asks for picks them up.
    assert engine.reindex().ok
    assert found(engine, "Quillmoor sapphire wafers", "9,876") and "1,234" not in indexed_text(engine)
    assert found(engine, "Ostrava chiplets", "311 chiplets")
