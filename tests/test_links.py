"""Links in the sources folder, and folders indexed from outside it, with real symlinks on disk.

What a user would check: a link to a file outside the folder never makes that file quotable (unless
the operator allows it), links inside keep working, a loop ends with a message, and no source name
shows an absolute path of the machine.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import write_note

from assistant.ui.uploads import UploadExistsError, save_upload
from index.chunking import chunk_document
from index.indexer import Indexer, chunker_config
from index.lexical import lexical_row
from index.loaders import load
from index.manifest import FileRecord, Manifest
from index.store import ChunkStore, make_client, now_iso

SECRET = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
NOTE_BODY = "Gallium export licences were introduced in August 2023 and cover refined metal and compounds."


def _store(settings, indexer: Indexer) -> ChunkStore:
    return ChunkStore(make_client(settings), settings.collection, indexer.identity)


def _texts_by_source(settings, indexer: Indexer) -> dict[str, str]:
    texts: dict[str, str] = {}
    for chunk in _store(settings, indexer).all_chunks():
        texts[chunk.source] = texts.get(chunk.source, "") + chunk.text
    return texts


def _search(settings, query: str, capsys) -> list[dict]:
    from cli import main

    capsys.readouterr()
    code = main(["--data-dir", str(settings.data_dir), "--sources-dir", str(settings.sources_dir),
                 "search", "--json", query])
    assert code == 0
    return json.loads(capsys.readouterr().out)["passages"]


def test_link_to_a_file_outside_is_skipped_reported_and_never_searchable(make_settings, tmp_path, capsys,
                                                                          monkeypatch):
    from cli import main

    settings = make_settings()
    write_note(settings.sources_dir, "gallium.md", "Gallium controls", NOTE_BODY)
    outside = tmp_path / "elsewhere" / "passwd"
    outside.parent.mkdir()
    outside.write_text(SECRET)
    os.symlink(outside, settings.sources_dir / "link.txt")
    argv = ["--data-dir", str(settings.data_dir), "--sources-dir", str(settings.sources_dir)]

    assert main([*argv, "index"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out, out
    line = next(line for line in out.splitlines() if line.startswith("Link not followed: link.txt"))
    assert str(outside) in line and "CHOKEPOINT_FOLLOW_EXTERNAL_LINKS=true" in line, line
    passages = _search(settings, "passwd root bin bash", capsys)
    assert passages, "the note itself is still found"
    assert all(p["source"] == "gallium.md" and "root:x" not in p["text"] for p in passages), passages

    # The operator allows it on purpose: the file is indexed under the link's own name.
    monkeypatch.setenv("CHOKEPOINT_FOLLOW_EXTERNAL_LINKS", "true")
    assert main([*argv, "index"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "Link not followed" not in out, out
    passages = _search(settings, "passwd root bin bash", capsys)
    assert passages[0]["source"] == "link.txt" and "root:x:0:0" in passages[0]["text"]

    # Turned off again: the next run takes the linked file's chunks out.
    monkeypatch.delenv("CHOKEPOINT_FOLLOW_EXTERNAL_LINKS")
    assert main([*argv, "index"]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert all(p["source"] != "link.txt" for p in _search(settings, "passwd root bin bash", capsys))


def test_links_inside_are_followed_and_a_loop_ends_with_a_message(make_settings, embedder):
    settings = make_settings()
    src = settings.sources_dir
    write_note(src / "reports", "a.md", "Report A", NOTE_BODY)
    write_note(src / ".drafts", "b.md", "Draft B", "Germanium licences followed the gallium ones in 2023.")
    write_note(src / ".vault", "c.md", "Vault C", "Graphite anode material came under licence in December 2023.")
    os.symlink("reports/a.md", src / "alias.md")          # a second name for an indexed file
    os.symlink(".drafts/b.md", src / "b-latest.md")       # the only way in to b.md
    os.symlink(".vault", src / "vault")                   # a folder link inside
    os.symlink("..", src / "reports" / "up")              # back to a folder above: a loop
    os.symlink("self.md", src / "self.md")                # a link to itself
    os.symlink("missing.md", src / "gone.md")             # a link to nothing

    report = Indexer(settings, embedder).run()
    assert report.ok
    assert sorted(report.added) == ["b-latest.md", "reports/a.md", "vault/c.md"]
    reasons = {link.name: link.reason for link in report.links}
    assert set(reasons) == {"reports/up", "self.md", "gone.md"}, reasons
    assert "loop" in reasons["reports/up"] and "loop" in reasons["self.md"]
    assert "nothing" in reasons["gone.md"]
    assert "3 links not followed" in report.summary()
    texts = _texts_by_source(settings, Indexer(settings, embedder))
    assert "Germanium" in texts["b-latest.md"] and "Graphite" in texts["vault/c.md"]


def test_a_link_pointed_elsewhere_replaces_its_old_chunks(make_settings, embedder, tmp_path):
    settings = make_settings()
    src = settings.sources_dir
    write_note(src / ".versions", "v1.md", "Version 1", "The first draft counted nine export licences.")
    write_note(src / ".versions", "v2.md", "Version 2", "The second draft counted fourteen export licences.")
    link = src / "current.md"
    os.symlink(".versions/v1.md", link)
    indexer = Indexer(settings, embedder)
    assert indexer.run().added == ["current.md"]
    assert "nine" in _texts_by_source(settings, indexer)["current.md"]

    link.unlink()
    os.symlink(".versions/v2.md", link)
    assert indexer.run().updated == ["current.md"]
    text = _texts_by_source(settings, indexer)["current.md"]
    assert "fourteen" in text and "nine" not in text

    outside = tmp_path / "outside.md"
    outside.write_text("# Outside\n\nA file outside the sources folder.\n")
    link.unlink()
    os.symlink(outside, link)
    report = indexer.run()
    assert report.removed == ["current.md"] and [x.name for x in report.links] == ["current.md"]
    assert _texts_by_source(settings, indexer) == {}


def test_folders_given_from_outside_get_external_names_that_stay_put(make_settings, embedder, tmp_path):
    settings = make_settings()
    write_note(settings.sources_dir, "gallium.md", "Gallium controls", NOTE_BODY)
    first = tmp_path / "team-a" / "data"
    second = tmp_path / "team-b" / "data"
    write_note(first / "2024", "chips.md", "Team A chips", "Team A counted 42 fabs under construction.")
    write_note(second, "chips.md", "Team B chips", "Team B counted 18 fabs under construction.")
    indexer = Indexer(settings, embedder)

    assert indexer.run().added == ["gallium.md"]
    assert indexer.run([first]).added == ["external/data/2024/chips.md"]
    report = indexer.run([second])
    assert len(report.added) == 1 and report.removed == []
    label = report.added[0].split("/")[1]
    assert label.startswith("data-") and len(label) == len("data-") + 8, report.added

    # Names stay put: the same folders again change nothing, and a plain run keeps them.
    assert indexer.run([first]).unchanged == 1 and indexer.run([second]).unchanged == 1
    assert indexer.run().removed == []
    sources = set(_texts_by_source(settings, indexer))
    assert sources == {"gallium.md", "external/data/2024/chips.md", report.added[0]}
    assert not any(name.startswith("/") or str(tmp_path) in name for name in sources)

    # A file of the outside folder that goes away leaves the index when its folder is indexed again.
    (first / "2024" / "chips.md").unlink()
    assert indexer.run([first]).removed == ["external/data/2024/chips.md"]


def test_sources_named_by_absolute_path_before_are_renamed(make_settings, embedder, tmp_path):
    settings = make_settings()
    folder = tmp_path / "reports"
    path = write_note(folder, "fabs.md", "Fabs", "Team A counted 42 fabs under construction.")
    indexer = Indexer(settings, embedder)
    indexer.run()  # creates the empty index with its identity
    # What an earlier version wrote for `chokepoint index <folder outside>`: the absolute path as the name.
    old_name = str(path.resolve())
    chunks = chunk_document(load(path, display_path=old_name), chunker_config(settings), lambda _: True)
    store = _store(settings, indexer)
    store.upsert(chunks, embedder.encode([c.embedding_text for c in chunks]))
    manifest = Manifest(settings.manifest_path)
    stat = path.stat()
    manifest.commit_files([FileRecord(old_name, stat.st_size, stat.st_mtime_ns, "0" * 64, len(chunks), "done",
                                      now_iso())], [lexical_row(c) for c in chunks])
    manifest.close()
    assert old_name in _texts_by_source(settings, indexer)

    report = indexer.run([folder])
    assert report.removed == [old_name] and report.added == ["external/reports/fabs.md"]
    assert set(_texts_by_source(settings, indexer)) == {"external/reports/fabs.md"}


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_upload_never_writes_through_an_existing_link(tmp_path, overwrite):
    sources = tmp_path / "sources"
    sources.mkdir()
    target = tmp_path / "outside.md"
    target.write_text("# Not yours\n")
    os.symlink(target, sources / "report.md")
    inside = sources / "kept.md"
    inside.write_text("# Kept\n")
    os.symlink("kept.md", sources / "alias.md")

    for name in ("report.md", "alias.md"):
        if overwrite:
            path = save_upload(sources, name, b"# Uploaded\n", overwrite=True)
            assert path == sources / name and not path.is_symlink()
            assert path.read_text() == "# Uploaded\n"
        else:
            with pytest.raises(UploadExistsError):
                save_upload(sources, name, b"# Uploaded\n")
    assert target.read_text() == "# Not yours\n" and inside.read_text() == "# Kept\n"


def test_a_broken_pdf_reports_one_line_and_no_parser_noise(make_settings, capsys):
    from cli import main

    settings = make_settings()
    write_note(settings.sources_dir, "gallium.md", "Gallium controls", NOTE_BODY)
    (settings.sources_dir / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 50)
    code = main(["--data-dir", str(settings.data_dir), "--sources-dir", str(settings.sources_dir), "index"])
    captured = capsys.readouterr()
    assert code == 3
    failed = [line for line in captured.out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED broken.pdf: ") and "PDF" in failed[0]
    assert "EOF marker" not in captured.err and "pypdf" not in captured.err, captured.err
