"""Chokepoint's browser chat (Streamlit). Run with `make app`.

Safety rule: source text and model output are shown only through ``assistant.ui.render``
(escaped Markdown); nothing here passes ``unsafe_allow_html``. Errors are one line, never a
traceback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import streamlit as st

from assistant.answer import Answer, Turn
from assistant.answerers import Answerer, LLMAnswerer
from assistant.engine import Engine, chat_model
from assistant.faults import describe
from assistant.pipeline import AskOptions, Preview, Token
from assistant.ui import render
from assistant.ui.chats import ChatStore
from assistant.ui.serialize import answer_from_dict, answer_to_dict
from assistant.ui.sources import whole_source
from assistant.ui.uploads import (
    CheckedUpload,
    UploadError,
    UploadExistsError,
    check_upload,
    free_name,
    save_upload,
    target_path,
)
from index.filters import Filters
from index.index_report import IndexReport
from index.loaders import SUPPORTED_SUFFIXES
from index.settings import Settings

ANSWERERS = {
    "extractive": "Extractive (quotes the sources, no LLM)",
    "llm": "LLM",
    "endpoint": "LLM at an endpoint URL",
}
ANSWERABLE_YES = "Yes — the sources cover it"
ANSWERABLE_NO = "No — it should have refused"
log = logging.getLogger("chokepoint.app")
STAGES = {"scan": "Checking files", "files": "Reading files", "chunks": "Embedding chunks"}


# ---------------------------------------------------------------- shared resources


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    return Settings()


@st.cache_resource(show_spinner=False)
def engine_loading() -> EngineLoading:
    """The engine of this server process, loading in the background from the first page open."""
    return EngineLoading(get_settings())


def get_engine() -> Engine:
    """The engine once it has loaded (waits for it); raises what loading raised."""
    return engine_loading().wait()


class EngineLoading:
    """``Engine(settings)`` built in a thread, so the page and its chat input show before the model has loaded."""

    def __init__(self, settings: Settings) -> None:
        self._done = threading.Event()
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._load, args=(settings,), name="chokepoint-engine", daemon=True).start()

    def _load(self, settings: Settings) -> None:
        try:
            self._engine = Engine(settings)
        except BaseException as exc:  # raised to the page that waits for it, as a one-line error
            self._error = exc
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self) -> Engine:
        self._done.wait()
        if self._error is not None:
            # A failed load must not stay cached: the next page open (after the user fixed the data dir) retries.
            engine_loading.clear()
            raise self._error
        assert self._engine is not None
        return self._engine


@st.cache_resource(show_spinner=False)
def get_store(path: str) -> ChatStore:
    return ChatStore(Path(path))


@st.cache_resource(show_spinner=False)
def endpoint_answerer(url: str, model: str) -> LLMAnswerer:
    engine = get_engine()
    settings = engine.settings.model_copy(update={"llm_url": url, "llm_model": model})
    # The same sentence-vector cache as the engine's own LLM answerer: the shortlist ranks by meaning too.
    return LLMAnswerer(chat_model(settings), settings.llm_prompt_tokens, vectors=engine.verifier.vectors)


@st.cache_data(show_spinner=False, max_entries=8)
def index_options(data_dir: str, generation: int, chunks: int, _engine: Engine) -> dict[str, list]:
    """Filter choices, read once per index generation from the stored chunks' metadata."""
    publishers: set[str] = set()
    topics: set[str] = set()
    sources: set[str] = set()
    years: set[int] = set()
    for chunk in _engine.store.all_chunks():
        sources.add(chunk.source)
        if chunk.publisher:
            publishers.add(chunk.publisher)
        topics.update(t for t in chunk.topics if t)
        if chunk.date[:4].isdigit():
            years.add(int(chunk.date[:4]))
    return {"publishers": sorted(publishers), "topics": sorted(topics), "sources": sorted(sources),
            "years": sorted(years)}


def store() -> ChatStore:
    return get_store(str(get_engine().settings.data_dir / "chats.sqlite3"))


