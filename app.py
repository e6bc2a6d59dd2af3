"""Chokepoint's browser chat (Streamlit). Run with `make app`.

Safety rule: source text and model output are shown only through ``assistant.ui.render``
(escaped Markdown); nothing here passes ``unsafe_allow_html``. Errors are one line, never a
traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import streamlit as st

from assistant.answer import Answer
from assistant.answerers import Answerer, LLMAnswerer
from assistant.engine import Engine, chat_model
from assistant.llm.faults import describe
from assistant.pipeline import Preview, Token
from assistant.ui import render
from assistant.ui.answer_view import answer_view
from assistant.ui.chats import ChatStore
from assistant.ui.conversation import history_turns, message_from_stored
from assistant.ui.engine_loading import EngineLoading
from assistant.ui.feedback_view import feedback_widget
from assistant.ui.filter_view import filter_section
from assistant.ui.index_view import index_view
from assistant.ui.options import ask_options, filter_choices
from assistant.ui.serialize import answer_to_dict
from index.settings import Settings

ANSWERERS = {
    "extractive": "Extractive (quotes the sources, no LLM)",
    "llm": "LLM",
    "endpoint": "LLM at an endpoint URL",
}
log = logging.getLogger("chokepoint.app")


# ---------------------------------------------------------------- shared resources


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    return Settings()


@st.cache_resource(show_spinner=False)
def engine_loading() -> EngineLoading:
    """The engine of this server process, loading in the background from the first page open.

    A failed load does not stay cached: the next page open (after the user fixed the data dir) retries.
    """
    return EngineLoading(get_settings(), on_failure=engine_loading.clear)


def get_engine() -> Engine:
    """The engine once it has loaded (waits for it); raises what loading raised."""
    return engine_loading().wait()


@st.cache_resource(show_spinner=False)
def get_store(path: str) -> ChatStore:
    return ChatStore(Path(path))


@st.cache_resource(show_spinner=False)
def endpoint_answerer(url: str, model: str) -> LLMAnswerer:
    engine = get_engine()
    settings = engine.settings.model_copy(update={"llm_url": url, "llm_model": model})
    # The same sentence-vector cache as the engine's own LLM answerer: the shortlist ranks by meaning too.
    return LLMAnswerer(chat_model(settings), settings.llm_prompt_tokens, vectors=engine.vectors)


@st.cache_data(show_spinner=False, max_entries=8)
def index_options(data_dir: str, generation: int, chunks: int, _engine: Engine) -> dict[str, list]:
    """Filter choices, read once per index generation from the stored chunks' metadata."""
    return filter_choices(_engine.store.all_chunks())


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
    return [message_from_stored(stored) for stored in store().messages(chat_id)]


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


# ---------------------------------------------------------------- answering


def get_answerer(engine: Engine, kind: str) -> Answerer:
    if kind == "endpoint":
        url = st.session_state.endpoint_url.strip()
        if not render.safe_url(url):
            raise ValueError("Enter the endpoint's URL (http://… or https://…) in the sidebar.")
        return endpoint_answerer(url, st.session_state.endpoint_model.strip() or engine.settings.llm_model)
    return engine.answerer(kind)


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
                events = engine.pipeline.stream(answerer, question, history,
                                                ask_options(st.session_state, options["years"]))
                first = next(events)
            draft, shown = "", 0.0
            for event in itertools.chain([first], events):
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


# ---------------------------------------------------------------- showing messages


def render_error(message: dict[str, Any], index: int) -> None:
    st.error(message["error"])
    if message.get("kind") != "extractive":
        st.button("Answer with the extractive answerer instead", key=f"fallback-{index}",
                  on_click=retry, args=(index, "extractive"), icon=":material/format_quote:")
    else:
        st.button("Try again", key=f"retry-{index}", on_click=retry, args=(index, None))


def render_history(engine: Engine) -> None:
    for index, message in enumerate(st.session_state.messages):
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(render.inline(message["content"]))
            elif message.get("error"):
                render_error(message, index)
            elif message.get("answer") is not None:
                answer_view(message["answer"], message["id"], engine.settings.sources_dir)
                if isinstance(message["id"], int):
                    feedback_widget(store(), message["id"], flash, one_line)
            else:
                st.markdown(render.inline(message["content"]))


# ---------------------------------------------------------------- sidebar


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

        index_view(engine, one_line)

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
