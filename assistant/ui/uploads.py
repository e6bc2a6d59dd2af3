"""Uploaded sources: check the type and size, make the name safe, store inside the sources dir.

A stored name is one plain file name (no folders, no ``..``, no leading dot, ASCII letters,
digits, ``-``, ``_`` and ``.`` only, a supported suffix), so no upload can land outside
``sources/``; an existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from index.loaders import SUPPORTED_SUFFIXES

MAX_NAME_CHARS = 100
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")


class UploadError(ValueError):
    """An upload was refused; ``str()`` says why in one sentence."""


class UploadExistsError(UploadError):
    """A file of that name is already in the sources folder."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is already in the sources folder.")
        self.name = name


def safe_filename(name: str) -> str:
    """A file name that is safe to create inside the sources folder.

    Only the last path component is kept (``../../etc/evil.md`` -> ``evil.md``); characters
    outside ``[A-Za-z0-9._-]`` become ``-``; leading dots go (the indexer skips hidden files);
    the corpus's own ``README.md`` name is avoided (the indexer skips it too).
    """
    # The stored name is checked by running it through here again, so the result must be a fixed
    # point; one pass is not always one ("0:.0.x" -> "0-.0" -> "0.0"), a few always are.
    for _ in range(5):
        cleaned = _clean_filename(name)
        if cleaned == name:
            break
        name = cleaned
    return cleaned


def _clean_filename(name: str) -> str:
    name = unicodedata.normalize("NFKC", name or "")
    name = "".join(ch for ch in name if ch.isprintable())
    # Trailing dots and spaces go first (Windows drops them too): "notes.MD." must be "notes.md", as
    # the stored name is checked by running it through here again.
    name = name.replace("\\", "/").split("/")[-1].strip().rstrip(". ")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = re.sub(r"[^a-z0-9]", "", suffix.lower())[:10]
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    stem = re.sub(r"\.{2,}", ".", stem)
    stem = re.sub(r"-{2,}", "-", stem).strip(".-_ ")
    if not stem:
        stem = "upload"
    if stem.lower() in _RESERVED or stem.lower() == "readme":
        stem = f"upload-{stem}"
    limit = MAX_NAME_CHARS - (len(suffix) + 1 if suffix else 0)
    stem = stem[:limit].rstrip(".-_") or "upload"
    return f"{stem}.{suffix}" if suffix else stem


@dataclass(frozen=True)
class CheckedUpload:
    original_name: str
    name: str
    """The safe name it will be stored under."""
    data: bytes


def check_upload(original_name: str, data: bytes, max_bytes: int) -> CheckedUpload:
    """Check an upload's type (suffix and content) and size; return it with its safe name."""
    name = safe_filename(original_name)
    suffix = Path(name).suffix.lower()
    shown = original_name or name
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(SUPPORTED_SUFFIXES)
        raise UploadError(f"{shown}: file type {suffix or '(none)'!r} is not supported; use one of {allowed}.")
    if not data:
        raise UploadError(f"{shown}: the file is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            f"{shown}: the file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit."
        )
    if suffix == ".pdf" and b"%PDF-" not in data[:1024]:
        raise UploadError(f"{shown}: this is not a PDF file (no PDF header).")
    if suffix == ".docx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" not in archive.namelist():
                    raise UploadError(f"{shown}: this is not a Word (.docx) document.")
        except zipfile.BadZipFile as exc:
            raise UploadError(f"{shown}: this is not a Word (.docx) document (is it an old .doc?).") from exc
    if suffix in TEXT_SUFFIXES:
        if b"\x00" in data[:8192]:
            raise UploadError(f"{shown}: looks like binary data, not text.")
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadError(f"{shown}: is not UTF-8 text; save it as UTF-8 and upload it again.") from exc
    return CheckedUpload(original_name, name, data)


def target_path(sources_dir: Path, name: str) -> Path:
    """Where ``name`` is stored: directly inside ``sources_dir``, never anywhere else."""
    if name != safe_filename(name):
        raise UploadError(f"{name!r} is not a safe file name.")
    root = sources_dir.resolve()
    # The name itself is not resolved: if it is a link, the upload replaces the link, never the
    # file it points to (which may lie outside the folder, or be another source).
    path = root / name
    if path.parent.resolve() != root:
        raise UploadError(f"{name!r} would be stored outside the sources folder.")
    return path


def free_name(sources_dir: Path, name: str) -> str:
    """``name``, or ``stem-2.suffix``, ``stem-3.suffix`` ... whichever is not taken yet."""
    path = Path(name)
    candidate, n = name, 2
    while (sources_dir / candidate).exists() or (sources_dir / candidate).is_symlink():
        candidate = f"{path.stem}-{n}{path.suffix}"
        n += 1
    return candidate


def save_upload(sources_dir: Path, name: str, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``sources_dir/name`` atomically.

    Raises ``UploadExistsError`` when the file exists and ``overwrite`` is false.
    """
    sources_dir.mkdir(parents=True, exist_ok=True)
    path = target_path(sources_dir, name)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise UploadExistsError(name)
    # A hidden temporary name: the indexer ignores dot files, so a half-written upload is never indexed.
    handle, temporary = tempfile.mkstemp(prefix=".upload-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        if overwrite:
            os.replace(temporary, path)
        else:
            # link() fails if the name was taken meanwhile: never overwrite without asking.
            try:
                os.link(temporary, path)
                os.unlink(temporary)
            except FileExistsError:
                raise UploadExistsError(name) from None
            except OSError:  # no hard links on this file system: reserve the name, then move in
                try:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    raise UploadExistsError(name) from None
                os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename is None:
            # A full disk fails the write or close with no file name; name the file so the user
            # learns which folder is out of space.
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path