def one_line(exc: BaseException) -> str:
    """An exception as one short sentence for the UI (never a traceback; that goes to the server log)."""
    log.warning("%s", type(exc).__name__, exc_info=exc)
    try:
        text = describe(exc, get_settings())
    except Exception:  # the settings themselves are broken: say what the exception says
        text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


# ---------------------------------------------------------------- session state


def init_state(settings: Settings) -> None:
    defaults: dict[str, Any] = {
        "messages": [],
        "chat_id": None,
        "pending": None,
        "answerer_kind": settings.answerer,
        "endpoint_url": settings.llm_url or "",
        "endpoint_model": settings.llm_model,
        "top_k": min(settings.top_k, settings.max_passages),
        "use_mmr": settings.use_mmr,
        "f_publishers": [],
        "f_topics": [],
        "f_sources": [],
        "uploader_key": 0,
        "upload_notices": [],
        "conflicts": [],
        "last_report": None,
        "flash": [],
    }
    for key, value in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = value
    # Widgets drawn only some of the time keep their values for the session (Streamlit drops the
    # state of a widget that is not drawn in a run, unless it is written back like this).
    for key in ("endpoint_url", "endpoint_model", "f_year_from", "f_year_to"):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def flash(text: str) -> None:
    """A one-line error shown at the top of the chat on the next run (then gone)."""
    st.session_state.setdefault("flash", []).append(text)


def load_messages(chat_id: int) -> list[dict[str, Any]]:
    messages = []
    for stored in store().messages(chat_id):
        answer = None
        if stored.answer:
            with contextlib.suppress(Exception):  # a record the code can no longer read shows as text
                answer = answer_from_dict(stored.answer)
        messages.append({"id": stored.id, "role": stored.role, "content": stored.content, "answer": answer})
    return messages


def new_chat() -> None:
    st.session_state.chat_id = None
    st.session_state.messages = []


def open_chat(chat_id: int) -> None:
    try:
        st.session_state.messages = load_messages(chat_id)
        st.session_state.chat_id = chat_id
    except Exception as exc:
        flash(f"That chat could not be opened: {one_line(exc)}")


def delete_chat(chat_id: int) -> None:
    try:
        store().delete_chat(chat_id)
    except Exception as exc:
        flash(f"That chat could not be deleted: {one_line(exc)}")
        return
    if st.session_state.chat_id == chat_id:
        new_chat()


def history_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    """The conversation so far, for follow-ups (failed attempts left out)."""
    turns = []
    for message in messages:
        if message.get("error"):
            continue
        if message["role"] == "assistant":
            answer = message.get("answer")
            turns.append(Turn("assistant", answer.text if answer else message["content"]))
        else:
            turns.append(Turn("user", message["content"]))
    return turns


# ---------------------------------------------------------------- answering


def get_answerer(engine: Engine, kind: str) -> Answerer:
    if kind == "endpoint":
        url = st.session_state.endpoint_url.strip()
        if not render.safe_url(url):
            raise ValueError("Enter the endpoint's URL (http://… or https://…) in the sidebar.")
        return endpoint_answerer(url, st.session_state.endpoint_model.strip() or engine.settings.llm_model)
    return engine.answerer(kind)


def ask_options(options: dict[str, list]) -> AskOptions:
    years = options["years"]
    date_from = date_to = ""
    since, until = st.session_state.get("f_year_from"), st.session_state.get("f_year_to")
    if years and since in years and since != years[0]:
        date_from = str(since)
    if years and until in years and until != years[-1]:
        date_to = str(until)
    filters = Filters(
        sources=tuple(st.session_state.f_sources), publishers=tuple(st.session_state.f_publishers),
        topics=tuple(st.session_state.f_topics), date_from=date_from, date_to=date_to,
    )
    return AskOptions(k=int(st.session_state.top_k), filters=filters, use_mmr=bool(st.session_state.use_mmr))


