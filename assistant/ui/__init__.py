"""Helpers for the Streamlit app (``app.py``): safe Markdown rendering, uploads, the chat store.

Nothing here imports Streamlit, so every piece is unit-tested on its own.
"""
