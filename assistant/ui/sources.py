"""The whole text of a cited source, for the "show the whole source" view.

A chunk's ``start``/``end`` (and a citation's support span) are character offsets into the text
the loader read from the file. For Markdown and plain text that text is the file itself (front
matter blanked to spaces), so the file is loaded again the same way and the span highlighted in
place. PDF, DOCX and HTML text is extracted, so only the stored passage is shown for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from index.chunk import Chunk
from index.loaders import LoadError, load

WHOLE_FILE_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True)
class SourceText:
    text: str | None
    """The file's text, offsets matching the index; None when only the stored passage can be shown."""
    note: str = ""
    """Why the whole file is not shown (empty when it is)."""


def source_path(sources_dir: Path, source: str) -> Path | None:
    """The file behind a chunk's ``source`` name, only when it lies inside ``sources_dir``."""
    root = sources_dir.resolve()
    try:
        path = (root / source).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return None
    return path


def whole_source(sources_dir: Path, chunk: Chunk, max_bytes: int = 20_000_000) -> SourceText:
    suffix = Path(chunk.source).suffix.lower()
    if suffix not in WHOLE_FILE_SUFFIXES:
        return SourceText(None, f"{suffix.upper().lstrip('.') or 'This'} files are shown as the stored passage "
                                "only: their text is extracted, so it does not match the file line by line.")
    path = source_path(sources_dir, chunk.source)
    if path is None or not path.is_file():
        return SourceText(None, "The file is not in the sources folder any more; showing the stored passage.")
    try:
        document = load(path, display_path=chunk.source, max_bytes=max_bytes)
    except LoadError as exc:
        return SourceText(None, f"The file cannot be read now ({exc}); showing the stored passage.")
    if document.text[chunk.start : chunk.end] != chunk.text:
        return SourceText(None, "The file has changed since it was indexed (reindex to update); "
                                "showing the stored passage.")
    return SourceText(document.text)