def retry(index: int, kind: str | None) -> None:
    """Re-ask the question of a failed attempt (the fallback button), with ``kind`` if given."""
    messages = st.session_state.messages
    if 0 <= index < len(messages) and messages[index].get("error"):
        failed = messages.pop(index)
        st.session_state.pending = {"question": failed["question"], "answerer": kind, "retry": True}


def answer_pending(engine: Engine, options: dict[str, list]) -> None:
    pending = st.session_state.pending
    st.session_state.pending = None
    question: str = pending["question"]
    kind: str = pending.get("answerer") or st.session_state.answerer_kind
    messages: list[dict[str, Any]] = st.session_state.messages
    if pending.get("retry"):
        history = history_turns(messages[:-1] if messages and messages[-1]["role"] == "user" else messages)
    else:
        history = history_turns(messages)
        user_message: dict[str, Any] = {"id": None, "role": "user", "content": question, "answer": None}
        try:
            if st.session_state.chat_id is None or store().get_chat(st.session_state.chat_id) is None:
                st.session_state.chat_id = store().create_chat(question)
            user_message["id"] = store().add_message(st.session_state.chat_id, "user", question)
        except Exception as exc:
            flash(f"This chat could not be saved: {one_line(exc)}")
        messages.append(user_message)
        with st.chat_message("user"):
            st.markdown(render.inline(question))

    with st.chat_message("assistant"):
        placeholder = st.empty()
        answer: Answer | None = None
        try:
            with st.spinner("Searching the sources…"):
                answerer = get_answerer(engine, kind)
                events = engine.pipeline.stream(answerer, question, history, ask_options(options))
                first = next(events)
            draft, shown = "", 0.0
            for event in _chain(first, events):
                if isinstance(event, Preview):
                    # The extractive answer at once; the LLM's draft replaces it from its first token.
                    placeholder.markdown(render.draft_markdown(event.answer.text)
                                         + "\n\n*Quick answer from the passages; the LLM is writing its own…*")
                elif isinstance(event, Token):
                    draft += event.text
                    if time.monotonic() - shown > 0.05:
                        placeholder.markdown(render.draft_markdown(draft) + " ▌")
                        shown = time.monotonic()
                elif isinstance(event, Answer):
                    answer = event
            if answer is None:
                raise RuntimeError("the answer pipeline ended without an answer")
        except Exception as exc:
            placeholder.empty()
            prefix = "The LLM answerer failed" if kind != "extractive" else "The question could not be answered"
            error = {"id": None, "role": "assistant", "content": "", "answer": None,
                     "error": f"{prefix}: {one_line(exc)}", "question": question, "kind": kind}
            messages.append(error)
            st.rerun()  # drawn by render_history, like every message, so widgets keep their state
        placeholder.empty()
        message: dict[str, Any] = {"id": None, "role": "assistant", "content": answer.text, "answer": answer}
        try:
            if st.session_state.chat_id is not None:
                message["id"] = store().add_message(st.session_state.chat_id, "assistant", answer.text,
                                                    answer_to_dict(answer))
        except Exception as exc:
            flash(f"This answer could not be saved: {one_line(exc)}")
        if message["id"] is None:
            message["id"] = f"unsaved-{len(messages)}"
        messages.append(message)
    # Draw the answer through render_history on a fresh run: the same element tree on every later
    # run, so opened citation cards and toggles stay as the user left them.
    st.rerun()


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


# ---------------------------------------------------------------- showing messages


def render_error(message: dict[str, Any], index: int) -> None:
    st.error(message["error"])
    if message.get("kind") != "extractive":
        st.button("Answer with the extractive answerer instead", key=f"fallback-{index}",
                  on_click=retry, args=(index, "extractive"), icon=":material/format_quote:")
    else:
        st.button("Try again", key=f"retry-{index}", on_click=retry, args=(index, None))


