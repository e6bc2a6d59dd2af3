"""Indexing: sources on disk -> chunks -> Chroma (+ BM25). See ``index.indexer``."""
