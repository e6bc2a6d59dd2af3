"""Helpers for the Streamlit app (``app.py``): safe Markdown rendering, uploads, the chat store.

Only the ``*_view`` modules import Streamlit (they draw parts of the page); nothing else here does,
so every other piece is unit-tested on its own.
"""