def render_answer(engine: Engine, message: dict[str, Any]) -> None:
    answer: Answer = message["answer"]
    mid = message["id"]
    if answer.refused:
        st.markdown(f"**{render.inline(answer.text)}**")
        if answer.refusal_reason:
            st.caption(render.inline(answer.refusal_reason))
        if answer.passages:
            st.markdown("The nearest passages in the index — none answers the question well enough:")
            for n, passage in enumerate(answer.passages, start=1):
                with st.expander(render.passage_label(n, passage)):
                    st.markdown(render.metadata_markdown(passage))
                    st.markdown(render.block(passage.chunk.text))
    else:
        st.markdown(render.answer_markdown(answer))
        moved = sum(1 for s in answer.sentences if s.status == "moved")
        if moved:
            st.caption(f"Verification moved the citation of {moved} sentence{'s' if moved != 1 else ''} "
                       "to the passage that supports it.")
    if answer.dropped:
        count = len(answer.dropped)
        st.info(f"{count} sentence{'s were' if count != 1 else ' was'} dropped: no passage supported "
                f"{'them' if count != 1 else 'it'}.")
        with st.expander(f"Show the dropped sentence{'s' if count != 1 else ''}"):
            for sentence in answer.dropped:
                st.markdown(f":red-background[{render.inline(sentence.text)}] — **unsupported** "
                            f"(best support {sentence.support:.2f})")
    if not answer.refused and answer.citations:
        st.markdown("**Sources**")
        for citation in answer.citations:
            citation_card(engine, citation, mid)
    timing = f"{answer.answerer} answerer · {answer.timings.total_s:.1f} s" if answer.timings.total_s else ""
    with st.expander("Copy as Markdown"):
        markdown = answer.markdown()
        st.code(markdown, language="markdown", wrap_lines=True)
        st.download_button("Download .md", data=markdown, file_name=f"chokepoint-answer-{mid}.md",
                           mime="text/markdown", key=f"download-{mid}", on_click="ignore")
    if timing:
        st.caption(timing)
    if isinstance(mid, int):
        feedback_widget(mid)


def citation_card(engine: Engine, citation: Any, mid: Any) -> None:
    chunk = citation.chunk
    with st.expander(render.citation_label(citation)):
        st.markdown(render.metadata_markdown(citation))
        if chunk.url:
            st.markdown(render.link_markdown(chunk.url))
        st.markdown(render.passage_markdown(citation))
        if st.toggle("Show the whole source", key=f"whole-{mid}-{citation.n}"):
            source = whole_source(engine.settings.sources_dir, chunk)
            if source.text is None:
                st.caption(render.inline(source.note))
            else:
                with st.container(height=420, border=True, key=f"whole-source-{mid}-{citation.n}"):
                    st.markdown(render.source_markdown(source.text, citation, window=20_000))


def save_feedback(mid: int) -> None:
    rating = {1: "up", 0: "down"}.get(st.session_state.get(f"fb-{mid}"))
    comment = st.session_state.get(f"fbc-{mid}") or ""
    answerable = st.session_state.get(f"fba-{mid}", ANSWERABLE_YES) != ANSWERABLE_NO
    try:
        store().set_feedback(mid, rating, comment=comment, answerable=answerable)
    except Exception as exc:
        flash(f"Feedback not saved: {one_line(exc)}")


def feedback_widget(mid: int) -> None:
    key = f"fb-{mid}"
    if key not in st.session_state:
        saved = store().feedback(mid)
        st.session_state[key] = {"up": 1, "down": 0}.get(saved.rating) if saved else None
        st.session_state[f"fbc-{mid}"] = saved.comment if saved else ""
        st.session_state[f"fba-{mid}"] = ANSWERABLE_NO if saved and not saved.answerable else ANSWERABLE_YES
    rating = st.feedback("thumbs", key=key, on_change=save_feedback, args=(mid,))
    if rating is None:
        return
    if rating == 0:
        st.radio("Should Chokepoint have answered this from the sources?", [ANSWERABLE_YES, ANSWERABLE_NO],
                 key=f"fba-{mid}", on_change=save_feedback, args=(mid,), horizontal=True)
    st.text_input("Comment (optional)", key=f"fbc-{mid}", on_change=save_feedback, args=(mid,),
                  placeholder="What was right or wrong?")
    st.caption("Feedback saved. Export it from the sidebar as test cases.")


