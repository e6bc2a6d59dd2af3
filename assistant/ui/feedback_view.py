"""Feedback under an answer, drawn with Streamlit: thumbs, whether it should have refused, a comment.

Saved in the chat history (``ChatStore.set_feedback``), from which the sidebar exports it as test cases.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from assistant.ui.chats import ChatStore

Explain = Callable[[BaseException], str]
"""Turns an exception into the one line shown to the user."""

ANSWERABLE_YES = "Yes — the sources cover it"
ANSWERABLE_NO = "No — it should have refused"


def _save_feedback(store: ChatStore, mid: int, flash: Callable[[str], None], explain: Explain) -> None:
    rating = {1: "up", 0: "down"}.get(st.session_state.get(f"fb-{mid}"))
    comment = st.session_state.get(f"fbc-{mid}") or ""
    answerable = st.session_state.get(f"fba-{mid}", ANSWERABLE_YES) != ANSWERABLE_NO
    try:
        store.set_feedback(mid, rating, comment=comment, answerable=answerable)
    except Exception as exc:
        flash(f"Feedback not saved: {explain(exc)}")


def feedback_widget(store: ChatStore, mid: int, flash: Callable[[str], None], explain: Explain) -> None:
    """Thumbs under an answer; a thumbs-down asks whether it should have refused, and takes a comment.
    Each change is saved at once; a failed save is flashed as one line."""
    key = f"fb-{mid}"
    if key not in st.session_state:
        saved = store.feedback(mid)
        st.session_state[key] = {"up": 1, "down": 0}.get(saved.rating) if saved else None
        st.session_state[f"fbc-{mid}"] = saved.comment if saved else ""
        st.session_state[f"fba-{mid}"] = ANSWERABLE_NO if saved and not saved.answerable else ANSWERABLE_YES
    args = (store, mid, flash, explain)
    rating = st.feedback("thumbs", key=key, on_change=_save_feedback, args=args)
    if rating is None:
        return
    if rating == 0:
        st.radio("Should Chokepoint have answered this from the sources?", [ANSWERABLE_YES, ANSWERABLE_NO],
                 key=f"fba-{mid}", on_change=_save_feedback, args=args, horizontal=True)
    st.text_input("Comment (optional)", key=f"fbc-{mid}", on_change=_save_feedback, args=args,
                  placeholder="What was right or wrong?")
    st.caption("Feedback saved. Export it from the sidebar as test cases.")
