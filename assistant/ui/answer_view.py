"""A finished answer drawn with Streamlit: the text (or the refusal and its nearest passages), dropped
sentences, citation cards that open the whole source, and the Markdown to copy.

Every text goes through ``assistant.ui.render`` (escaped Markdown).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from assistant.answer import Answer, Citation
from assistant.ui import render
from assistant.ui.sources import whole_source


def answer_view(answer: Answer, mid: int | str, sources_dir: Path) -> None:
    """``answer`` (message id ``mid``, which keys its widgets) with its citation cards and the copy box."""
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
            _citation_card(citation, mid, sources_dir)
    timing = f"{answer.answerer} answerer · {answer.timings.total_s:.1f} s" if answer.timings.total_s else ""
    with st.expander("Copy as Markdown"):
        markdown = answer.markdown()
        st.code(markdown, language="markdown", wrap_lines=True)
        st.download_button("Download .md", data=markdown, file_name=f"chokepoint-answer-{mid}.md",
                           mime="text/markdown", key=f"download-{mid}", on_click="ignore")
    if timing:
        st.caption(timing)


def _citation_card(citation: Citation, mid: int | str, sources_dir: Path) -> None:
    """One cited passage in an expander; its toggle opens the whole source with the passage marked."""
    chunk = citation.chunk
    with st.expander(render.citation_label(citation)):
        st.markdown(render.metadata_markdown(citation))
        for url in dict.fromkeys(r.url for r in citation.reports if r.url):
            st.markdown(render.link_markdown(url))
        st.markdown(render.passage_markdown(citation))
        if st.toggle("Show the whole source", key=f"whole-{mid}-{citation.n}"):
            source = whole_source(sources_dir, chunk)
            if source.text is None:
                st.caption(render.inline(source.note))
            else:
                with st.container(height=420, border=True, key=f"whole-source-{mid}-{citation.n}"):
                    st.markdown(render.source_markdown(source.text, citation, window=20_000))