def render_history(engine: Engine) -> None:
    for index, message in enumerate(st.session_state.messages):
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(render.inline(message["content"]))
            elif message.get("error"):
                render_error(message, index)
            elif message.get("answer") is not None:
                render_answer(engine, message)
            else:
                st.markdown(render.inline(message["content"]))


# ---------------------------------------------------------------- sidebar


def progress_hook(bar: Any) -> Any:
    def hook(stage: str, done: int, total: int) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        bar.progress(fraction, text=f"{STAGES.get(stage, stage)}: {done}/{total}")

    return hook


def report_record(report: IndexReport) -> dict[str, Any]:
    return {"summary": report.summary(), "ok": report.ok, "added": report.added, "updated": report.updated,
            "removed": report.removed, "failed": [f.reason for f in report.failed], "skipped": report.skipped,
            "links": [link.describe() for link in report.links]}


def show_report(record: dict[str, Any]) -> None:
    if record.get("error"):
        st.error(record["error"])
        return
    (st.success if record["ok"] else st.warning)(render.inline(record["summary"]))
    for label in ("added", "updated", "removed"):
        if record[label]:
            names = ", ".join(record[label][:20]) + (" …" if len(record[label]) > 20 else "")
            st.caption(f"**{label.capitalize()}:** {render.inline(names)}")
    for reason in record["failed"]:
        st.error(f"Failed: {render.inline(reason)}")
    for link in record.get("links", []):
        st.warning(f"Link not followed: {render.inline(link)}")


def run_reindex(engine: Engine, rebuild: bool) -> None:
    bar = st.progress(0.0, text="Checking files…")
    try:
        report = engine.reindex(rebuild=rebuild, progress=progress_hook(bar))
        st.session_state.last_report = report_record(report)
    except Exception as exc:
        st.session_state.last_report = {"error": f"Reindexing failed: {one_line(exc)}"}
    finally:
        bar.empty()


def store_uploads(engine: Engine, items: list[tuple[CheckedUpload, str, bool]]) -> None:
    """Save uploads (name, replace?) and index them right away; a file that fails to index is taken out."""
    sources_dir = engine.settings.sources_dir
    notices = st.session_state.upload_notices
    saved: list[tuple[Path, Path | None]] = []  # (path, backup of the file it replaced)
    for upload, name, replace in items:
        backup: Path | None = None
        path: Path | None = None
        try:
            path = target_path(sources_dir, name)
            if replace and path.exists():
                backup = path.with_name(f".replaced-{os.getpid()}-{name}")
                os.replace(path, backup)
            save_upload(sources_dir, name, upload.data, overwrite=replace)
            saved.append((path, backup))
            if name != upload.original_name:
                notices.append(("info", f"{render.inline(upload.original_name)} was saved as "
                                        f"{render.inline(name)}."))
        except UploadExistsError:
            st.session_state.conflicts.append(upload)
        except (UploadError, OSError) as exc:
            if backup is not None and path is not None:
                with contextlib.suppress(OSError):
                    os.replace(backup, path)
            notices.append(("error", render.inline(one_line(exc))))
    if not saved:
        return
    bar = st.progress(0.0, text="Indexing…")
    try:
        report = engine.reindex([path for path, _ in saved], progress=progress_hook(bar))
    except Exception as exc:
        notices.append(("error", f"Saved, but not indexed yet ({render.inline(one_line(exc))}); click Reindex."))
        for _, backup in saved:
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
        return
    finally:
        bar.empty()
    failed = {f.path: f.reason for f in report.failed}
    restore: list[Path] = []
    for path, backup in saved:
        name = path.name
        if name in failed:
            with contextlib.suppress(OSError):
                path.unlink()
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.replace(backup, path)
                    restore.append(path)
            notices.append(("error", f"Not added: {render.inline(failed[name])}"))
        else:
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
            notices.append(("success", f"Indexed {render.inline(name)}."))
    if restore:
        with contextlib.suppress(Exception):
            engine.reindex(restore)
    st.session_state.last_report = report_record(report)


