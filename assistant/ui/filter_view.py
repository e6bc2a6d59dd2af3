"""The sidebar's Filters section, drawn with Streamlit; ``options.ask_options`` reads what it sets."""

from __future__ import annotations

import streamlit as st


def filter_section(options: dict[str, list]) -> None:
    """Publisher, topic and file pickers and a year range, kept in the session state (``f_*`` keys);
    choices the index no longer has are dropped."""
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
