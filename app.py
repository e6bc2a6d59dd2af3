"""Chokepoint's browser chat (Streamlit). Run with `make app`."""

from __future__ import annotations

import streamlit as st

from assistant.engine import Engine
from index.settings import Settings


@st.cache_resource(show_spinner="Loading the model and index…")
def engine() -> Engine:
    return Engine(Settings())


st.title("Chokepoint")
question = st.chat_input("Ask about China's technology autonomy")
if question:
    st.chat_message("user").markdown(question)
    result = engine().retriever.retrieve(question)
    with st.chat_message("assistant"):
        for n, passage in enumerate(result.passages, start=1):
            st.markdown(f"**[{n}] {passage.chunk.title}** — `{passage.chunk.source}`")
            st.text(passage.chunk.text)