def upload_section(engine: Engine) -> None:
    settings = engine.settings
    max_bytes = int(settings.max_file_mb * 1e6)
    files = st.file_uploader(
        "Add sources: Markdown, text, HTML, PDF or Word",
        type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES], accept_multiple_files=True,
        key=f"uploader-{st.session_state.uploader_key}",
        help=f"Up to {settings.max_file_mb:g} MB each; indexed right away.",
        max_upload_size=max(1, math.ceil(settings.max_file_mb)),
    )
    if files:
        st.session_state.upload_notices = []
        items = []
        for file in files:
            try:
                upload = check_upload(file.name, file.getvalue(), max_bytes)
                items.append((upload, upload.name, False))
            except UploadError as exc:
                st.session_state.upload_notices.append(("error", render.inline(str(exc))))
        store_uploads(engine, items)
        st.session_state.uploader_key += 1
        st.rerun()

    for i, upload in enumerate(list(st.session_state.conflicts)):
        st.warning(f"**{render.inline(upload.name)}** is already in the sources folder.")
        replace, keep, skip = st.columns(3)
        if replace.button("Replace", key=f"conflict-replace-{i}"):
            st.session_state.conflicts.pop(i)
            st.session_state.upload_notices = []
            store_uploads(engine, [(upload, upload.name, True)])
            st.rerun()
        if keep.button("Keep both", key=f"conflict-keep-{i}"):
            st.session_state.conflicts.pop(i)
            st.session_state.upload_notices = []
            store_uploads(engine, [(upload, free_name(settings.sources_dir, upload.name), False)])
            st.rerun()
        if skip.button("Cancel", key=f"conflict-skip-{i}"):
            st.session_state.conflicts.pop(i)
            st.rerun()
    for kind, text in st.session_state.upload_notices:
        {"error": st.error, "success": st.success}.get(kind, st.info)(text)


def filter_section(options: dict[str, list]) -> None:
    for key, label, choices in (
        ("f_publishers", "Publisher", options["publishers"]),
        ("f_topics", "Topic", options["topics"]),
        ("f_sources", "File", options["sources"]),
    ):
        st.session_state[key] = [v for v in st.session_state[key] if v in choices]
        st.multiselect(label, choices, key=key, placeholder="Any")
    years = options["years"]
    if len(years) >= 2:
        if st.session_state.get("f_year_from") not in years:
            st.session_state.f_year_from = years[0]
        if st.session_state.get("f_year_to") not in years:
            st.session_state.f_year_to = years[-1]
        since, until = st.columns(2)
        since.selectbox("From year", years, key="f_year_from")
        until.selectbox("To year", years, key="f_year_to")
    if st.button("Clear filters", key="clear_filters"):
        for key in ("f_publishers", "f_topics", "f_sources"):
            st.session_state[key] = []
        st.session_state.pop("f_year_from", None)
        st.session_state.pop("f_year_to", None)
        st.rerun()


