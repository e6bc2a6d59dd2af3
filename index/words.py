"""Words as BM25, the answerers and the verifier see them: lower case, stop words out, stems.

The BM25 index on disk holds these tokens, so any change here means reindexing.
"""

from __future__ import annotations

import functools
import re

import Stemmer

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*%?|[^\W\d_]+", re.UNICODE)


@functools.cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@functools.cache
def _stop_words() -> frozenset[str]:
    # Imported on first use: the bm25s package loads scipy (about a second) for a list of words.
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers, English stop words removed, Snowball-stemmed."""
    stop = _stop_words()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


def content_words(text: str) -> set[str]:
    """The distinct tokens of ``text``: what the answerers and the verifier compare."""
    return set(tokenize(text))
