"""One sentence for each fault a user can meet: what broke, where, and what to do about it.

The app and the CLI show ``describe(exc, settings)`` in place of an exception's own text (the
traceback goes to the log only). Faults are recognised by type where the library raises a
typed error, and by the words of the message where it does not: embedded Chroma reports the
SQLite and file errors of its Rust core only as text inside an ``InternalError``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx

from assistant.llm.gguf_model import LLMUnavailableError
from index.embedding import ModelNotFoundError
from index.remote_embedding import RemoteEmbeddingError
from index.settings import Settings
from index.store import IndexMismatchError, StoreUnavailableError, is_damaged_vector_index


class LLMError(RuntimeError):
    """The LLM endpoint failed: unreachable, too slow, or not speaking the OpenAI chat API."""

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_WORDS = ("disk is full", "no space left", "quota exceeded")
_READ_ONLY_WORDS = ("readonly database", "read-only file system", "permission denied", "unable to open database")
_LOW_SPACE = 1 << 20
"""Below this many free bytes a vague storage error ("disk I/O error") is taken for a full disk."""


def describe(exc: BaseException, settings: Settings) -> str:
    """The fault behind ``exc`` as one line a user can act on: it names the path or setting and the fix."""
    chain = list(_causes(exc))
    for explain in (_known, _damaged_index, _chroma_server, _storage):
        message = explain(chain, settings)
        if message:
            return message
    return _plain(exc)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plain(exc: BaseException) -> str:
    text = _one_line(str(exc))
    if not text:
        return type(exc).__name__
    return text if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {text}"


def _known(chain: list[BaseException], settings: Settings) -> str | None:
    """Errors of our own that already say what to do (LLM and embedding endpoints, packages, models, the store)."""
    ours = (LLMError, LLMUnavailableError, ModelNotFoundError, RemoteEmbeddingError, IndexMismatchError,
            StoreUnavailableError)
    first = chain[0]
    if isinstance(first, ours):
        return _one_line(str(first))
    return None


def _damaged_index(chain: list[BaseException], settings: Settings) -> str | None:
    """Vector files a crash left unreadable: reindexing rebuilds them (embedded), the operator does (server)."""
    if not any(is_damaged_vector_index(exc) for exc in chain):
        return None
    if settings.chroma_url:
        return (f"The Chroma server at {settings.chroma_url} cannot read the collection's vector files (damaged "
                "on its disk). Run `chokepoint index --rebuild` against it once, from one instance.")
    return (f"The index's vector files under {settings.chroma_dir} are damaged (an interrupted write). Reindex "
            "(the sidebar's Reindex, or `chokepoint index`): it rebuilds the index from sources/.")


def _chroma_server(chain: list[BaseException], settings: Settings) -> str | None:
    """A Chroma server that stopped answering (only in server mode; the LLM's errors are handled before)."""
    if not settings.chroma_url:
        return None
    for exc in chain:
        lost = isinstance(exc, httpx.TransportError) or "could not connect to a chroma server" in str(exc).lower()
        if lost:
            return (
                f"The Chroma server at {settings.chroma_url} is not answering ({type(exc).__name__}: "
                f"{_one_line(str(exc))[:120]}). Start it again (`chroma run --path DIR --host HOST --port PORT`) "
                "and ask again, or unset CHOKEPOINT_CHROMA_URL to use the embedded index."
            )
    return None


def _storage(chain: list[BaseException], settings: Settings) -> str | None:
    """A disk that is full, or a folder Chokepoint cannot write to."""
    kind: str | None = None
    path: Path | None = None
    storage_error = False
    for exc in chain:
        # Chroma's errors are about our disk only in embedded mode; a server's disk is the server's business.
        local_chroma = type(exc).__module__.startswith("chromadb") and not settings.chroma_url
        if not (isinstance(exc, OSError | sqlite3.Error) or local_chroma):
            continue
        storage_error = True
        text = str(exc).lower()
        if isinstance(exc, OSError):
            if exc.filename:
                path = Path(os.fsdecode(exc.filename))
            if exc.errno in _FULL_ERRNOS:
                kind = "full"
            elif exc.errno in _READ_ONLY_ERRNOS:
                kind = "read-only"
        if kind is None and any(words in text for words in _FULL_WORDS):
            kind = "full"
        elif kind is None and any(words in text for words in _READ_ONLY_WORDS):
            kind = "read-only"
        if kind:
            break
    if not storage_error:
        return None
    folder = _existing(path or settings.data_dir)
    if kind is None:
        # SQLite says only "disk I/O error" when it cannot grow its journal; ask the disk itself.
        if _free(folder) < _LOW_SPACE:
            kind = "full"
        elif not os.access(folder, os.W_OK):
            kind = "read-only"
        else:
            return None
    setting = _setting_for(folder, settings)
    if kind == "full":
        return (
            f"No space left on the disk that holds {folder} ({_free(folder) / 1e6:.1f} MB free). Free some space "
            f"there, or set {setting} to a folder on a disk with room, then try again; the index keeps what it "
            "held before."
        )
    needs = "saves uploads" if setting == "CHOKEPOINT_SOURCES_DIR" else "must write its index, BM25 files and chats"
    return (
        f"{folder} is read-only for Chokepoint, which {needs} there. Make it writable (for example "
        f"`chmod -R u+w {folder}`), or set {setting} to a writable folder."
    )


def _existing(path: Path) -> Path:
    """The folder to name: ``path`` or its nearest existing parent folder (the fix is for a folder)."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return path


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return _LOW_SPACE  # cannot tell: do not claim a full disk


def _setting_for(path: Path, settings: Settings) -> str:
    resolved = path.resolve()
    for setting, root in (("CHOKEPOINT_SOURCES_DIR", settings.sources_dir),
                          ("CHOKEPOINT_DATA_DIR", settings.data_dir)):
        root = root.resolve()
        if resolved == root or root in resolved.parents:
            return setting
    return "CHOKEPOINT_DATA_DIR"