def sidebar(engine: Engine, options: dict[str, list]) -> None:
    with st.sidebar:
        st.header("Chats")
        st.button("New chat", key="new_chat", on_click=new_chat, icon=":material/add:", width="stretch")
        try:
            chats = store().list_chats()
        except Exception as exc:
            chats = []
            st.error(f"Saved chats cannot be read: {one_line(exc)}")
        for chat in chats[:50]:
            title, delete = st.columns([5, 1], vertical_alignment="center")
            current = chat.id == st.session_state.chat_id
            title.button(render.inline(chat.title), key=f"open-{chat.id}", on_click=open_chat, args=(chat.id,),
                         type="primary" if current else "tertiary", width="stretch")
            delete.button("", key=f"delete-{chat.id}", on_click=delete_chat, args=(chat.id,),
                          icon=":material/delete:", help="Delete this chat", type="tertiary")

        st.header("Answering")
        st.radio("Answerer", list(ANSWERERS), format_func=lambda k: _answerer_label(engine, k), key="answerer_kind")
        if st.session_state.answerer_kind == "endpoint":
            st.text_input("Endpoint URL (OpenAI-compatible)", key="endpoint_url",
                          placeholder="http://localhost:11434/v1")
            st.text_input("Model name", key="endpoint_model")
        st.slider("Passages to retrieve", min_value=1, max_value=engine.settings.max_passages, key="top_k")
        st.toggle("Diverse passages (MMR)", key="use_mmr")

        st.header("Filters")
        filter_section(options)

        st.header("Index")
        status_box = st.container()
        rebuild = st.checkbox("Rebuild from scratch", key="rebuild",
                              help="Drop the index and embed every source again.")
        if st.button("Reindex", key="reindex", icon=":material/refresh:"):
            run_reindex(engine, rebuild)
            st.rerun()  # fresh status and filter choices
        if st.session_state.last_report:
            show_report(st.session_state.last_report)
        upload_section(engine)
        with status_box:
            try:
                status = engine.status()
                st.markdown(f"**Sources:** {status.sources} · **Chunks:** {status.chunks}  \n"
                            f"**Embedding model:** {render.inline(status.embedding_model)}  \n"
                            f"**Last indexed:** {render.inline(status.last_indexed or 'never')}")
            except Exception as exc:
                st.error(f"Index status unavailable: {one_line(exc)}")

        st.header("Feedback")
        try:
            exported = store().export_jsonl()
        except Exception as exc:
            exported = ""
            st.error(f"Feedback cannot be read: {one_line(exc)}")
        count = exported.count("\n")
        st.download_button(f"Export feedback as test cases ({count})", data=exported or "\n",
                           file_name="chokepoint-feedback.jsonl", mime="application/jsonl",
                           key="export_feedback", disabled=not count, on_click="ignore",
                           icon=":material/download:")


def _answerer_label(engine: Engine, kind: str) -> str:
    if kind == "llm":
        url = engine.settings.llm_url
        return f"LLM (configured endpoint {url})" if url else f"LLM (embedded {engine.settings.llm_size} model)"
    return ANSWERERS[kind]


# ---------------------------------------------------------------- page


def main() -> None:
    st.set_page_config(page_title="Chokepoint", page_icon=":material/travel_explore:")
    st.title("Chokepoint")
    st.caption("Cited answers on China's technology-autonomy drive, from the documents in your sources folder.")
    try:
        settings = get_settings()
        loading = engine_loading()
    except Exception as exc:
        st.error(f"Chokepoint could not start: {one_line(exc)}")
        st.stop()
    init_state(settings)
    page = st.container()  # what needs the engine; the chat input below shows while the engine loads
    question = st.chat_input("Ask about China's technology autonomy", key="question",
                             max_chars=settings.max_question_chars)
    if question:
        st.session_state.pending = {"question": question, "answerer": None, "retry": False}
    with page:
        try:
            # A question sent meanwhile reruns the page once the engine is there, and is answered then.
            with contextlib.nullcontext() if loading.ready else st.spinner("Loading the model and index…"):
                engine = loading.wait()
        except Exception as exc:
            st.error(f"Chokepoint could not start: {one_line(exc)}")
            st.stop()
        answer_page(engine)


def answer_page(engine: Engine) -> None:
    """The sidebar, the conversation and the pending question, once the engine has loaded."""
    try:
        status = engine.status()
        options = index_options(str(engine.settings.data_dir), status.generation, status.chunks, engine)
    except Exception as exc:
        st.error(f"The index could not be read: {one_line(exc)}")
        status, options = None, {"publishers": [], "topics": [], "sources": [], "years": []}
    sidebar(engine, options)
    if status is not None and status.chunks == 0:
        st.info("The index is empty: add sources in the sidebar, or put files in the sources folder and "
                "click Reindex.")
    for text in st.session_state.flash:
        st.error(text)
    st.session_state.flash = []
    render_history(engine)
    if st.session_state.pending:
        answer_pending(engine, options)


try:
    main()
except Exception as exc:  # the last guard: one line, never a traceback
    st.error(f"Something went wrong: {one_line(exc)}")
